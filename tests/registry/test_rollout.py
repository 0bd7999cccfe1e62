"""The rollout controller's side that needs no traffic: a new push becomes the canary (never
stable), and the experiment starts at the last change of the canary or its share."""

from __future__ import annotations

import pathlib

from monitoring.ab import Design
from monitoring.rollout import ACTOR, Controller, Sources, experiment_of
from serving.deployment import CANARY, PROMOTE, STABLE, Deployment


def _version(base: pathlib.Path, version: int) -> None:
    (base / str(version)).mkdir(parents=True)
    (base / str(version) / "saved_model.pb").write_bytes(b"")


def test_a_new_push_becomes_the_canary_at_the_configured_share(tmp_path):
    base = tmp_path / "models"
    _version(base, 100)
    deployment = Deployment(tmp_path / "deployment", "lead_recommender")
    deployment.initialize(base, 100, 0.0, "serve", "first start")
    controller = Controller(deployment, Sources("redis://unused"), Design(), 0.1, say=print)
    assert controller.step() is None  # nothing new under the base path
    _version(base, 90)  # older than what is deployed: not a new push
    assert controller.step() is None
    _version(base, 120)
    change = controller.step()
    assert change is not None
    assert (change.action, change.actor, change.version) == (PROMOTE, ACTOR, 120)
    state = deployment.state()
    assert (state.stable, state.canary, state.canary_fraction) == (100, 120, 0.1)


def test_the_experiment_starts_at_the_last_change_of_the_canary_or_its_share(tmp_path):
    base = tmp_path / "models"
    for version in (1, 2, 3):
        _version(base, version)
    deployment = Deployment(tmp_path / "deployment", "lead_recommender")
    deployment.initialize(base, 1, 0.0, "serve", "start")
    assert experiment_of(deployment.state(), deployment.history()) is None  # no canary
    deployment.promote(2, CANARY, "t", "")
    deployment.set_canary_fraction(0.5, "t", "")
    share = deployment.history()[-1].time
    experiment = experiment_of(deployment.state(), deployment.history())
    assert experiment is not None
    assert (experiment.stable_version, experiment.canary_version) == (1, 2)
    assert (experiment.start, experiment.canary_fraction) == (share, 0.5)
    deployment.promote(3, STABLE, "t", "")  # a new stable: a new experiment
    experiment = experiment_of(deployment.state(), deployment.history())
    assert experiment is not None and experiment.start == deployment.history()[-1].time
