"""What authentication at the front door costs: hit and miss p95 through Envoy at 200 req/s
with auth on (jwt_authn, RBAC, the per-client rate limit; a bearer token on every request)
against off, in one run.

    .venv/bin/python benchmarks/auth.py [--rate 200] [--duration 10] [--warmup 10] [--rounds 6]

Both stacks run side by side for the whole run (an idle stack costs next to nothing), and
the measured steps alternate between them, the order swapped every round, each round's two
steps on the same slice of one Zipf trace: a slow moment of a shared machine then falls on
both sides of a pair, not on one side of the comparison. The figures: each side's median p95
over the rounds, and the median of the rounds' differences (on minus off).

The target: the filters cost under 0.5 ms at p95 (on minus off, hits and misses).
"""

from __future__ import annotations

import contextlib
import pathlib
import statistics
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.harness import load, stacks  # noqa: E402
from serving.launcher import ServingStack  # noqa: E402
from serving.process import free_port  # noqa: E402

TARGET_MS = 0.5


def step(stack: ServingStack, users: list[str], args) -> tuple[float, float]:
    """(hit p95, miss p95) of ``users`` at ``args.rate`` through the stack's Envoy."""
    r = load.run_step(
        load.run_load(
            stacks.front_url(stack),
            users,
            args.rate,
            args.duration,
            load.RECOMMEND,
            headers=stack.auth_headers(),
        )
    )
    hits, misses = r.hits_and_misses()
    if r.n_errors:
        print(f"    errors: {r.errors}", flush=True)
    return load.pct(hits, 95), load.pct(misses, 95)


def main() -> None:
    parser = stacks.on_off_parser(__doc__.split("\n\n")[0])
    parser.set_defaults(duration=10.0, rounds=6)
    args = stacks.parse_on_off(parser)
    stacks.load_average("at start")
    n_warm, n_step = int(args.rate * args.warmup), int(args.rate * args.duration)
    trace = load.zipf_users(1000, 1.3, n_warm + n_step * args.rounds, seed=11)
    with tempfile.TemporaryDirectory(prefix="aiqleads-bench-auth-") as tmp_name:
        tmp = pathlib.Path(tmp_name)
        base = stacks.settings(
            stacks.model_base(args.model_base_path, tmp),
            tmp / "run",
            **{**stacks.LOAD_TEST, "feature_store.enabled": False},
        )
        sides = {
            on: ServingStack(
                base.with_overrides(
                    **{
                        "auth.enabled": on,
                        "run_dir": str(tmp / f"auth-{on}"),
                        "envoy.port": free_port() if on else base.envoy.port,
                    }
                ),
                progress=lambda _line: None,
            )
            for on in (False, True)
        }
        results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        with contextlib.ExitStack() as running:
            for on, stack in sides.items():
                running.enter_context(stacks.supervised(stack))
                assert bool(stack.auth_headers()) == on
            print(
                f"{args.rate:g} req/s; both stacks warmed {args.warmup:g} s, then {args.rounds} "
                f"rounds of {args.duration:g} s on each, alternating",
                flush=True,
            )
            if n_warm:
                for stack in sides.values():
                    step(stack, trace[:n_warm], args)
            for round_ in range(args.rounds):
                users = trace[n_warm + round_ * n_step : n_warm + (round_ + 1) * n_step]
                for on in (False, True) if round_ % 2 == 0 else (True, False):
                    results[on].append(step(sides[on], users, args))
                (oh, om), (nh, nm) = results[False][-1], results[True][-1]
                print(
                    f"  round {round_ + 1}: hit p95 {oh:5.2f} -> {nh:5.2f} ms ({nh - oh:+.2f}), "
                    f"miss p95 {om:6.2f} -> {nm:6.2f} ms ({nm - om:+.2f})",
                    flush=True,
                )
    (off_hit, off_miss), (on_hit, on_miss) = (
        [statistics.median(x) for x in zip(*results[k], strict=True)] for k in (False, True)
    )
    diff_hit, diff_miss = (
        statistics.median(
            on[i] - off[i] for off, on in zip(results[False], results[True], strict=True)
        )
        for i in (0, 1)
    )
    met = diff_hit < TARGET_MS and diff_miss < TARGET_MS
    print(
        f"\nmedians over {args.rounds} rounds: hit p95 {off_hit:.2f} -> {on_hit:.2f} ms, miss "
        f"p95 {off_miss:.2f} -> {on_miss:.2f} ms; median of the rounds' differences: hit "
        f"{diff_hit:+.2f} ms, miss {diff_miss:+.2f} ms (target: auth adds < {TARGET_MS} ms at "
        f"p95: {'met' if met else 'NOT met'})"
    )
    stacks.load_average("at the end")


if __name__ == "__main__":
    main()
