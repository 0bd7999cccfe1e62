"""What the online feature store costs and gives, on one machine, in one run:

1. the miss and hit p95 through Envoy at 200 req/s with the store off (the model's snapshot
   alone) against on (each recommendation reads the user's rows and the availability), on
   fresh stacks, alternating, ``--rounds`` times (medians over the rounds);
2. the online lookup itself inside the gateways (from the gateway's in-process mirror, else
   one pipelined round trip), p50 and p95 from their histogram
   (`aiqleads_gateway_online_lookup_seconds`, buckets from 0.1 ms), over the on-step's
   requests, and how many were answered from memory and from the store;
3. freshness: a lead in a user's answer is marked sold in the store, then the user's answer
   is polled through Envoy until the lead is gone (p50/p95 over ``--freshness-trials``);
4. materialization throughput (rows/s) of the data set into the running store.

    .venv/bin/python benchmarks/online_features.py --data DIR --model-base-path BASE \
        [--rate 200] [--duration 15] [--warmup 10] [--rounds 2]

The model must have been trained by this version of the pipeline (its `feature_views` and
`recommend_online` signatures); the data set is the one it was trained on (its users are
the trace's, Zipf-distributed). Target: the miss p95 stays under 10 ms with the store on.
"""

from __future__ import annotations

import json
import math
import pathlib
import statistics
import sys
import tempfile
import time
import urllib.request

import numpy as np
import pandas as pd

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aiqleads import contracts, layout  # noqa: E402
from aiqleads.features import materialize as m  # noqa: E402
from aiqleads.features.definitions import LEAD, LEAD_ATTRIBUTES_V1, LEAD_STATUS  # noqa: E402
from aiqleads.features.online import OnlineStore  # noqa: E402
from benchmarks.harness import load, stacks  # noqa: E402
from serving.launcher import ServingStack  # noqa: E402
from serving.settings import ServingSettings  # noqa: E402

TARGET_MISS_P95_MS = 10.0
LOOKUP = "aiqleads_gateway_online_lookup_seconds"


def trace_of(data: pathlib.Path, size: int, seed: int = 11) -> list[str]:
    """The data set's users, Zipf-distributed (exponent 1.3) over a shuffled order."""
    users = pd.read_csv(layout.table_path(data, contracts.USERS), dtype=str)[contracts.USER_ID]
    rng = np.random.default_rng(seed)
    order = rng.permutation(users.to_numpy())
    weights = 1.0 / np.arange(1, len(order) + 1) ** 1.3
    return list(rng.choice(order, size=size, p=weights / weights.sum()))


def _gateway_metrics(stack: ServingStack) -> str:
    return "".join(
        urllib.request.urlopen(f"http://{r.host}:{r.rest_port}/metrics", timeout=5).read().decode()
        for r in stack.topology.gateways
    )


def _counts(text: str, name: str, label: str) -> dict[str, float]:
    """Counter ``name`` summed over the gateways' expositions in ``text``, by ``label``."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(f"{name}{{"):
            value = line.split(f'{label}="')[1].split('"')[0]
            out[value] = out.get(value, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def _outcomes(text: str) -> dict[str, float]:
    return _counts(text, "aiqleads_gateway_online_features_total", "outcome")


def histogram_percentile(text: str, name: str, q: float) -> tuple[float, int]:
    """(the ``q``-th percentile in ms, the count) of histogram ``name`` summed over the
    gateways' expositions in ``text``, linearly interpolated within its buckets."""
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            le = line.split('le="')[1].split('"')[0]
            bound = float("inf") if le == "+Inf" else float(le)
            buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if not total:
        return math.nan, 0
    rank, lower, below = total * q / 100, 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if math.isinf(bound):
                return lower * 1000, int(total)
            share = (rank - below) / max(buckets[bound] - below, 1e-12)
            return (lower + share * (bound - lower)) * 1000, int(total)
        lower, below = bound, buckets[bound]
    return lower * 1000, int(total)


def _post(stack: ServingStack, user: str, k: int = 10) -> dict:
    request = urllib.request.Request(
        f"{stacks.front_url(stack)}{load.RECOMMEND}",
        json.dumps({"user_id": user, "k": k}).encode(),
        {"content-type": "application/json", **stack.auth_headers()},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def freshness(stack: ServingStack, users: list[str], trials: int) -> list[float]:
    """Seconds from a lead's status change in the store to the first answer without it."""
    store = OnlineStore(stack.settings.feature_store.url)
    out = []
    try:
        for user in users[:trials]:
            lead = _post(stack, user)["items"][0]["lead_id"]
            _post(stack, user)  # the answer is cached now
            started = time.perf_counter()
            store.put(LEAD, lead, LEAD_ATTRIBUTES_V1.name, {LEAD_STATUS: "sold"})
            while lead in [i["lead_id"] for i in _post(stack, user)["items"]]:
                if time.perf_counter() - started > 30:
                    raise SystemExit(f"{lead} still recommended to {user} after 30 s")
                time.sleep(0.005)
            out.append(time.perf_counter() - started)
            store.put(LEAD, lead, LEAD_ATTRIBUTES_V1.name, {LEAD_STATUS: "active"})
    finally:
        store.close()
    return out


def step(settings: ServingSettings, on: bool, trace: list[str], args, extra: dict) -> tuple:
    """(hit p95, miss p95) of one stack; with the store on, its lookups and freshness too."""
    stack = ServingStack(
        settings.with_overrides(
            **{"feature_store.enabled": on, "run_dir": str(settings.run_dir / f"store-{on}")}
        ),
        progress=lambda _line: None,
    )
    with stacks.supervised(stack):
        if on:
            _post(stack, trace[0])
            if _outcomes(_gateway_metrics(stack)).get("snapshot_model"):
                raise SystemExit(
                    "the model has no feature_views / recommend_online signatures: train one "
                    "with this version (aiqleads pipeline run) and pass --model-base-path"
                )
        r = stacks.warm_then_measure(stack, trace, args)
        hits, misses = r.hits_and_misses()
        hit_p95, miss_p95 = load.pct(hits, 95), load.pct(misses, 95)
        line = (
            f"  store {'on ' if on else 'off'}: hit p95 {hit_p95:6.2f} ms ({len(hits)}), "
            f"miss p95 {miss_p95:6.2f} ms ({len(misses)}), errors {r.n_errors}"
        )
        if on:
            text = _gateway_metrics(stack)
            outcomes = _outcomes(text)
            reads = _counts(text, "aiqleads_gateway_online_reads_total", "source")
            line += (
                f"; lookups {', '.join(f'{k} {v:.0f}' for k, v in sorted(outcomes.items()))}"
                f" ({', '.join(f'from {k} {v:.0f}' for k, v in sorted(reads.items()))})"
            )
            for q in (50, 95):
                extra.setdefault(q, []).append(histogram_percentile(text, LOOKUP, q)[0])
            if "fresh" not in extra:
                extra["fresh"] = freshness(stack, trace[1::13], args.freshness_trials)
                extra["materialize"] = _materialize(stack, args.data)
        print(line, flush=True)
    return hit_p95, miss_p95


def _materialize(stack: ServingStack, data: pathlib.Path) -> tuple[int, float]:
    store = OnlineStore(stack.settings.feature_store.url)
    try:
        summary = m.materialize(store, data, m.default_as_of(data))
    finally:
        store.close()
    return summary.rows, summary.seconds


def main() -> None:
    parser = stacks.on_off_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=pathlib.Path, required=True, help="the model's data set")
    parser.add_argument("--freshness-trials", type=int, default=20)
    args = stacks.parse_on_off(parser)
    if not (args.data / "users.csv").is_file():
        parser.error(f"--data {args.data}: no users.csv (a data set root)")
    if not 1 <= args.freshness_trials <= 200:
        parser.error("--freshness-trials 1..200")
    stacks.load_average("at start")
    extra: dict = {}
    results: dict[bool, list[tuple]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="aiqleads-bench-features-") as tmp_name:
        tmp = pathlib.Path(tmp_name)
        settings = stacks.settings(
            stacks.model_base(args.model_base_path, tmp),
            tmp / "run",
            **{**stacks.LOAD_TEST, "feature_store.data_dir": str(args.data.resolve())},
        )
        trace = trace_of(args.data, 200_000)
        print(
            f"{args.rate:.0f} req/s, {args.warmup:.0f} s warm-up + {args.duration:.0f} s per "
            f"step; {len(set(trace))} users of {args.data}",
            flush=True,
        )
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}", flush=True)
            for on in (False, True):
                results[on].append(step(settings, on, trace, args, extra))
    (off_hit, off_miss), (on_hit, on_miss) = (
        [statistics.median(x) for x in zip(*results[k], strict=True)] for k in (False, True)
    )
    fresh = extra["fresh"]
    rows, seconds = extra["materialize"]
    print(
        f"\nmedians over {args.rounds} rounds: miss p95 {off_miss:.2f} -> {on_miss:.2f} ms "
        f"({on_miss - off_miss:+.2f} ms; target < {TARGET_MISS_P95_MS:.0f} ms with the store: "
        f"{'met' if on_miss < TARGET_MISS_P95_MS else 'NOT met'}), hit p95 {off_hit:.2f} -> "
        f"{on_hit:.2f} ms ({on_hit - off_hit:+.2f} ms)"
    )
    print(
        f"online lookup in the gateways (user rows + availability: the mirror, else one round "
        f"trip; their "
        f"histogram, interpolated in its buckets, median over rounds): p50 "
        f"{statistics.median(extra[50]):.2f} ms, p95 {statistics.median(extra[95]):.2f} ms"
    )
    print(
        f"freshness (status change -> answer without the lead, through Envoy): p50 "
        f"{statistics.median(fresh) * 1000:.0f} ms, p95 {load.pct(fresh, 95) * 1000:.0f} ms "
        f"({len(fresh)} trials)"
    )
    print(f"materialization: {rows:,} rows in {seconds:.2f} s, {rows / seconds:,.0f} rows/s")
    stacks.load_average("at the end")


if __name__ == "__main__":
    main()
