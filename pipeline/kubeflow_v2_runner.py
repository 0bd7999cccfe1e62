"""Compile the pipeline for Kubeflow Pipelines 2.x with TFX's KubeflowV2DagRunner.

The same ``create_pipeline(config)`` the local runner runs is compiled here into a KFP
``PipelineSpec`` YAML (schema 2.1.0), the package format ``kfp.Client.upload_pipeline``
and the KFP UI accept. Orchestrator choices are configuration:

- the container image, the pipeline root and the KFP endpoint come from ``KfpSettings``
  (``pipeline/kfp_client.py``);
- the Beam arguments (DirectRunner, DataflowRunner, FlinkRunner, SparkRunner through the
  portable runner) come from the pipeline config's ``beam_args``.

The compiled spec also declares a ``trigger_reason`` string input (default ``manual``)
so that every run records why it was started.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import yaml

from aiqleads.errors import ConfigError
from components.example_gen import spec as example_gen_spec
from pipeline.config import DEFAULT_RUNS_DIR, PipelineConfig
from pipeline.kfp_client import TRIGGER_REASON_PARAMETER, KfpSettings

# The container command TFX's v2 launcher runs in every step (Dockerfile ENTRYPOINT too).
TFX_V2_ENTRYPOINT = (
    "python",
    "-m",
    "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor",
)
DEFAULT_PACKAGE = pathlib.Path(DEFAULT_RUNS_DIR) / "kfp" / "aiqleads_pipeline.yaml"
"""Where `aiqleads pipeline compile` writes the package, relative to the repository root."""
DEFAULT_REASON = "manual"


@dataclasses.dataclass(frozen=True)
class Compiled:
    path: pathlib.Path
    pipeline_name: str
    tasks: tuple[str, ...]
    image: str
    pipeline_root: str
    beam_args: tuple[str, ...]


def build_pipeline_spec(
    config: PipelineConfig, kfp_settings: KfpSettings, stage: str = "push"
) -> dict[str, Any]:
    """The KFP ``PipelineSpec`` of ``create_pipeline(config)`` as a JSON-style dict.

    ``stage`` is create_pipeline's: ``push`` (the product) or a shorter development wiring.
    """
    from tfx import v1 as tfx  # heavy: TensorFlow and Beam load here

    from pipeline.pipeline import create_pipeline

    if config.as_of is not None:
        raise ConfigError(
            f"as_of={config.as_of} is set, but a KFP package chooses its window when it runs "
            "(the newest spans then): remove as_of from the pipeline config"
        )
    # Runs on the cluster write under the KFP pipeline root, not the local runs/ folder;
    # KFP keeps its own metadata, so no metadata connection.
    tfx_pipeline = create_pipeline(
        config,
        beam_pipeline_args=list(config.beam_args),
        pipeline_root=kfp_settings.pipeline_root,
        stage=stage,
        # A package is re-run on later days (recurring runs, `kfp run`): each run takes the
        # spans present when it executes, never the ones present at compile time.
        runtime_window=True,
    )
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
            display_name=kfp_settings.pipeline_name,
            default_image=kfp_settings.image,
            default_commands=list(TFX_V2_ENTRYPOINT),
            use_pipeline_spec_2_1=True,
        )
    )
    job = runner.run(tfx_pipeline, write_out=False)
    spec = job["pipelineSpec"]
    spec["defaultPipelineRoot"] = kfp_settings.pipeline_root
    root_inputs = spec["root"].setdefault("inputDefinitions", {}).setdefault("parameters", {})
    if TRIGGER_REASON_PARAMETER in root_inputs:
        raise ConfigError(f"the pipeline already defines a {TRIGGER_REASON_PARAMETER!r} input")
    root_inputs[TRIGGER_REASON_PARAMETER] = {
        "parameterType": "STRING",
        "defaultValue": DEFAULT_REASON,
        "isOptional": True,
    }
    # Runtime parameter defaults of the TFX pipeline become the spec's input defaults.
    for name, value in job.get("runtimeConfig", {}).get("parameterValues", {}).items():
        if name in root_inputs and "defaultValue" not in root_inputs[name]:
            root_inputs[name]["defaultValue"] = value
    check_pipeline_spec(spec)
    return spec


def check_pipeline_spec(spec: dict[str, Any]) -> None:
    """Parse the spec with KFP's own protos: a malformed spec fails here, not on upload."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    try:
        json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    except json_format.ParseError as e:
        raise ConfigError(f"the compiled pipeline is not a valid KFP PipelineSpec: {e}") from e


def normalised_spec(spec: dict[str, Any], paths: dict[str, str]) -> dict[str, Any]:
    """The spec with machine- and data-specific values replaced, for golden comparisons.

    ``paths`` maps absolute path prefixes (the checkout, a data folder) to placeholders;
    ExampleGen's ``input_fingerprint`` (a hash of the input files) becomes ``<FINGERPRINT>``
    and the Transform and Trainer code fingerprints become ``<CODE>``.
    """
    from pipeline import code_version

    paths = dict(paths)
    for sources in (code_version.TRANSFORM_SOURCES, code_version.TRAINER_SOURCES):
        paths[code_version.fingerprint(sources)] = "<CODE>"

    def walk(node: Any, key: str = "") -> Any:
        if isinstance(node, dict):
            if key == example_gen_spec.FINGERPRINT_KEY and "runtimeValue" in node:
                return {"runtimeValue": {"constant": "<FINGERPRINT>"}}
            return {k: walk(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, str):
            for prefix, placeholder in sorted(paths.items(), key=lambda kv: -len(kv[0])):
                node = node.replace(prefix, placeholder)
        return node

    return walk(spec)


def render_package(spec: dict[str, Any]) -> str:
    """YAML text of the package, with a short header (KFP's compiler writes one too)."""
    header = (
        "# PIPELINE DEFINITION\n"
        f"# Name: {spec['pipelineInfo']['name']}\n"
        "# Compiled by `aiqleads pipeline compile` (TFX KubeflowV2DagRunner).\n"
    )
    return header + yaml.safe_dump(spec, sort_keys=True)


def compile_pipeline(
    config: PipelineConfig, kfp_settings: KfpSettings, out: pathlib.Path, stage: str = "push"
) -> Compiled:
    """Compile and write the package to ``out`` (a ``.yaml`` file)."""
    out = pathlib.Path(out)
    if out.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"the package is a .yaml file, got {out}")
    spec = build_pipeline_spec(config, kfp_settings, stage=stage)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_package(spec))
    return Compiled(
        path=out,
        pipeline_name=spec["pipelineInfo"]["name"],
        tasks=tuple(sorted(spec["root"]["dag"]["tasks"])),
        image=kfp_settings.image,
        pipeline_root=kfp_settings.pipeline_root,
        beam_args=tuple(config.beam_args),
    )
