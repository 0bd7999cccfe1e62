"""Pipeline wall time: per component (from MLMD) and in total, on the default and smoke sets.

Each data set runs in a fresh runs folder (no cache), with the LocalDagRunner and the Beam
DirectRunner, exactly like `aiqleads pipeline run`. Prints a table per data set (component,
state, seconds from the MLMD execution's create/update times), the total against its target
(default set: 15 minutes, smoke set: 8 minutes) and, as the baseline measured in the same
run, a cached rerun of the smoke set (what a run with no new data costs).

    .venv/bin/python benchmarks/pipeline_time.py [--stage push] [--skip-default]
        [--publish-to runs/serving_models/lead_recommender]

``--publish-to`` copies the model version the default run pushed into that base path (what
`aiqleads serve` and `benchmarks/serving.py` serve), so the serving benchmark runs on the
model this very run trained.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aiqleads import contracts, layout  # noqa: E402
from aiqleads.data import synth  # noqa: E402
from pipeline import config, local_runner, pipeline, run_report  # noqa: E402

TARGETS_S = {"default": 15 * 60, "smoke": 8 * 60}


def _data(name: str, scratch: pathlib.Path) -> pathlib.Path:
    if name == "default":
        path = REPO / "runs" / "data" / "default"
        if not layout.table_path(path, contracts.LEADS).is_file():
            synth.generate(synth.preset("default"), path)
        return path
    path = scratch / name
    synth.generate(synth.preset(name), path)
    return path


def _run(cfg: config.PipelineConfig, stage: str) -> tuple[float, list[run_report.ComponentRun]]:
    started = time.perf_counter()
    summary = local_runner.run(cfg, stage=stage, say=lambda line: print(f"  {line}", flush=True))
    return time.perf_counter() - started, summary.runs


def _publish(base: pathlib.Path, target: pathlib.Path) -> None:
    versions = sorted((p for p in base.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    if not versions:
        print(f"nothing pushed under {base}: nothing to publish", flush=True)
        return
    target.mkdir(parents=True, exist_ok=True)
    final = target / versions[-1].name
    staging = target / f".{versions[-1].name}.partial"  # not a version dir until renamed
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(versions[-1], staging)
    staging.rename(final)
    print(f"published model version {final.name} to {target}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=pipeline.STAGES, default="push")
    parser.add_argument("--skip-default", action="store_true", help="time the smoke set only")
    parser.add_argument(
        "--publish-to", type=pathlib.Path, help="copy the default run's pushed model here"
    )
    args = parser.parse_args()
    names = ["smoke"] if args.skip_default else ["default", "smoke"]
    totals = {}
    with tempfile.TemporaryDirectory(prefix="aiqleads-bench-") as tmp:
        scratch = pathlib.Path(tmp)
        for name in names:
            data = _data(name, scratch)
            runs = scratch / f"runs-{name}"
            cfg = config.load_config().with_overrides(
                data_root=str(data),
                runs_dir=str(runs),
                serving_model_dir=str(runs / "serving_models" / config.MODEL_NAME),
            )
            print(f"\n== {name}: {data} (stage {args.stage})", flush=True)
            wall, component_runs = _run(cfg, args.stage)
            print(run_report.format_timings(component_runs))
            target = TARGETS_S[name]
            print(
                f"{name}: wall {wall:.1f}s, components {sum(r.seconds for r in component_runs):.1f}s, "
                f"target {target}s, wall/target {wall / target:.2f}"
            )
            totals[name] = wall
            if name == "default" and args.publish_to:
                _publish(runs / "serving_models" / config.MODEL_NAME, args.publish_to)
            if name == "smoke":
                cached_wall, _ = _run(cfg, args.stage)
                print(
                    f"smoke cached rerun (baseline): wall {cached_wall:.1f}s, "
                    f"full/cached {wall / cached_wall:.1f}x"
                )
    print("\nsummary: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in totals.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
