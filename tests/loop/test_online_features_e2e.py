"""Fresh features between retrainings, through Envoy on the session's stack: a lead marked
sold with `aiqleads features put` leaves the answers within seconds (cached or not), a
new user's inquiries re-rank their next answer without a retrain, and with the online store
down the answers come from the model's snapshot (counted, never an error).

The module's stack (`tests/loop_fixtures.py`'s `serve`, on the session's loop world and its
model, trained with the `recommend_online` signature) runs the online store and its
updater, which materialized the loop world at start.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
import uuid

import pandas as pd
import pytest
from loop_fixtures import run_cli, serve, wait_healthy

from aiqleads import contracts, layout

pytestmark = pytest.mark.e2e
FRESH_SECONDS = 5.0  # the bound: a status change gone from every answer within it
K = 10


@pytest.fixture(scope="module")
def online_stack(loop_world, tmp_path_factory):
    with serve(loop_world, tmp_path_factory.mktemp("online-stack"), feature_store=True) as stack:
        yield stack


def _post(stack, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{stack.front}{path}",
        json.dumps(body).encode(),
        {"content-type": "application/json", **stack.auth_headers},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _recommend(stack, user_id: str, k: int = K) -> dict:
    return _post(stack, "/v1/recommendations", {"user_id": user_id, "k": k})


def _leads(answer: dict) -> list[str]:
    return [item["lead_id"] for item in answer["items"]]


def _put(stack, lead_id: str, status: str) -> None:
    run_cli(
        "features", "put", "--entity", f"lead:{lead_id}", "--set", f"status={status}",
        "--url", stack.addresses.online_store_url,
    )  # fmt: skip


def _answer_if(stack, user_id: str, accept, k: int = K) -> dict | None:
    """The user's answer now if ``accept(lead ids)``, else None."""
    answer = _recommend(stack, user_id, k)
    return answer if accept(_leads(answer)) else None


def _outcome(stack, outcome: str) -> float:
    """`aiqleads_gateway_online_features_total{outcome}` over the gateways, from Prometheus."""
    query = f'sum(aiqleads_gateway_online_features_total{{outcome="{outcome}"}})'
    url = (
        f"{stack.addresses.prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    )
    with urllib.request.urlopen(url, timeout=10) as response:
        result = json.loads(response.read())["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def _until(predicate, timeout: float, interval: float = 0.05):
    """(the first true value of ``predicate()``, seconds it took); (None, timeout) if none."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        value = predicate()
        if value:
            return value, time.monotonic() - started
        time.sleep(interval)
    return None, timeout


def test_a_lead_marked_sold_leaves_every_answer_within_seconds(online_stack):
    stack = online_stack
    wait_healthy(stack)
    assert stack.addresses.online_store_url
    users = ["u000003", "u000007"]
    first = {u: _recommend(stack, u) for u in users}
    sold = _leads(first[users[0]])[0]
    assert _recommend(stack, users[0])["cached"], "the answer should be cached before the sale"
    _put(stack, sold, "sold")
    try:
        for user in users:
            answer, seconds = _until(
                lambda u=user: _answer_if(stack, u, lambda leads: sold not in leads),
                FRESH_SECONDS,
            )
            assert answer is not None, f"{sold} still in {user}'s answer after {FRESH_SECONDS} s"
            assert len(answer["items"]) == K, answer
            again = _recommend(stack, user)  # now from the cache, and still without it
            assert again["cached"] and sold not in _leads(again), again
        # Back on the market: the model may recommend it again (the store, not the model,
        # had left it out).
        _put(stack, sold, "active")
        back, _ = _until(lambda: sold in _leads(_recommend(stack, users[0])), FRESH_SECONDS)
        assert back, f"{sold} did not come back after it became active again"
    finally:
        _put(stack, sold, "active")


def _condos_of_one_area(data) -> tuple[str, list[str], set[str]]:
    """A region, three of its condos, and every condo of that region."""
    leads = pd.read_csv(layout.table_path(data, contracts.LEADS), dtype=str)
    condos = leads[leads[contracts.PROPERTY_TYPE] == "condo"]
    region = condos[contracts.REGION].value_counts().index[0]
    mine = condos[condos[contracts.REGION] == region]
    return region, mine[contracts.LEAD_ID].tolist()[:3], set(mine[contracts.LEAD_ID])


def test_a_new_users_inquiries_rerank_their_next_answer_without_a_retrain(loop_world, online_stack):
    stack = online_stack
    wait_healthy(stack)
    region, inquired, area = _condos_of_one_area(loop_world.data)
    user = f"new-{uuid.uuid4().hex[:8]}"
    unknown = _outcome(stack, "unknown")
    before = _recommend(stack, user, k=20)
    # Unknown to the store: the snapshot's features (a cold start), counted as such.
    counted, _ = _until(lambda: _outcome(stack, "unknown") > unknown, 15, interval=0.5)
    assert counted, "the unknown user's lookup was not counted"
    in_area_before = sum(lead in area for lead in _leads(before))
    for lead in inquired:
        _post(
            stack,
            "/v1/feedback",
            {
                "request_id": before["request_id"],
                "user_id": user,
                "lead_id": lead,
                "event_type": "inquiry",
            },
        )
    after, seconds = _until(
        lambda: _answer_if(stack, user, lambda leads: leads != _leads(before), k=20),
        FRESH_SECONDS,
        interval=0.2,
    )
    assert after is not None, "the answer did not change after three inquiries"
    in_area_after = sum(lead in area for lead in _leads(after))
    print(
        f"\n{region} condos in the top 20: {in_area_before} before, {in_area_after} after "
        f"three inquiries (answer changed after {seconds:.1f} s)"
    )
    assert in_area_after > in_area_before, (region, _leads(before), _leads(after))
    assert after["model_version"] == before["model_version"]  # no retrain in between


def test_with_the_online_store_down_answers_come_from_the_snapshot(online_stack):
    stack = online_stack
    wait_healthy(stack)
    errors = _outcome(stack, "store_error")
    old = stack.kill("online-store")
    try:
        for i in range(10):  # new keys: each one a lookup that fails, then the model
            answer = _recommend(stack, f"u{i + 11:06d}")
            assert len(answer["items"]) == K, answer
        counted, _ = _until(lambda: _outcome(stack, "store_error") > errors, 15, interval=0.5)
        assert counted, "the failed lookups were not counted"
    finally:
        stack.wait_restarted("online-store", old)
        wait_healthy(stack)
