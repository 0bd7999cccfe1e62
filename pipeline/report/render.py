"""Build one run's report: read its artifacts (`run_artifacts`), render each section, write
one self-contained HTML file.

Sections: the run (what ran, what was pushed), data (TFDV statistics, newest span against
the previous one, anomalies, the drift report and its thresholds), model (TFMA overall and
per slice against the blessed baseline, the gate's thresholds; new vs known users), plots
(calibration, precision/recall at k, score distributions), geography, and cost (wall time
per component). A section whose step did not run says so; the report of a run the drift
check stopped still shows the data and the drift.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from components.drift_check import executor as drift_executor
from pipeline import run_log, run_report
from pipeline.config import PipelineConfig
from pipeline.report import (
    data_section,
    examples,
    figures,
    geo_section,
    model_section,
    plots_section,
    run_artifacts,
    scoring,
)
from pipeline.report import html as h
from transforms import features as f

TRAIN, EVAL = "train", "eval"
DEFAULT_TOP_K = 10


@dataclasses.dataclass(frozen=True)
class Rendered:
    path: pathlib.Path
    run_id: str
    seconds: float


def evaluation_top_k(evaluation_uri: str | None) -> int:
    """The cut-off of the Evaluator's ranking metrics (its binarize top_k), from the run."""
    if evaluation_uri is None:
        return DEFAULT_TOP_K
    config = model_section.load_eval_config(evaluation_uri)
    for spec in config.metrics_specs:
        if spec.binarize.top_k_list.values:
            return int(spec.binarize.top_k_list.values[0])
    return DEFAULT_TOP_K


def _split_sizes(splits: dict[str, examples.Split]) -> pd.DataFrame:
    rows = []
    for name, split in splits.items():
        frame = split.frame
        if frame.empty:
            continue
        days = pd.to_datetime(frame[f.EVENT_TIMESTAMP], unit="s").dt.date
        rows.append(
            {
                "split": name,
                "examples": len(frame),
                "engaged": int((frame[f.ENGAGEMENT] > 0).sum()),
                "users": frame[f.USER_ID].nunique(),
                "leads": frame[f.LEAD_ID].nunique(),
                "first day": str(days.min()),
                "last day": str(days.max()),
            }
        )
    return pd.DataFrame(rows)


def _run_lines(found: run_artifacts.RunArtifacts) -> list[str]:
    props = found.example_gen_properties
    lines = [f"run {found.run_id}"]
    if props:
        lines.append(
            f"data {props.get('data_root', '-')}, window of {props.get('window_spans', '-')} "
            f"spans ending {props.get('as_of') or 'at the newest span'}"
        )
    failed = [r for r in found.runs if r.state == run_report.FAILED]
    if failed:
        # A step that raised (rather than returning a failed execution) leaves no message.
        first_line = (failed[0].message.splitlines() or ["see the run's log"])[0]
        lines.append(f"stopped: {failed[0].component} failed: {first_line}")
    elif found.pushed_to:
        lines.append(f"blessed and pushed to {found.pushed_to}")
    elif found.blessed is False:
        lines.append("not blessed: nothing pushed")
    return lines


def _cost_section(runs: tuple[run_report.ComponentRun, ...]) -> str:
    table = pd.DataFrame(
        [{"component": r.component, "state": r.state, "seconds": r.seconds} for r in runs]
    )
    if table.empty:
        return h.note("No component ran.")
    total = pd.DataFrame([{"component": "total", "state": "", "seconds": table["seconds"].sum()}])
    fig, (ax,) = figures.new_figure(7.0, 0.3 * len(table) + 1.2)
    order = table.iloc[::-1]
    colors = [
        "#8d99ae" if s == run_report.CACHED else "#d1495b" if s == run_report.FAILED else "#2e86ab"
        for s in order["state"]
    ]
    ax.barh(order["component"], order["seconds"], color=colors)
    ax.set_xlabel("wall time (s); grey: from the cache, red: failed")
    ax.tick_params(labelsize=8)
    return h.figure(
        figures.to_svg(fig), "Wall time per component, from MLMD.", "component-times"
    ) + h.table(pd.concat([table, total], ignore_index=True))


def _sources(found: run_artifacts.RunArtifacts) -> str:
    rows = [
        {"artifact": name, "uri": getattr(found, name)}
        for name in (
            "schema",
            "examples",
            "statistics",
            "anomalies",
            "drift_report",
            "transform_graph",
            "model",
            "baseline_model",
            "evaluation",
        )
        if getattr(found, name)
    ]
    return h.note("Every figure and table above is computed from these artifacts:") + h.table(
        pd.DataFrame(rows)
    )


def render(
    found: run_artifacts.RunArtifacts,
    out_file: pathlib.Path,
    say: Callable[[str], None] = lambda _: None,
) -> Rendered:
    """Write the report of the run ``found`` describes to ``out_file``."""
    started = time.perf_counter()
    schema = examples.load_schema(found.schema) if found.schema else None
    splits: dict[str, examples.Split] = {}
    if found.examples and schema is not None:
        for name in (TRAIN, EVAL):
            splits[name] = examples.read_split(found.examples, name, schema)
    say(f"read {sum(len(s.records) for s in splits.values()):,} examples")
    report = drift_executor.read_report(found.drift_report) if found.drift_report else None

    pair = None
    if splits:
        everything = pd.concat([s.frame for s in splits.values()], ignore_index=True)
        positives = everything[everything[f.ENGAGEMENT] > 0]
        if not positives.empty:
            pair = data_section.span_pair(positives)

    top_k = evaluation_top_k(found.evaluation)
    scored: pd.DataFrame | None = None
    models: list[str] = []
    if EVAL in splits and found.candidate_saved_model:
        scored = splits[EVAL].frame.copy()
        for name, path in (
            (scoring.CANDIDATE, found.candidate_saved_model),
            (scoring.BASELINE, found.baseline_saved_model),
        ):
            if path:
                scored[name] = scoring.score(path, splits[EVAL].records)
                models.append(name)
        say(f"scored the eval split with {' and '.join(models)}")

    leads = None
    if found.transform_graph and splits:
        frames = [s.frame for s in splits.values()]
        records = [r for s in splits.values() for r in s.records]
        leads = geo_section.lead_features(
            found.transform_graph, pd.concat(frames, ignore_index=True), records
        )

    sections = [
        h.Section(
            "data",
            "Data",
            data_section.render(
                found.statistics, found.anomalies, report, pair, schema, _split_sizes(splits)
            ),
        ),
        h.Section("model", "Model", _model_body(found, scored, models, top_k)),
        h.Section("plots", "Plots", plots_section.render(scored, models, top_k)),
        h.Section(
            "geography",
            "Geography",
            geo_section.render(
                leads,
                None if pair is None else pair.current,
                None if pair is None else pair.before,
                ("newest", "previous")
                if pair is None
                else (pair.newest, pair.previous or "previous"),
                report,
            ),
        ),
        h.Section("cost", "Cost", _cost_section(found.runs) + _sources(found)),
    ]
    page = h.page(f"Pipeline run report: {found.pipeline}", _run_lines(found), sections)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(page, encoding="utf-8")
    return Rendered(out_file, found.run_id, time.perf_counter() - started)


def _model_body(
    found: run_artifacts.RunArtifacts,
    scored: pd.DataFrame | None,
    models: list[str],
    top_k: int,
) -> str:
    if found.evaluation is None:
        return h.note("The Evaluator did not run in this run.")
    metrics = model_section.load_metrics(found.evaluation)
    baseline = "the last blessed model" if found.baseline_model else "no baseline (first blessing)"
    parts = [
        f"<p>Candidate against {h.esc(baseline)}: {h.passed_badge(found.blessed)}</p>",
        h.heading("The gate: thresholds and whether each passed"),
        h.table(model_section.gate_table(found.evaluation, metrics), raw_columns=("status",)),
        h.heading("Overall (TFMA)"),
        h.table(model_section.overall_table(metrics).reset_index()),
    ]
    for feature in model_section.slice_features(metrics):
        parts.append(h.heading(f"Per {feature} (TFMA)"))
        chart = model_section.slice_figure(metrics, feature, _auc_name(metrics))
        if chart:
            parts.append(h.figure(chart, f"AUC per {feature}.", f"slice-{feature}"))
        parts.append(h.table(model_section.slice_table(metrics, feature)))
    parts.append(plots_section.segment_render(scored, models, top_k))
    return "".join(parts)


def _auc_name(metrics: pd.DataFrame) -> str:
    names = [m for m in np.unique(metrics["metric"]) if "auc" in m]
    return names[0] if names else model_section.COUNT_METRIC


def write_report(
    config: PipelineConfig,
    out_dir: pathlib.Path,
    run: str = run_artifacts.LATEST,
    say: Callable[[str], None] = lambda _: None,
) -> Rendered:
    """The report of ``run`` (an id, or ``latest``) of ``config``'s pipeline, written to
    ``out_dir/report.html``."""
    found = run_artifacts.find(
        config.metadata_path, config.name, run, pipeline_root=config.pipeline_root
    )
    return render(found, out_dir / run_log.REPORT_FILE, say)
