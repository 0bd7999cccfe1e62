"""Compile test: `create_pipeline(config)` through KubeflowV2DagRunner into a KFP package.

The package must parse with KFP's own PipelineSpec protos, hold every component of the
local pipeline with its parameters, the image, pipeline root and Beam arguments from
config, and match the golden file (regenerate on purpose: tests/kfp/regenerate_golden.py).
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from cli.commands.kfp import compile_command


def _load_golden_module():
    path = pathlib.Path(__file__).with_name("regenerate_golden.py")
    spec = importlib.util.spec_from_file_location("aiqleads_kfp_golden", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


golden = _load_golden_module()


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """(package path, parsed YAML, the TFX pipeline it came from), compiled once."""
    from pipeline.kubeflow_v2_runner import compile_pipeline
    from pipeline.pipeline import create_pipeline

    config, settings = golden.golden_inputs()
    out = tmp_path_factory.mktemp("kfp") / "aiqleads_pipeline.yaml"
    compile_pipeline(config, settings, out, stage=golden.STAGE)
    tfx_pipeline = create_pipeline(config, stage=golden.STAGE)
    return out, yaml.safe_load(out.read_text()), tfx_pipeline


def test_package_parses_with_the_kfp_pipeline_spec_protos(compiled):
    _, spec, _ = compiled
    message = json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    assert message.schema_version == "2.1.0"
    assert message.pipeline_info.name == "aiqleads-recommender"
    assert message.default_pipeline_root == golden.PIPELINE_ROOT
    reason = message.root.input_definitions.parameters["trigger_reason"]
    assert reason.parameter_type == pipeline_spec_pb2.ParameterType.STRING
    assert reason.default_value.string_value == "manual"


def _task_names(tasks: dict, node_id: str) -> set[str]:
    """The KFP tasks of one TFX node: itself, or for a resolver its ``<id>-*`` steps."""
    return {name for name in tasks if name == node_id or name.startswith(f"{node_id}-")}


def test_every_component_of_the_local_pipeline_is_a_task_with_its_parameters(compiled):
    _, spec, tfx_pipeline = compiled
    tasks = spec["root"]["dag"]["tasks"]
    per_node = {c.id: _task_names(tasks, c.id) for c in tfx_pipeline.components}
    assert all(per_node.values()), f"nodes without a task: {per_node}"
    assert set().union(*per_node.values()) == set(tasks)
    assert {"InteractionExampleGen", "StatisticsGen", "Transform"} <= set(per_node)
    owner = {task: node for node, names in per_node.items() for task in names}
    for component in tfx_pipeline.components:
        if component.id not in tasks:
            continue  # a resolver: its steps have no parameters of their own
        task = tasks[component.id]
        given = task.get("inputs", {}).get("parameters", {})
        for name, value in component.exec_properties.items():
            if value is not None:
                assert name in given, f"{component.id}.{name} missing"
        # The local pipeline's edges (data and explicit ordering) are the task's upstream.
        upstream = {node.id for node in component.upstream_nodes}
        assert {owner[t] for t in task.get("dependentTasks", [])} == upstream, component.id
        for artifact in task.get("inputs", {}).get("artifacts", {}).values():
            producer = artifact.get("taskOutputArtifact", {}).get("producerTask")
            if producer:
                assert owner[producer] in upstream, f"{component.id} reads {producer}"


def test_image_entrypoint_and_beam_arguments_come_from_config(compiled):
    _, spec, _ = compiled
    config, settings = golden.golden_inputs()
    executors = spec["deploymentSpec"]["executors"]
    assert executors
    for name, executor in executors.items():
        if "container" not in executor:
            continue  # importer / resolver
        container = executor["container"]
        assert container["image"] == settings.image, name
        assert container["command"] == [
            "python",
            "-m",
            "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor",
        ]
        if "--executor_class_path" in container["args"]:
            assert container["args"][-len(config.beam_args) :] == list(config.beam_args), name


def test_package_matches_the_golden_file(compiled):
    _, spec, _ = compiled
    want = golden.GOLDEN.read_text()
    got = golden.render(spec)
    assert got == want, (
        "the compiled pipeline changed; if on purpose, run "
        "`.venv/bin/python tests/kfp/regenerate_golden.py` and review the diff"
    )


def test_a_wiring_change_fails_the_golden_comparison():
    from pipeline.kubeflow_v2_runner import build_pipeline_spec

    config, settings = golden.golden_inputs()
    rewired = config.model_copy(
        update={"drift": config.drift.model_copy(update={"enabled": False})}
    )
    spec = build_pipeline_spec(rewired, settings, stage=golden.STAGE)
    assert "DriftCheck" not in spec["root"]["dag"]["tasks"]
    assert golden.render(spec) != golden.GOLDEN.read_text()


def test_compile_command_writes_the_package(tmp_path, capsys, monkeypatch):
    from aiqleads.errors import ConfigError

    monkeypatch.setenv("AIQLEADS_PIPELINE__DATA_ROOT", str(golden.TINY_DATA))
    monkeypatch.setenv("AIQLEADS_KFP__IMAGE", golden.IMAGE)
    out = tmp_path / "pkg.yaml"
    args = ["--out", str(out), "--stage", golden.STAGE]
    compile_command.main(args, prog_name="aiqleads pipeline compile", standalone_mode=False)
    captured = capsys.readouterr()
    assert f"wrote {out}" in captured.out and "next: aiqleads kfp upload" in captured.out
    assert yaml.safe_load(out.read_text())["pipelineInfo"]["name"] == "aiqleads-recommender"
    with pytest.raises(ConfigError, match=r"is a \.yaml file"):
        compile_command.main(["--out", str(tmp_path / "pkg.json")], standalone_mode=False)


def test_compile_help_names_the_default_package():
    # The CLI spells the default in its help so that `--help` does not import the pipeline.
    from pipeline.kubeflow_v2_runner import DEFAULT_PACKAGE

    help_text = " ".join(compile_command.get_help(compile_command.make_context("x", [])).split())
    assert f"[default: {DEFAULT_PACKAGE}]" in help_text


def _schema_title(artifact_spec: dict) -> str:
    """The artifact type's schema title, as the KFP backend and UI read it."""
    artifact_type = artifact_spec["artifactType"]
    if "schemaTitle" in artifact_type:
        return artifact_type["schemaTitle"]
    return yaml.safe_load(artifact_type["instanceSchema"])["title"]


def test_the_kfp_ui_finds_the_drift_report_the_gate_and_their_metrics(compiled):
    """The run page of the KFP UI renders system.HTML / system.Markdown / system.Metrics
    outputs: the drift check's page and metrics, the gate's evaluation table and metrics."""
    _, spec, _ = compiled
    titles = {}
    for task_name, task in spec["root"]["dag"]["tasks"].items():
        component = spec["components"][task["componentRef"]["name"]]
        for name, artifact in component.get("outputDefinitions", {}).get("artifacts", {}).items():
            titles[(task_name, name)] = _schema_title(artifact)
    assert titles[("DriftCheck", "visualization")] == "system.HTML"
    assert titles[("DriftCheck", "metrics")] == "system.Metrics"
    assert titles[("ServingSmokeValidation", "summary")] == "system.Markdown"
    assert titles[("ServingSmokeValidation", "metrics")] == "system.Metrics"
    # The gate reads the Evaluator's evaluation for its table.
    smoke = spec["root"]["dag"]["tasks"]["ServingSmokeValidation"]
    evaluation = smoke["inputs"]["artifacts"]["evaluation"]["taskOutputArtifact"]
    assert evaluation == {"outputArtifactKey": "evaluation", "producerTask": "Evaluator"}
