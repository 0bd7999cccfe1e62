"""Online quality benchmark: the trained model's CTR under the simulator, against per-region
popularity served the same way.

Both models are served by the local stack (`ServingStack`: model servers, gateways, Envoy,
event store) in turn, and the same simulated users (`aiqleads simulate`'s world and seed)
ask each of them for ``--k`` leads at ``--rate`` requests/s for ``--duration`` seconds. The
users react by their hidden preferences, so the CTR is measured against the ground truth.
Popularity is `components.baselines.popularity_export`: the offline baseline of
`benchmarks/quality.py`, exported with the `recommend` signature and fitted on the same
``--window`` spans as the pipeline's default.

It prints, per seed, each model's answers, errors, clicks, CTR with its 95% Wilson interval,
the CTR ratio model / popularity with its 95% interval, and Fisher's exact test of the
difference. A lift of a few percent needs about 10,000 answers per model to be told apart
(``--duration`` x ``--rate``).

    .venv/bin/python benchmarks/online_quality.py [--data runs/data/default]
        [--model-base runs/serving_models/lead_recommender] [--duration 300] [--rate 40]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no banner
REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aiqleads import layout  # noqa: E402
from aiqleads.events.quality import proportion_ci  # noqa: E402
from aiqleads.simulator import traffic  # noqa: E402
from aiqleads.simulator.world import load_world  # noqa: E402
from serving.launcher import ServingStack, model_versions  # noqa: E402
from serving.process import free_port  # noqa: E402
from serving.settings import ServingSettings  # noqa: E402


def serve_and_simulate(base: pathlib.Path, run_dir: pathlib.Path, world, args, seed: int):
    settings = ServingSettings(model_base_path=base, run_dir=run_dir).with_overrides(
        **{"envoy.port": free_port()}
    )
    with ServingStack(settings, progress=lambda msg: None) as stack:
        s = stack.settings
        url = f"http://{s.envoy.host}:{s.envoy.port}"
        return traffic.run(
            world, url, args.duration, args.rate, seed=seed, k=args.k, token=stack.token
        )


def main(argv: list[str] | None = None) -> None:
    from scipy import stats

    from components.baselines.popularity_export import export_popularity

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=pathlib.Path, default=REPO / "runs" / "data" / "default")
    parser.add_argument(
        "--model-base",
        type=pathlib.Path,
        default=REPO / "runs" / "serving_models" / "lead_recommender",
    )
    parser.add_argument("--window", type=int, default=14, help="spans popularity is fitted on")
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seeds", default="1,2")
    args = parser.parse_args(argv)
    if not model_versions(args.model_base):
        raise SystemExit(
            f"no model under {args.model_base}: run `make demo` (or pass --model-base)"
        )
    world = load_world(args.data)
    last = layout.list_spans(args.data)[-1]
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f} at start")
    print(f"data {args.data} (last span {last}), {len(world.user_ids)} users; model "
          f"{args.model_base} version {model_versions(args.model_base)[-1]}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="aiqleads-bench-online-") as tmp_name:
        tmp = pathlib.Path(tmp_name)
        popularity = tmp / "popularity" / "lead_recommender"
        export_popularity(args.data, last, args.window, popularity, version=1)
        print("model       seed  answers  errors  clicks  CTR [95% CI]              "
              "ratio [95% CI]         p")  # fmt: skip
        for seed in (int(s) for s in args.seeds.split(",")):
            rows = {}
            for name, base in (("trained", args.model_base), ("popularity", popularity)):
                stats_ = serve_and_simulate(base, tmp / f"run-{name}-{seed}", world, args, seed)
                rows[name] = stats_
            a, b = rows["trained"], rows["popularity"]
            ca, cb = a.events.get("click", 0), b.events.get("click", 0)
            _, p = stats.fisher_exact([[ca, a.answers - ca], [cb, b.answers - cb]])
            rr = stats.contingency.relative_risk(ca, a.answers, cb, b.answers)
            rr_ci = rr.confidence_interval(0.95)
            for name, st in rows.items():
                clicks = st.events.get("click", 0)
                low, high = proportion_ci(clicks, st.answers)
                ratio = (
                    f"{rr.relative_risk:.3f} [{rr_ci.low:.3f}, {rr_ci.high:.3f}]"
                    if name == "trained"
                    else ""
                )
                pv = f"{p:.2g}" if name == "trained" else ""
                print(f"{name:10s}  {seed:4d}  {st.answers:7d}  {st.errors:6d}  {clicks:6d}  "
                      f"{st.ctr:.4f} [{low:.4f}, {high:.4f}]  {ratio}  {pv}")  # fmt: skip
    print(
        "CTR = clicks / answers; the users react by their hidden preferences; ratio = trained "
        "CTR / popularity CTR; p: Fisher's exact test of the two CTRs"
    )


if __name__ == "__main__":
    main()
