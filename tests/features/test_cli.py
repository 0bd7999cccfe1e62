"""`aiqleads features describe | materialize | get` as a user runs them, against a real
online store (redis-server with the stack's arguments) and a small synthetic data set."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pandas as pd

BIN = pathlib.Path(sys.executable).parent / "aiqleads"


def aiqleads(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=300)


def _refused(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def test_materialize_then_get_and_describe(store_process, small_world):
    from aiqleads.features.definitions import REGISTRY

    root, days = small_world
    url = store_process.url
    as_of = days[-2].isoformat()
    done = aiqleads("features", "materialize", "--data", str(root), "--url", url, "--as-of", as_of)
    assert done.returncode == 0, done.stderr
    leads = pd.read_csv(root / "leads.csv")
    users = pd.read_csv(root / "users.csv")
    # Progress on stderr, the summary on stdout, with the counts of the data set.
    assert "[materialize]" in done.stderr
    summary = done.stdout
    assert f"materialized as of {as_of}: {len(leads):,} leads" in summary
    assert f"{len(users):,} users" in summary and "rows/s" in summary

    lead = leads.iloc[0]
    got = aiqleads("features", "get", "--entity", f"lead:{lead['lead_id']}", "--url", url, "--json")
    assert got.returncode == 0, got.stderr
    rows = json.loads(got.stdout)["rows"]
    assert rows and all(r["found"] for r in rows)
    attributes = next(r for r in rows if "price" in r["values"])
    assert attributes["values"]["price"] == float(lead["price"])

    unknown = aiqleads("features", "get", "--entity", "user:nobody", "--url", url, "--json")
    assert unknown.returncode == 0, unknown.stderr
    rows = json.loads(unknown.stdout)["rows"]
    assert rows and not any(r["found"] for r in rows)
    user_view = REGISTRY.latest(rows[0]["view"])
    assert rows[0]["values"] == json.loads(json.dumps(user_view.defaults()))  # the defaults

    text = aiqleads("features", "describe", "--url", url)
    assert text.returncode == 0, text.stderr
    described = json.loads(aiqleads("features", "describe", "--url", url, "--json").stdout)
    in_store = [v for v in described["views"] if v["materialized"]]
    assert in_store and all(v["store"].get("as_of") == as_of for v in in_store)
    lead_rows = [v for v in in_store if v["entity"] == "lead"]
    assert all(int(v["store"]["rows"]) == len(leads) for v in lead_rows)
    for name in REGISTRY.names:
        assert f"{name}:{REGISTRY.latest(name).version}" in text.stdout


def test_describe_needs_no_store():
    from aiqleads.features.definitions import REGISTRY

    result = aiqleads("features", "describe", "--json")
    assert result.returncode == 0, result.stderr
    views = json.loads(result.stdout)["views"]
    assert {v["view"] for v in views} == set(REGISTRY.names)
    assert all(v["store"] == {} for v in views)
    models = {v["view"]: v["version"] for v in views if v["in_model"]}
    assert models == REGISTRY.model_versions()


def test_bad_input_is_a_one_line_error(tmp_path, store_process):
    _refused(
        aiqleads("features", "get", "--entity", "house:1", "--url", store_process.url),
        "must be <entity>:<id>",
    )
    _refused(
        aiqleads("features", "get", "--entity", "user:u1", "--url", "http://127.0.0.1:1"),
        "must start with redis://",
    )
    down = aiqleads("features", "get", "--entity", "user:u1", "--url", "redis://127.0.0.1:1/0")
    assert down.returncode != 0 and "Traceback" not in down.stderr
    assert "redis://127.0.0.1:1/0" in down.stderr and len(down.stderr.strip().splitlines()) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    result = aiqleads("features", "materialize", "--data", str(empty), "--url", store_process.url)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr


def test_put_changes_a_lead_and_refuses_what_does_not_fit(store_process):
    import redis

    from aiqleads.features import keys

    url = store_process.url
    client = redis.Redis.from_url(url)
    done = aiqleads(
        "features", "put", "--entity", "lead:L7", "--set", "status=sold",
        "--set", "price=410000", "--url", url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "lead:L7 lead_attributes:1: status='sold', price=410000.0" in done.stdout
    assert client.smembers(keys.UNAVAILABLE) == {b"L7"}
    got = json.loads(
        aiqleads("features", "get", "--entity", "lead:L7", "--url", url, "--json").stdout
    )
    values = next(r["values"] for r in got["rows"] if "status" in r["values"])
    assert (values["status"], values["price"]) == ("sold", 410000.0)
    # Back on the market: out of the unavailable set.
    assert aiqleads("features", "put", "--entity", "lead:L7", "--set", "status=active",
                    "--url", url).returncode == 0  # fmt: skip
    assert client.smembers(keys.UNAVAILABLE) == set()

    def refused(*args: str, word: str) -> None:
        result = aiqleads("features", "put", *args, "--url", url)
        assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
        assert word in result.stderr, result.stderr

    refused("--entity", "lead:L7", "--set", "price=cheap", word="price")
    refused("--entity", "lead:L7", "--set", "status=gone", word="status")
    refused("--entity", "lead:L7", "--set", "colour=red", word="has no feature 'colour'")
    refused("--entity", "lead:L7", "--set", "status", word="FEATURE=VALUE")
    refused("--entity", "user:u1", "--set", "user_views=3", word="materialize")
    refused("--entity", "lead:L7", "--view", "region_market", "--set", "x=1", word="not a view")
    # Nothing of the refused writes reached the store.
    got = json.loads(
        aiqleads("features", "get", "--entity", "lead:L7", "--url", url, "--json").stdout
    )
    values = next(r["values"] for r in got["rows"] if "status" in r["values"])
    assert (values["status"], values["price"]) == ("active", 410000.0)
