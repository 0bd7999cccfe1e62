"""Contract tests of `aiqleads kfp upload|run|schedule` against a loopback KFP API server.

Each test runs the real CLI (real `kfp.Client`, real HTTP) and asserts the method, path and
payload of every call as the KFP v2beta1 REST API defines them; request bodies are
deserialized with the `kfp_server_api` models and must round-trip without losing a key.
"""

from __future__ import annotations

import dataclasses
import email.parser
import email.policy
import json
import pathlib

import kfp_server_api
import pytest

from aiqleads.errors import ConfigError
from cli.main import main
from pipeline.kfp_client import DAILY_AT_3AM, load_kfp_settings, parse_parameters

API = "/apis/v2beta1"

PACKAGE_TEXT = """\
pipelineInfo:
  name: aiqleads-recommender
root:
  dag:
    tasks: {}
schemaVersion: 2.1.0
sdkVersion: tfx-1.16.0
"""


def _roundtrip(body: dict, model: str, int64_keys: tuple[str, ...] = ()):
    """Deserialize with the KFP API model and check that no key was dropped or renamed.

    int64 fields are strings in the API models; proto3 JSON accepts them as numbers too.
    """
    api = kfp_server_api.ApiClient()

    class Response:
        data = json.dumps(body)

    obj = api.deserialize(Response(), model)
    expected = {**body, **{k: str(body[k]) for k in int64_keys}}
    assert api.sanitize_for_serialization(obj) == expected
    return obj


@pytest.fixture()
def server(kfp_server):
    return kfp_server


@dataclasses.dataclass
class Result:
    exit_code: int
    output: str


@pytest.fixture()
def invoke(server, monkeypatch, tmp_path, capsys):
    """Run the real `aiqleads` entry point; stdout and stderr together as the output."""
    monkeypatch.setenv("AIQLEADS_KFP__HOST", server.url)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/kfp/context.json from the user
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)

    def run(*args: str, ok: bool = True) -> Result:
        code = main(list(args))
        captured = capsys.readouterr()
        result = Result(code, captured.out + captured.err)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return run


@pytest.fixture()
def package(tmp_path) -> pathlib.Path:
    path = tmp_path / "aiqleads_pipeline.yaml"
    path.write_text(PACKAGE_TEXT)
    return path


def _multipart_file(recorded) -> tuple[str, str, bytes]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + recorded.content_type.encode() + b"\r\n\r\n" + recorded.body
    )
    (part,) = message.iter_parts()
    disposition = part.get("Content-Disposition")
    return (
        (
            part.get_param("name", header="content-disposition"),
            part.get_filename(),
            part.get_payload(decode=True),
        )
        if disposition
        else ("", "", b"")
    )


def test_first_upload_creates_the_pipeline_then_versions_follow(invoke, server, package):
    out = invoke("kfp", "upload", "--package", str(package)).output
    assert "created pipeline aiqleads-recommender (pipeline-1)" in out
    upload = server.last("POST", f"{API}/pipelines/upload")
    assert upload.query == {
        "name": ["aiqleads-recommender"],
        "description": ["AIQLeads lead recommender: TFX training pipeline"],
    }
    assert upload.content_type.startswith("multipart/form-data; boundary=")
    field, filename, content = _multipart_file(upload)
    assert (field, filename, content) == ("uploadfile", package.name, PACKAGE_TEXT.encode())

    server.requests.clear()
    out = invoke("kfp", "upload", "--package", str(package), "--version", "v2").output
    assert "uploaded version v2 (version-3) of pipeline aiqleads-recommender (pipeline-1)" in out
    assert server.calls() == [
        ("GET", f"{API}/healthz"),
        ("GET", f"{API}/pipelines"),
        ("POST", f"{API}/pipelines/upload_version"),
    ]
    lookup = server.last("GET", f"{API}/pipelines")
    assert json.loads(lookup.query["filter"][0]) == {
        "predicates": [
            {"operation": 1, "key": "display_name", "stringValue": "aiqleads-recommender"}
        ]
    }
    version = server.last("POST", f"{API}/pipelines/upload_version")
    assert version.query == {"name": ["v2"], "pipelineid": ["pipeline-1"]}
    assert _multipart_file(version)[2] == PACKAGE_TEXT.encode()


def test_run_starts_the_latest_version_with_parameters_and_reason(invoke, server, package):
    invoke("kfp", "upload", "--package", str(package))
    invoke("kfp", "upload", "--package", str(package), "--version", "v2")
    server.requests.clear()
    out = invoke(
        "kfp", "run", "--reason", "drift alert: price", "--param", "train_steps=500"
    ).output
    assert "started run run-" in out and "(reason: drift alert: price)" in out
    assert server.calls(skip_reads=True) == [
        ("POST", f"{API}/experiments"),
        ("POST", f"{API}/runs"),
    ]
    experiment = server.last("POST", f"{API}/experiments").json()
    assert experiment == {"display_name": "aiqleads-recommender", "namespace": ""}  # single-user
    _roundtrip(experiment, "V2beta1Experiment")
    versions = server.last("GET", f"{API}/pipelines/pipeline-1/versions")
    assert versions.query["sort_by"] == ["created_at desc"] and versions.query["page_size"] == ["1"]

    body = server.last("POST", f"{API}/runs").json()
    run = _roundtrip(body, "V2beta1Run")
    assert run.experiment_id == "experiment-4"
    assert run.pipeline_version_reference.pipeline_id == "pipeline-1"
    assert run.pipeline_version_reference.pipeline_version_id == "version-3"  # the newest
    assert run.pipeline_spec is None  # runs reference the uploaded version
    assert run.runtime_config.parameters == {
        "train_steps": 500,
        "trigger_reason": "drift alert: price",
    }
    assert (
        run.runtime_config.pipeline_root == "minio://mlpipeline/v2/artifacts/aiqleads-recommender"
    )
    assert run.display_name.startswith("aiqleads-recommender ")
    assert run.display_name.endswith(" (drift alert: price)")

    # The experiment now exists: a second run looks it up instead of creating another.
    server.requests.clear()
    invoke("kfp", "run", "--reason", "manual", "--version-id", "version-2")
    assert ("POST", f"{API}/experiments") not in server.calls()
    second = _roundtrip(server.last("POST", f"{API}/runs").json(), "V2beta1Run")
    assert second.pipeline_version_reference.pipeline_version_id == "version-2"


def test_run_with_a_package_uploads_it_then_runs_that_version(invoke, server, package):
    invoke("kfp", "run", "--reason", "schedule", "--package", str(package))  # first: creates
    server.requests.clear()
    invoke("kfp", "run", "--reason", "schedule", "--package", str(package))  # then: a version
    writes = server.calls(skip_reads=True)
    assert writes == [("POST", f"{API}/pipelines/upload_version"), ("POST", f"{API}/runs")]
    uploaded = server.state.versions["pipeline-1"][-1]
    run = _roundtrip(server.last("POST", f"{API}/runs").json(), "V2beta1Run")
    assert run.pipeline_version_reference.pipeline_version_id == uploaded
    assert run.runtime_config.parameters == {"trigger_reason": "schedule"}
    bad = invoke(
        "kfp", "run", "--reason", "x", "--package", str(package), "--version-id", "v", ok=False
    )
    assert bad.exit_code != 0 and "--version-id" in bad.output


def test_schedule_creates_the_daily_recurring_run_once(invoke, server, package):
    invoke("kfp", "upload", "--package", str(package))
    server.requests.clear()
    out = invoke("kfp", "schedule").output
    assert "scheduled aiqleads-daily-retraining (recurring-4)" in out
    assert server.calls(skip_reads=True) == [
        ("POST", f"{API}/experiments"),
        ("POST", f"{API}/recurringruns"),
    ]
    listed = server.last("GET", f"{API}/recurringruns")
    assert listed.query["experiment_id"] == ["experiment-3"]
    body = server.last("POST", f"{API}/recurringruns").json()
    assert body["max_concurrency"] == 1
    recurring = _roundtrip(body, "V2beta1RecurringRun", int64_keys=("max_concurrency",))
    assert recurring.trigger.cron_schedule.cron == DAILY_AT_3AM == "0 0 3 * * *"
    assert recurring.trigger.periodic_schedule is None
    assert recurring.mode == "ENABLE"
    assert recurring.max_concurrency == "1"
    assert recurring.no_catchup is True
    assert recurring.experiment_id == "experiment-3"
    assert recurring.display_name == "aiqleads-daily-retraining"
    assert recurring.runtime_config.parameters == {"trigger_reason": "schedule"}
    assert recurring.pipeline_version_reference.pipeline_version_id == "version-2"

    # A second schedule is refused (one daily run), unless asked to replace it.
    again = invoke("kfp", "schedule", ok=False)
    assert again.exit_code == 2 and "exists (recurring-4); pass --replace" in again.output
    server.requests.clear()
    out = invoke("kfp", "schedule", "--replace").output
    assert "replaced recurring-4" in out
    assert server.calls(skip_reads=True) == [
        ("DELETE", f"{API}/recurringruns/recurring-4"),
        ("POST", f"{API}/recurringruns"),
    ]


def test_cron_from_settings_file(invoke, server, package, tmp_path):
    settings = tmp_path / "kfp.yaml"
    settings.write_text("schedule_cron: '0 30 1 * * 1-5'\nmax_concurrency: 2\n")
    invoke("kfp", "upload", "--package", str(package))
    invoke("kfp", "schedule", "--kfp-config", str(settings))
    recurring = _roundtrip(
        server.last("POST", f"{API}/recurringruns").json(),
        "V2beta1RecurringRun",
        int64_keys=("max_concurrency",),
    )
    assert recurring.trigger.cron_schedule.cron == "0 30 1 * * 1-5"
    assert recurring.max_concurrency == "2"


def test_run_without_an_uploaded_pipeline_says_what_to_do(invoke, server):
    result = invoke("kfp", "run", "--reason", "manual", ok=False)
    assert result.exit_code == 2
    assert "run `aiqleads kfp upload` first" in result.output
    assert ("POST", f"{API}/runs") not in server.calls()


def test_api_errors_are_one_line_with_the_status(invoke, server, package):
    # The name lookup finds a pipeline whose id the upload endpoint then does not know.
    server.state.pipelines["pipeline-9"] = "aiqleads-recommender"
    result = invoke("kfp", "upload", "--package", str(package), ok=False)
    assert result.exit_code == 2
    (line,) = [x for x in result.output.splitlines() if x.startswith("error:")]
    assert line.startswith(
        f"error: uploading the pipeline version failed at {server.url}: HTTP 404"
    )
    assert "Traceback" not in result.output


def test_bad_input_is_rejected_before_any_call(invoke, server, package, tmp_path):
    bad = invoke("kfp", "run", "--reason", "two\nlines", ok=False)
    assert bad.exit_code == 2 and "one printable line" in bad.output
    bad = invoke("kfp", "run", "--reason", "x", "--param", "trigger_reason=y", ok=False)
    assert bad.exit_code == 2 and "--reason" in bad.output
    wrong = tmp_path / "pipeline.json"
    wrong.write_text("{}")
    bad = invoke("kfp", "upload", "--package", str(wrong), ok=False)
    assert bad.exit_code == 2 and ".yaml PipelineSpec" in bad.output
    assert ("POST", f"{API}/runs") not in server.calls()
    assert not [c for c in server.calls() if c[0] == "POST"]


def test_settings_validation():
    assert load_kfp_settings(environ={}).schedule_cron == DAILY_AT_3AM
    env = {"AIQLEADS_KFP__HOST": "http://kfp.example:8888/", "AIQLEADS_KFP__MAX_CONCURRENCY": "3"}
    settings = load_kfp_settings(environ=env)
    assert settings.host == "http://kfp.example:8888" and settings.max_concurrency == 3
    for key, value, message in (
        ("SCHEDULE_CRON", "0 3 * * *", "6 fields"),
        ("HOST", "kfp.example", r"http\(s\) URL"),
        ("IMAGE", "registry.example.com/aiqleads/recommendations:latest", "pinned"),
        ("IMAGE", "registry.example.com/aiqleads/recommendations", "pinned"),
        ("COLOUR", "blue", "colour"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_kfp_settings(environ={f"AIQLEADS_KFP__{key}": value})
    assert parse_parameters(["a=1", "b=true", "c=text"]) == {"a": 1, "b": True, "c": "text"}
    with pytest.raises(ConfigError, match="key=value"):
        parse_parameters(["novalue"])


def test_no_endpoint_is_a_config_error(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("AIQLEADS_KFP__HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["kfp", "schedule"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no KFP endpoint") and "AIQLEADS_KFP__HOST" in err
