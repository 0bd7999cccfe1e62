"""The sampling prior `recommend` ranks with: hand-computed values, and agreement with the
negatives ExampleGen actually draws."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aiqleads import contracts as c
from components.example_gen import interactions
from components.example_gen.interactions import SamplingConfig
from components.trainer.sampling_prior import SamplingPrior
from transforms import features as f

DAY = 1_767_225_600  # 2026-01-01T00:00:00Z


def _catalogue(regions: dict[str, int]) -> pd.DataFrame:
    ids, region = [], []
    for name, n in regions.items():
        ids += [f"{name}{i}" for i in range(n)]
        region += [name] * n
    return pd.DataFrame({f.LEAD_ID: ids, f.REGION: region})


def test_propensity_matches_hand_computed_values():
    catalogue = _catalogue({"a": 3, "b": 1})  # a0 a1 a2 | b0
    users = pd.DataFrame({f.USER_ID: ["u1", "u2"]})
    events = pd.DataFrame(
        {c.USER_ID: ["u1", "u1", "u1", "u1", "gone"], c.LEAD_ID: ["a0", "a0", "a0", "b0", "a0"]}
    )
    sampling = SamplingConfig(hard_fraction=0.5, popularity_exponent=1.0)
    prior = SamplingPrior.fit(events, catalogue, users, sampling)
    # counts a0 4, a1 0, a2 0, b0 1 -> (count + 1) = 5, 1, 1, 2 over 9.
    # u1: 3 of 4 events in a (3 leads), 1 in b (1 lead).
    expected = {
        (0, 0): 0.5 * 0.75 / 3 + 0.5 * 5 / 9,
        (0, 1): 0.5 * 0.75 / 3 + 0.5 * 1 / 9,
        (0, 3): 0.5 * 0.25 / 1 + 0.5 * 2 / 9,
        (1, 0): 0.5 * 5 / 9,  # u2 has no window events: only the popularity draw
        (-1, 3): 0.5 * 2 / 9,  # an unknown user likewise
    }
    got = prior.log_propensity(
        np.array([u for u, _ in expected]), np.array([lead for _, lead in expected])
    )
    np.testing.assert_allclose(np.exp(got), list(expected.values()), rtol=1e-9)
    assert prior.log_negatives == pytest.approx(np.log(4))


def test_popularity_exponent_and_all_hard_negatives():
    catalogue = _catalogue({"a": 2, "b": 2})
    users = pd.DataFrame({f.USER_ID: ["u"]})
    events = pd.DataFrame({c.USER_ID: ["u"] * 3, c.LEAD_ID: ["a0", "a0", "a0"]})
    uniform = SamplingPrior.fit(
        events, catalogue, users, SamplingConfig(hard_fraction=0.0, popularity_exponent=0.0)
    )
    np.testing.assert_allclose(np.exp(uniform.log_propensity([0] * 4, range(4))), 0.25)
    hard = SamplingPrior.fit(events, catalogue, users, SamplingConfig(hard_fraction=1.0))
    p = np.exp(hard.log_propensity([0] * 4, range(4)))
    np.testing.assert_allclose(p[:2], 0.5)  # every negative from region a, 2 leads
    assert np.all(p[2:] < 1e-6)  # never drawn: floored, not -inf


def test_propensity_agrees_with_the_negatives_example_gen_draws():
    """Draw many negatives with ExampleGen's own sampler for one user whose events are 3:1
    in two regions; the drawn frequencies of the leads the user never engaged with must
    follow the prior (up to sampling noise), so ranking corrects for the right thing."""
    regions = {"a": 20, "b": 10, "c": 30}
    catalogue = _catalogue(regions)
    rng = np.random.default_rng(0)
    engaged = ["a0", "a1", "b0"]
    n = 6000
    leads_hit = rng.choice(engaged, size=n, p=[0.5, 0.25, 0.25])
    positives = pd.DataFrame(
        {
            c.USER_ID: "u",
            c.LEAD_ID: leads_hit,
            interactions.TS: DAY + np.arange(n, dtype=np.int64),
        }
    )
    # Other users' events make some leads popular.
    popular = rng.choice(catalogue[f.LEAD_ID], size=3000, p=_zipf(len(catalogue)))
    window = pd.concat(
        [positives[[c.USER_ID, c.LEAD_ID]], pd.DataFrame({c.USER_ID: "v", c.LEAD_ID: popular})],
        ignore_index=True,
    )
    leads = catalogue.rename(columns={f.REGION: c.REGION}).assign(
        **{c.LISTED_DATE: pd.Timestamp("2025-12-01")}
    )
    sampling = SamplingConfig(
        negatives_per_positive=2, hard_fraction=0.5, popularity_exponent=1.0, seed=3
    )
    negatives = interactions.sample_negatives(
        positives, leads, window.groupby(c.LEAD_ID).size(), sampling
    )
    users = pd.DataFrame({f.USER_ID: ["u", "v"]})
    prior = SamplingPrior.fit(window, catalogue, users, sampling)

    others = catalogue.index[~catalogue[f.LEAD_ID].isin(engaged)].to_numpy()
    expected = np.exp(prior.log_propensity(np.zeros(len(others), np.int64), others))
    drawn = negatives[c.LEAD_ID].value_counts().reindex(catalogue[f.LEAD_ID].iloc[others]).fillna(0)
    expected = expected / expected.sum() * drawn.sum()
    # Per region (many draws each): within 5%; per lead: a chi-square-like bound.
    region = catalogue[f.REGION].iloc[others].to_numpy()
    for name in regions:
        got, want = drawn[region == name].sum(), expected[region == name].sum()
        assert got == pytest.approx(want, rel=0.05), name
    z = (drawn.to_numpy() - expected) / np.sqrt(expected)
    assert np.mean(z**2) < 2.0
    # A prior without the hard (same-region) share predicts region a and c far apart.
    flat = SamplingPrior.fit(
        window, catalogue, users, SamplingConfig(hard_fraction=0.0, popularity_exponent=1.0)
    )
    wrong = np.exp(flat.log_propensity(np.zeros(len(others), np.int64), others))
    wrong = wrong / wrong.sum() * drawn.sum()
    assert np.mean(((drawn.to_numpy() - wrong) ** 2) / wrong) > 5 * np.mean(z**2)


def _zipf(n: int) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1)
    return w / w.sum()


@pytest.mark.parametrize(
    ("sampling", "message"),
    [
        ({"negatives": 4}, "unknown sampling settings \\['negatives'\\]"),
        ({"hard_fraction": 1.5}, "hard_fraction must be in"),
        ({"negatives_per_positive": "many"}, "negatives_per_positive must be a whole number"),
        ({"negatives_per_positive": 2.5}, "negatives_per_positive must be a whole number"),
        ({"popularity_exponent": True}, "popularity_exponent must be a finite number"),
        ({"window_spans": 0}, "window_spans"),
        ({"window_spans": 7.5}, "window_spans must be a whole number, got 7.5"),
    ],
)
def test_bad_sampling_settings_are_clear_trainer_errors(sampling, message):
    from components.trainer import run_fn

    with pytest.raises(run_fn.TrainerConfigError, match=message):
        run_fn.sampling_settings({"sampling": sampling})


def test_sampling_settings_default_to_example_gen_defaults():
    from components.trainer import run_fn

    sampling, spans = run_fn.sampling_settings({})
    assert sampling == SamplingConfig() and spans is None


def test_sampling_settings_take_numeric_strings_as_a_command_line_gives_them():
    from components.trainer import run_fn

    raw = {"negatives_per_positive": "2", "hard_fraction": "0.25", "window_spans": "7"}
    sampling, spans = run_fn.sampling_settings({"sampling": raw})
    assert sampling == SamplingConfig(negatives_per_positive=2, hard_fraction=0.25)
    assert spans == 7
    assert isinstance(sampling.negatives_per_positive, int)


def test_sampling_prior_weight_is_bounded():
    from components.trainer.model import ModelConfig

    assert ModelConfig.from_custom_config({"sampling_prior_weight": "0"}).sampling_prior_weight == 0
    with pytest.raises(ValueError, match="sampling_prior_weight must be in"):
        ModelConfig.from_custom_config({"sampling_prior_weight": 1.5})
