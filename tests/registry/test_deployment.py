"""The deployment folder: TF Serving's model config with labels, the canary fraction and the
append-only history; refusals change nothing.

Versions are folders with an (empty) saved_model.pb: the deployment checks that a version is
complete under the base path, it never loads it. Expected labels and loaded versions are
derived by hand from the sequence of changes each test makes.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from aiqleads.errors import ConfigError
from serving import model_config_file as mcf
from serving.deployment import (
    CANARY,
    INIT,
    PROMOTE,
    ROLLBACK,
    ROLLBACK_CANARY,
    SET_FRACTION,
    STABLE,
    Deployment,
    read_canary_fraction,
)
from serving.model_server.config import load_model_server_config

MODEL = "lead_recommender"


@pytest.fixture
def base(tmp_path: pathlib.Path) -> pathlib.Path:
    root = tmp_path / "models"
    for version in (1, 2, 3, 4):
        (root / str(version)).mkdir(parents=True)
        (root / str(version) / "saved_model.pb").write_bytes(b"")
    (root / "5").mkdir()  # still being copied: no saved_model.pb yet
    return root


@pytest.fixture
def deployment(tmp_path: pathlib.Path, base: pathlib.Path) -> Deployment:
    d = Deployment(tmp_path / "deployment", MODEL)
    d.initialize(base, 1, 0.25, "tester", "first start")
    return d


def _files(d: Deployment) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in d.directory.iterdir() if not p.name.startswith(".")}


def test_the_config_is_tf_servings_with_a_specific_policy_and_labels(deployment, base):
    config = load_model_server_config(deployment.config_path)  # the model server's reader
    (model,) = config.model_config_list.config
    assert model.name == MODEL
    assert model.base_path == str(base.resolve())
    assert list(model.model_version_policy.specific.versions) == [1]
    assert dict(model.version_labels) == {STABLE: 1}
    assert read_canary_fraction(deployment.canary_path) == 0.25
    state = deployment.state()
    assert (state.stable, state.canary, state.canary_fraction) == (1, None, 0.25)


def test_canary_then_promotion_then_rollback(deployment):
    deployment.promote(2, CANARY, "tester", "try 2")
    state = deployment.state()
    assert (state.stable, state.canary, state.loaded) == (1, 2, (1, 2))
    # Promoting the canary makes it stable and drops the canary label; 1 stays loaded as
    # the rollback target.
    deployment.promote(2, STABLE, "tester", "2 is better")
    state = deployment.state()
    assert (state.stable, state.canary, state.loaded) == (2, None, (1, 2))
    deployment.promote(3, STABLE, "tester", "3 directly")
    assert deployment.state().loaded == (2, 3)  # 1 is neither labelled nor the target
    deployment.rollback("tester", "3 is bad")
    state = deployment.state()
    # Back to 2; 3 stays loaded for gateways that have not seen the change yet, and 1 (the
    # stable before 2) is loaded again as the next rollback target.
    assert (state.stable, state.canary, state.loaded) == (2, None, (1, 2, 3))
    deployment.rollback("tester", "2 is bad too")
    assert deployment.state().stable == 1
    actions = [c.action for c in deployment.history()]
    assert actions == [INIT, PROMOTE, PROMOTE, PROMOTE, ROLLBACK, ROLLBACK]


def test_history_is_append_only_with_actor_reason_and_before_after(deployment):
    deployment.promote(2, CANARY, "alice", "try 2")
    deployment.set_canary_fraction(0.5, "bob", "more traffic")
    first_lines = deployment.history_path.read_text().splitlines()
    deployment.rollback_canary("controller", "worse CTR")
    lines = deployment.history_path.read_text().splitlines()
    assert lines[: len(first_lines)] == first_lines  # earlier lines untouched
    again = Deployment(deployment.directory, MODEL)  # a restart reads the same history
    last = again.history()[-1]
    assert (last.action, last.actor, last.reason) == (ROLLBACK_CANARY, "controller", "worse CTR")
    assert (last.previous_canary, last.canary, last.version) == (2, None, 2)
    assert [c.action for c in again.history()] == [INIT, PROMOTE, SET_FRACTION, ROLLBACK_CANARY]
    assert again.history()[2].previous_fraction == 0.25
    assert again.history()[2].canary_fraction == 0.5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.promote(9, CANARY, "t", ""), r"version 9 is not under"),
        (lambda d: d.promote(5, CANARY, "t", ""), r"version 5 is not under"),  # incomplete
        (lambda d: d.promote(1, CANARY, "t", ""), r"version 1 is the stable version"),
        (lambda d: d.promote(1, STABLE, "t", ""), r"already stable"),
        (lambda d: d.promote(2, "beta", "t", ""), r"label must be one of stable, canary"),
        (lambda d: d.rollback("t", ""), r"no earlier stable version to roll back to"),
        (lambda d: d.rollback_canary("t", ""), r"there is no canary to roll back"),
        (lambda d: d.set_canary_fraction(1.5, "t", ""), r"canary fraction must be in \[0, 1\]"),
    ],
)
def test_refused_changes_say_why_and_change_nothing(deployment, change, message):
    before = _files(deployment)
    with pytest.raises(ConfigError, match=message):
        change(deployment)
    assert _files(deployment) == before


def test_a_corrupt_config_is_named_and_nothing_is_written(deployment):
    deployment.config_path.write_text("model_config_list { config { name: ")
    before = _files(deployment)
    with pytest.raises(ConfigError, match=r"models.config is not usable.*Error parsing"):
        deployment.promote(2, CANARY, "t", "")
    with pytest.raises(ConfigError, match=r"not usable"):
        deployment.rollback("t", "")
    assert _files(deployment) == before


def test_a_config_without_a_specific_policy_is_refused(tmp_path):
    path = tmp_path / mcf.MODEL_CONFIG_FILE
    path.write_text(
        'model_config_list { config { name: "lead_recommender" base_path: "/m" '
        'model_platform: "tensorflow" } }'
    )
    with pytest.raises(ConfigError, match="specific version policy"):
        mcf.read(path, MODEL)
    with pytest.raises(ConfigError, match="has no model 'other'"):
        mcf.read(path, "other")


def test_labels_must_point_at_loaded_versions():
    with pytest.raises(ConfigError, match=r"labels point at versions \[3\]"):
        mcf.ModelEntry.create(MODEL, "/m", {1}, {STABLE: 3})


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(deployment):
    # Another process holds the folder's lock (as a promote in progress does).
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import pathlib, sys, time
                from serving.model_config_file import exclusive_lock
                with exclusive_lock(pathlib.Path({str(deployment.directory)!r})):
                    print("locked", flush=True)
                    sys.stdin.readline()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[2])},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        before = _files(deployment)
        with pytest.raises(ConfigError, match=rf"in progress \(pid {holder.pid}\); nothing"):
            deployment.promote(2, CANARY, "t", "")
        assert _files(deployment) == before
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(10)
    deployment.promote(2, CANARY, "t", "")  # free again
    assert deployment.state().canary == 2


def test_writes_replace_the_file_whole(tmp_path):
    path = tmp_path / "models.config"
    mcf.write_atomic(path, "first\n")
    inode = path.stat().st_ino
    mcf.write_atomic(path, "second\n")
    assert path.read_text() == "second\n"
    assert path.stat().st_ino != inode  # a new file renamed over the old: never half written
    assert [p.name for p in tmp_path.iterdir()] == ["models.config"]  # no temporary left


def test_initialize_keeps_an_existing_deployment_of_the_same_base_path(deployment, base):
    deployment.promote(2, CANARY, "t", "")
    assert deployment.initialize(base, 4, 0.0, "serve", "restart") is None
    assert deployment.state().canary == 2
    other = base.parent / "other"
    (other / "7").mkdir(parents=True)
    (other / "7" / "saved_model.pb").write_bytes(b"")
    change = deployment.initialize(other, 7, 0.0, "serve", "new base path")
    assert change is not None and deployment.state().stable == 7
    assert deployment.stable_chain() == [7]


def test_a_kubernetes_overlays_first_config_is_taken_over_by_the_first_stable(tmp_path):
    # An overlay ships the newest versions of the pods' volume, which this machine does not
    # see: the first promotion to stable pins a version and labels it.
    folder = tmp_path / "deployment"
    folder.mkdir()
    (folder / mcf.MODEL_CONFIG_FILE).write_text(
        'model_config_list { config { name: "lead_recommender" base_path: '
        '"/models/lead_recommender" model_platform: "tensorflow" '
        "model_version_policy { latest { num_versions: 2 } } } }"
    )
    d = Deployment(folder, MODEL)
    assert d.bootstrap_base_path() == "/models/lead_recommender"
    with pytest.raises(ConfigError, match="specific version policy"):
        d.state()
    change = d.promote(1700000000, STABLE, "ops", "first version")
    assert change.action == INIT
    state = d.state()
    assert (state.base_path, state.stable, state.loaded) == (
        "/models/lead_recommender",
        1700000000,
        (1700000000,),
    )
    d.promote(1700000500, CANARY, "ops", "next")  # the volume is not here: MLMD vouches
    assert d.state().canary == 1700000500
