"""The report `aiqleads pipeline run` writes into its run folder when the run ends.

A report that cannot be written never changes the run's outcome: the reason goes to the
run's log and the summary line says so.
"""

from __future__ import annotations

import logging
import pathlib

from pipeline import run_log, run_report
from pipeline.config import PipelineConfig
from pipeline.report import render

log = logging.getLogger(__name__)


def report_latest_run(config: PipelineConfig, folder: pathlib.Path) -> str:
    """Record the pipeline's latest run in ``folder`` (``run.json``), write its report there,
    and return the summary line that says where the report and the log are."""
    where_log = folder / run_log.LOG_FILE
    try:
        store = run_report.connect(config.metadata_path)
        run_id = run_report.latest_run_id(store, config.name)
        run_log.record_run(folder, run_id, config.name, str(config.metadata_path))
        if run_id is None:
            return f"report: none (no run recorded in MLMD); log: {where_log}"
        rendered = render.write_report(config, folder, run_id)
    except Exception as e:  # noqa: BLE001 - the run's result stands; the log has the traceback
        log.exception("the run's report could not be written")
        return f"report: not written ({type(e).__name__}: {e}); log: {where_log}"
    return f"report: {rendered.path}; log: {where_log}"
