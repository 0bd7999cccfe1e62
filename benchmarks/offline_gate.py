"""Calibration of the offline gate: the Evaluator's metrics of the trained model, per-region
popularity and a degraded model on one pipeline run's eval split.

    .venv/bin/python benchmarks/offline_gate.py --runs RUNS_DIR [--degraded MODEL_DIR]

Reads the newest ExampleGen output and Trainer model of the run's MLMD, exports per-region
popularity fitted on the events before the eval days (`components.baselines.export`), and
runs TFMA with the pipeline's own eval config (`pipeline.eval_config`) on each model,
printing the overall metrics and whether each passes the value thresholds of the config
(``--config``; defaults otherwise). ``--degraded`` adds another SavedModel (for example the
Trainer output of a run with a tenth of the steps), compared against the trained model with
the change thresholds, as the Evaluator does against the latest blessed model.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import pathlib
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _latest_artifact(store, type_name: str, having: str | None = None):
    artifacts = [
        a
        for a in store.get_artifacts_by_type(type_name)
        if having is None or having in a.custom_properties
    ]
    if not artifacts:
        raise SystemExit(f"no {type_name} artifact in the MLMD store")
    return max(artifacts, key=lambda a: a.id)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", required=True, type=pathlib.Path, help="runs_dir of the run")
    parser.add_argument("--config", default=None, help="pipeline config YAML (thresholds)")
    parser.add_argument("--degraded", default=None, help="another SavedModel to compare")
    args = parser.parse_args(argv)

    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    from components.baselines.export import export_popularity
    from components.example_gen import spec as eg_spec
    from pipeline.config import load_config
    from pipeline.gate_check import evaluate, value_failures

    cfg = load_config(args.config)
    sqlite = sorted((args.runs / "metadata").glob("*.sqlite"))[0]
    conn = metadata_store_pb2.ConnectionConfig()
    conn.sqlite.filename_uri = str(sqlite)
    store = metadata_store.MetadataStore(conn)
    examples = _latest_artifact(store, "Examples", having=eg_spec.WINDOW_LAST_PROPERTY)
    model = _latest_artifact(store, "Model")
    last = dt.date.fromisoformat(
        examples.custom_properties[eg_spec.WINDOW_LAST_PROPERTY].string_value
    )
    eval_days = cfg.example_gen.eval_days
    cut = last - dt.timedelta(days=eval_days)
    eval_glob = f"{examples.uri}/Split-eval/*"
    work = pathlib.Path(tempfile.mkdtemp(prefix="aiqleads-gate-"))
    pop_dir = export_popularity(cfg.data_path, cut, work / "popularity")
    models = {"model": f"{model.uri}/Format-Serving", "popularity": str(pop_dir)}
    if args.degraded:
        models["degraded"] = args.degraded
    print(f"eval split {eval_glob}; window ends {last}, popularity fitted up to {cut}")
    e = cfg.evaluator
    rows = {}
    for name, path in models.items():
        started = time.perf_counter()
        rows[name] = evaluate(path, eval_glob, e, work / f"eval-{name}")
        took = time.perf_counter() - started
        m = rows[name]
        failures = value_failures(m, e)
        print(
            f"{name:<11} ndcg@{e.top_k} {m.get(f'ndcg@{e.top_k}', float('nan')):.4f}  "
            f"hit_rate@{e.top_k} {m.get(f'hit_rate@{e.top_k}', float('nan')):.4f}  "
            f"recall@{e.top_k} {m.get(f'recall@{e.top_k}', float('nan')):.4f}  "
            f"auc {m.get('engagement_auc', float('nan')):.4f}  value thresholds: "
            f"{'FAIL (' + '; '.join(failures) + ')' if failures else 'pass'}  ({took:.0f} s)"
        )
    if "degraded" in rows:
        drop = rows["model"][f"ndcg@{e.top_k}"] - rows["degraded"][f"ndcg@{e.top_k}"]
        auc_drop = rows["model"]["engagement_auc"] - rows["degraded"]["engagement_auc"]
        print(
            f"degraded vs model: ndcg drop {drop:.4f} (max {e.max_ndcg_drop}), auc drop "
            f"{auc_drop:.4f} (max {e.max_auc_drop}): "
            f"{'FAIL' if drop > e.max_ndcg_drop or auc_drop > e.max_auc_drop else 'pass'}"
        )
    print(json.dumps(rows, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
