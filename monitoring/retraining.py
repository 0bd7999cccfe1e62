"""What a retraining run executes: the steps of the configured runner, as command lines.

- ``local``: ``aiqleads events ingest`` (the served events into the data set's spans), then
  ``aiqleads pipeline run --reason <reason>`` on that data set;
- ``kfp``: ``aiqleads pipeline compile`` (when a pipeline config is given) and
  ``aiqleads kfp run --reason <reason>``, as the daily CronJob does;
- ``none``: nothing (the trigger only records its decisions).

Steps run one after the other, each as a child process (its own process group, killed with
the trigger, `serving.process.Child`), with their output in one log file per run; the first
failing step fails the run.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time

from aiqleads.errors import ConfigError
from monitoring.trigger_config import TriggerConfig
from serving.process import Child, find_binary

EVENT_STORE_ENV = "AIQLEADS_EVENT_STORE_URL"  # cli.commands.events reads it
# The pipeline config's trigger_reason (pipeline.config's environment prefix): a package
# compiled with it makes the drift check act on the reason in Kubeflow too.
TRIGGER_REASON_ENV = "AIQLEADS_PIPELINE__TRIGGER_REASON"
KFP_PACKAGE = "aiqleads_pipeline.yaml"


@dataclasses.dataclass(frozen=True)
class Step:
    name: str
    argv: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Outcome:
    succeeded: bool
    detail: str  # "ok", or the failing step and its last lines


def steps(config: TriggerConfig, reason: str, work_dir: pathlib.Path) -> list[Step]:
    """The command lines of one run for ``config.runner``."""
    if config.runner == "none":
        return []
    cli = find_binary("aiqleads", "the project (pip install -e .)")
    if config.runner == "local":
        if config.data_dir is None:
            raise ConfigError("trigger runner 'local' needs --data-dir (the data set to train on)")
        train = [cli, "pipeline", "run", "--data", str(config.data_dir), "--reason", reason]
        if config.pipeline_config is not None:
            train += ["--config", str(config.pipeline_config)]
        out = []
        if config.event_store_url:
            out.append(
                Step("events ingest", (cli, "events", "ingest", "--data", str(config.data_dir)))
            )
        return [*out, Step("pipeline run", tuple(train))]
    if config.kfp_config is None:
        raise ConfigError("trigger runner 'kfp' needs --kfp-config")
    kfp = ["--kfp-config", str(config.kfp_config)]
    run = [cli, "kfp", "run", *kfp, "--reason", reason]
    out = []
    if config.pipeline_config is not None:
        package = str(work_dir / KFP_PACKAGE)
        compile_ = [cli, "pipeline", "compile", "--config", str(config.pipeline_config), *kfp]
        out.append(Step("pipeline compile", (*compile_, "--out", package)))
        run += ["--package", package]
    return [*out, Step("kfp run", tuple(run))]


def execute(
    config: TriggerConfig, reason: str, log_path: pathlib.Path, poll_seconds: float = 0.5
) -> Outcome:
    """Run the steps in order; stop at the first failure or at the run's timeout."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {"TF_CPP_MIN_LOG_LEVEL": "2", TRIGGER_REASON_ENV: reason}
    if config.event_store_url:  # in the environment: a password stays out of the process list
        env[EVENT_STORE_ENV] = config.event_store_url
    deadline = time.monotonic() + config.run_timeout_seconds
    for step in steps(config, reason, log_path.parent):
        with log_path.open("a") as log:
            log.write(f"== {step.name}: {' '.join(step.argv)}\n")
        child = Child(step.name, step.argv, log_path, ready=lambda: True, env=env)
        child.start()
        while child.exit_code() is None and time.monotonic() < deadline:
            time.sleep(poll_seconds)
        code = child.exit_code()
        if code is None:
            child.stop(timeout=10)
            return Outcome(False, f"{step.name} timed out after {config.run_timeout_seconds:g} s")
        if code != 0:
            return Outcome(False, f"{step.name} exited {code}: {child.log_tail(3)}")
    return Outcome(True, "ok")
