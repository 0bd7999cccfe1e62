"""Feast as a service of its own against the project's online store: the latency a
recommendation's feature lookup would add.

Feast cannot share the pipeline's environment (with the project's constraints only feast
0.1.2 resolves), so it is measured the way it runs in production: its own environment, its
Redis online store, its HTTP feature server (`feast serve`). The script

1. materializes a data set into the project's online store (a redis-server with the stack's
   arguments) and reads the same values back to write them as Feast's offline source
   (parquet), so both stores hold the same rows;
2. writes a Feast repository (entities user and lead; views user_behaviour and
   lead_attributes with the scalar features), runs `feast apply` and `feast materialize`
   into a second redis-server, and starts `feast serve` on loopback;
3. times, alternating in one run, what one recommendation needs: the user's behaviour row
   and the status of ``--candidates`` leads, through
   - the project's store (one pipelined round trip: the user's hash and the candidates'
     membership in the unavailable set, `serving`'s access pattern), and
   - Feast's feature server (one `POST /get-online-features` for the user, one for the
     leads: the two entities cannot share a request).

   Feast's Python SDK reading its Redis directly is not measured: the gateway cannot import
   Feast (it runs in the project's environment), so the feature server is how it would call
   Feast.

It prints p50 / p95 / p99 per path and the ratio to the project's store. Feast needs an
environment of its own, made once (about 300 MB):

    python3 -m venv /opt/feast-venv && /opt/feast-venv/bin/pip install 'feast[redis]'
    .venv/bin/python benchmarks/feast_service.py --feast /opt/feast-venv/bin/feast \
        [--data runs/data/default] [--requests 2000] [--candidates 50]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import random
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request

import numpy as np
import pandas as pd

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aiqleads.features import definitions as d  # noqa: E402
from aiqleads.features import keys  # noqa: E402
from aiqleads.features.materialize import materialize  # noqa: E402
from aiqleads.features.online import OnlineStore  # noqa: E402
from serving import command_lines  # noqa: E402
from serving.process import find_binary, free_port, redis_ping, wait_until  # noqa: E402
from serving.settings import FeatureStoreSettings  # noqa: E402

USER_SCALARS = (d.USER_VIEWS, d.USER_CLICKS, d.USER_INQUIRIES, d.USER_PURCHASES)
LEAD_SCALARS = (d.LEAD_PRICE, d.LEAD_BEDROOMS, d.LEAD_STATUS)
FEAST_TYPES = {d.LEAD_PRICE: "Float64", d.LEAD_BEDROOMS: "Int64", d.LEAD_STATUS: "String"}


def start_redis(directory: pathlib.Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    argv = [
        find_binary("redis-server", "redis-server"),
        *command_lines.feature_store_args(
            FeatureStoreSettings(port=port, max_memory_mb=256),
            bind="127.0.0.1",
            directory=directory,
        ),
    ]
    log = open(directory / "redis.log", "ab")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    wait_until(lambda: redis_ping("127.0.0.1", port), 10, "redis-server")
    return proc, port


def feast_repo(root: pathlib.Path, redis_port: int) -> None:
    (root / "feature_store.yaml").write_text(
        textwrap.dedent(
            f"""\
            project: aiqleads_bench
            registry: {root / "registry.db"}
            provider: local
            online_store:
              type: redis
              connection_string: "127.0.0.1:{redis_port}"
            offline_store:
              type: file
            entity_key_serialization_version: 3
            """
        )
    )
    lead_fields = ", ".join(f'Field(name="{n}", dtype={FEAST_TYPES[n]})' for n in LEAD_SCALARS)
    user_fields = ", ".join(f'Field(name="{n}", dtype=Int64)' for n in USER_SCALARS)
    (root / "definitions.py").write_text(
        textwrap.dedent(
            f"""\
            from datetime import timedelta
            from feast import Entity, FeatureView, Field, FileSource
            from feast.types import Float64, Int64, String

            user = Entity(name="user", join_keys=["user_id"])
            lead = Entity(name="lead", join_keys=["lead_id"])
            user_behaviour = FeatureView(
                name="user_behaviour", entities=[user], ttl=timedelta(days=3650),
                schema=[{user_fields}],
                source=FileSource(path="{root / "users.parquet"}", timestamp_field="event_timestamp"),
            )
            lead_attributes = FeatureView(
                name="lead_attributes", entities=[lead], ttl=timedelta(days=3650),
                schema=[{lead_fields}],
                source=FileSource(path="{root / "leads.parquet"}", timestamp_field="event_timestamp"),
            )
            """
        )
    )


def export_rows(store: OnlineStore, user_ids: list[str], lead_ids: list[str], root: pathlib.Path):
    """The online store's rows as Feast's offline source: the same values in both stores."""
    now = time.time()
    users = store.read_rows(d.USER_BEHAVIOUR_V1, user_ids, now)
    leads = store.read_rows(d.LEAD_ATTRIBUTES_V1, lead_ids, now)
    stamp = pd.Timestamp(dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
    pd.DataFrame(
        {
            "user_id": user_ids,
            **{n: [int(r.values[n] or 0) for r in users] for n in USER_SCALARS},
            "event_timestamp": stamp,
        }
    ).to_parquet(root / "users.parquet")
    pd.DataFrame(
        {
            "lead_id": lead_ids,
            d.LEAD_PRICE: [float(r.values[d.LEAD_PRICE] or 0.0) for r in leads],
            d.LEAD_BEDROOMS: [int(r.values[d.LEAD_BEDROOMS] or 0) for r in leads],
            d.LEAD_STATUS: [str(r.values[d.LEAD_STATUS]) for r in leads],
            "event_timestamp": stamp,
        }
    ).to_parquet(root / "leads.parquet")


def feast(feast_bin: str, root: pathlib.Path, *args: str) -> None:
    result = subprocess.run(
        [feast_bin, *args], cwd=root, capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0:
        raise SystemExit(f"feast {' '.join(args)} failed:\n{result.stderr[-3000:]}")


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def ours(store: OnlineStore, user: str, leads: list[str]) -> None:
    pipe = store.client.pipeline(transaction=False)
    pipe.hgetall(keys.row(d.USER_BEHAVIOUR_V1.name, d.USER_BEHAVIOUR_V1.version, user))
    pipe.smismember(keys.UNAVAILABLE, leads)
    pipe.execute()


def theirs(url: str, user: str, leads: list[str]) -> dict:
    _post(
        url,
        {
            "features": [f"user_behaviour:{n}" for n in USER_SCALARS],
            "entities": {"user_id": [user]},
        },
    )
    return _post(
        url,
        {"features": [f"lead_attributes:{d.LEAD_STATUS}"], "entities": {"lead_id": leads}},
    )


def percentiles(ms: list[float]) -> str:
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return f"p50 {p50:6.2f}  p95 {p95:6.2f}  p99 {p99:6.2f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--feast",
        default=os.environ.get("AIQLEADS_FEAST"),
        help="the feast executable of its own environment [default: $AIQLEADS_FEAST]",
    )
    parser.add_argument("--data", type=pathlib.Path, default=REPO / "runs" / "data" / "default")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if not args.feast:
        print("feast_service: skipped, no Feast environment (--feast or AIQLEADS_FEAST; the")
        print("module docstring says how to make one)")
        return 0
    if not (args.data / "leads.csv").is_file():
        raise SystemExit(f"{args.data} is not a data set (no leads.csv); see --data")
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at start")
    rng = random.Random(args.seed)
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="feast-bench-") as tmp:
        root = pathlib.Path(tmp)
        try:
            ours_proc, ours_port = start_redis(root / "ours")
            feast_proc, feast_redis = start_redis(root / "feast-redis")
            procs += [ours_proc, feast_proc]
            store = OnlineStore(f"redis://127.0.0.1:{ours_port}/0")
            summary = materialize(store, args.data)
            print(
                f"project store: materialized {summary.rows:,} rows as of {summary.as_of} "
                f"in {summary.seconds:.1f} s"
            )
            user_ids = pd.read_csv(args.data / "users.csv")["user_id"].astype(str).tolist()
            lead_ids = pd.read_csv(args.data / "leads.csv")["lead_id"].astype(str).tolist()
            repo = root / "feast"
            repo.mkdir()
            export_rows(store, user_ids, lead_ids, repo)
            feast_repo(repo, feast_redis)
            started = time.perf_counter()
            feast(args.feast, repo, "apply")
            end = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
            feast(args.feast, repo, "materialize", "2000-01-01T00:00:00", end)
            print(f"feast: apply and materialize in {time.perf_counter() - started:.1f} s")
            port = free_port()
            server = subprocess.Popen(
                [args.feast, "serve", "-h", "127.0.0.1", "-p", str(port), "--workers", "1"],
                cwd=repo,
                stdout=open(root / "feast-serve.log", "ab"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
            procs.append(server)
            url = f"http://127.0.0.1:{port}/get-online-features"
            user0, leads0 = user_ids[0], lead_ids[: args.candidates]

            def serving() -> bool:
                try:
                    theirs(url, user0, leads0)
                    return True
                except OSError:
                    return server.poll() is not None

            wait_until(serving, 120, "feast serve")
            if server.poll() is not None:
                raise SystemExit(f"feast serve exited; see {root / 'feast-serve.log'}")
            answer = theirs(url, user0, leads0)
            statuses = answer["results"][1]["values"]
            assert len(statuses) == len(leads0), answer
            # Same values in both stores (a lead's status).
            ours_status = [
                r.values[d.LEAD_STATUS]
                for r in store.read_rows(d.LEAD_ATTRIBUTES_V1, leads0, time.time())
            ]
            assert statuses == ours_status, (statuses[:5], ours_status[:5])
            timings: dict[str, list[float]] = {"project store": [], "feast serve": []}
            for _ in range(200):  # warm both
                ours(store, user0, leads0)
                theirs(url, user0, leads0)
            for i in range(args.requests):
                user = rng.choice(user_ids)
                leads = rng.sample(lead_ids, min(args.candidates, len(lead_ids)))
                order = [("project store", ours, store), ("feast serve", theirs, url)]
                if i % 2:
                    order.reverse()
                for name, call, target in order:
                    t0 = time.perf_counter()
                    call(target, user, leads)  # type: ignore[operator]
                    timings[name].append((time.perf_counter() - t0) * 1000)
            store.close()
        finally:
            for proc in reversed(procs):
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    print(
        f"\none recommendation's lookup: the user's behaviour row and {args.candidates} "
        f"candidate leads' status, {args.requests} lookups each, alternating"
    )
    base = float(np.percentile(timings["project store"], 95))
    for name, ms in timings.items():
        ratio = float(np.percentile(ms, 95)) / base
        print(f"{name:<14} {percentiles(ms)}   p95 {ratio:5.1f}x the project store's")
    print(
        f"added by Feast's feature server at p95: "
        f"{float(np.percentile(timings['feast serve'], 95)) - base:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
