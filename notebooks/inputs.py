"""What the notebooks read, as `execute.py` names it in the kernel's environment: the
pipeline config (``CONFIG_ENV``; the default config when unset) and the run (``RUN_ENV``;
the latest when unset), for 01-03, and the event store (``EVENT_STORE_ENV``; the running
`aiqleads serve` stack's when unset), for 04.

A notebook runs with the repository as its working directory and imports this module as
``notebooks.inputs``.
"""

from __future__ import annotations

import os

from notebooks.execute import CONFIG_ENV, EVENT_STORE_ENV, RUN_ENV
from pipeline import config as config_lib
from pipeline.report import run_artifacts


def pipeline_run() -> tuple[config_lib.PipelineConfig, run_artifacts.RunArtifacts]:
    """The pipeline config and the run's artifacts."""
    cfg = config_lib.load_config(os.environ.get(CONFIG_ENV) or None)
    run = run_artifacts.find(
        cfg.metadata_path,
        cfg.name,
        os.environ.get(RUN_ENV, run_artifacts.LATEST),
        pipeline_root=cfg.pipeline_root,
    )
    return cfg, run


def data_root(cfg: config_lib.PipelineConfig, run: run_artifacts.RunArtifacts) -> str:
    """The data set the run read (its ExampleGen's ``data_root``, else the config's)."""
    return run.example_gen_properties.get("data_root") or str(cfg.data_path)


def event_store_url() -> str:
    from serving import stack_file
    from serving.settings import DEFAULT_RUN_DIR

    return os.environ.get(EVENT_STORE_ENV) or stack_file.read(DEFAULT_RUN_DIR).event_store_url
