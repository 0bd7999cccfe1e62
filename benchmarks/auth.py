"""What authentication at the front door costs: hit and miss p95 through Envoy at 200 req/s
with auth on (jwt_authn, RBAC, the per-client rate limit; a bearer token on every request)
against off, alternating fresh stacks in one run (medians over rounds).

    .venv/bin/python benchmarks/auth.py [--rate 200] [--duration 15] [--warmup 10] [--rounds 2]

The target: the filters cost under 0.5 ms at p95 (on minus off, hits and misses).
"""

from __future__ import annotations

import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.harness import load, stacks  # noqa: E402
from serving.launcher import ServingStack  # noqa: E402
from serving.settings import ServingSettings  # noqa: E402

TARGET_MS = 0.5


def measure(
    settings: ServingSettings, auth_on: bool, args, trace: list[str]
) -> tuple[float, float]:
    """(hit p95, miss p95) of one step on a fresh stack."""
    stack = ServingStack(
        settings.with_overrides(
            **{"auth.enabled": auth_on, "run_dir": str(settings.run_dir / f"auth-{auth_on}")}
        ),
        progress=lambda _line: None,
    )
    with stacks.supervised(stack):
        assert bool(stack.auth_headers()) == auth_on
        r = stacks.warm_then_measure(stack, trace, args)
    hits, misses = r.hits_and_misses()
    hit_p95, miss_p95 = load.pct(hits, 95), load.pct(misses, 95)
    print(
        f"  auth {'on ' if auth_on else 'off'}: hit p95 {hit_p95:6.2f} ms ({len(hits)}), miss p95 "
        f"{miss_p95:6.2f} ms ({len(misses)}), errors {r.n_errors}",
        flush=True,
    )
    return hit_p95, miss_p95


def main() -> None:
    args = stacks.parse_on_off(stacks.on_off_parser(__doc__.split("\n\n")[0]))
    stacks.load_average("at start")
    overrides = {
        "monitoring": False,
        "auth.client_rate_limit.requests_per_second": stacks.UNLIMITED,
        "auth.client_rate_limit.burst": stacks.UNLIMITED,
    }
    plan = f"{args.rate:g} req/s, {args.warmup:g} s warm-up + {args.duration:g} s per step"
    off, on = stacks.compare(
        args,
        "aiqleads-bench-auth-",
        overrides,
        plan,
        lambda settings, auth_on, trace: measure(settings, auth_on, args, trace),
    )
    (off_hit, off_miss), (on_hit, on_miss) = off, on
    print(
        f"\nmedians over {args.rounds} rounds: hit p95 {off_hit:.2f} -> {on_hit:.2f} ms "
        f"({on_hit - off_hit:+.2f} ms), miss p95 {off_miss:.2f} -> {on_miss:.2f} ms "
        f"({on_miss - off_miss:+.2f} ms); target: auth adds < {TARGET_MS} ms at p95"
    )
    stacks.load_average("at the end")


if __name__ == "__main__":
    main()
