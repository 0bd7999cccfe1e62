"""The simulated users and the catalogue they react to, read from a synthetic data set.

Users carry the hidden preferences the generator drew (``ground_truth/user_preferences.csv``:
home point and radius, budget, preferred property types, activity). Shown a list of leads,
a user reacts through the generator's own behaviour model (`synth_behaviour`): they view the
lead of the list that suits them best up to Gumbel noise, then move down the funnel
view -> click -> inquiry -> purchase with the same step probabilities. The better the list
fits their preferences, the more they engage: that is the ground truth of online quality.
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from aiqleads import contracts, layout
from aiqleads.data import io
from aiqleads.data import synth_behaviour as behaviour
from aiqleads.errors import DataError

PREFERENCE_COLUMNS = (
    contracts.USER_ID,
    "metro",
    "home_region",
    contracts.HOME_LATITUDE,
    contracts.HOME_LONGITUDE,
    "radius_km",
    "budget",
    "preferred_types",
    "activity_weight",
)


def metro_of(region: str) -> str:
    """The metro of a synthetic region name (``<metro>-<neighbourhood number>``)."""
    return region.rsplit("-", 1)[0]


@dataclasses.dataclass(frozen=True)
class World:
    """Users (with hidden preferences) and leads as arrays, ready for the behaviour model."""

    user_ids: NDArray[np.object_]
    user_index: dict[str, int]
    population: behaviour.Population
    cold: NDArray[np.bool_]  # bool per user: no event in the data set (a "new" user to the model)
    lead_ids: NDArray[np.object_]
    lead_index: dict[str, int]
    catalogue: behaviour.Catalogue
    metros: tuple[str, ...]
    region_names: tuple[str, ...]
    type_names: tuple[str, ...]

    def match(self, users: NDArray[np.int64], leads: NDArray[np.int64]) -> NDArray[np.float64]:
        """How well each lead suits each user, in [0, 1] (the generator's `match_score`)."""
        return behaviour.match_score(self.population, self.catalogue, users, leads)

    def react(
        self, user: int, leads: NDArray[np.int64], rng: np.random.Generator
    ) -> tuple[int, list[str]]:
        """The lead a user views among ``leads`` (-1: none on the market) and the funnel steps
        they take on it, in order (``["view", "click", ...]``)."""
        available = self.catalogue.available_until[leads] > 0
        if not available.any():
            return -1, []
        users = np.full(len(leads), user)
        score = self.match(users, leads)
        utility = np.log(score + 0.02) / behaviour.CHOICE_TEMPERATURE + rng.gumbel(size=len(leads))
        best = int(np.argmax(np.where(available, utility, -np.inf)))
        m = score[best]
        steps = ["view"]
        prob = np.clip(behaviour.FUNNEL_BASE + behaviour.FUNNEL_SLOPE * m, 0.0, 1.0)
        for event, p in zip(contracts.EVENT_TYPES[1:], prob, strict=True):
            if rng.random() >= p:
                break
            steps.append(event)
        return int(leads[best]), steps


def load_world(root: pathlib.Path) -> World:
    """Users, preferences and leads of the synthetic data set at ``root``."""
    root = io.check_dataset_dir(pathlib.Path(root))
    truth_path = root / layout.GROUND_TRUTH_DIR / layout.USER_PREFERENCES
    if not truth_path.is_file():
        raise DataError(
            f"{root}: no {layout.GROUND_TRUTH_DIR}/{layout.USER_PREFERENCES}; the simulator "
            "needs the hidden preferences of a synthetic data set (`aiqleads data synth`)"
        )
    truth = pd.read_csv(truth_path, keep_default_na=False)
    missing = [c for c in PREFERENCE_COLUMNS if c not in truth.columns]
    if missing:
        raise DataError(f"{truth_path}: missing columns {', '.join(missing)}")
    leads = io.read_text_table(layout.table_path(root, contracts.LEADS))

    region_names = tuple(sorted(set(leads[contracts.REGION]) | set(truth["home_region"])))
    metros = tuple(sorted({metro_of(r) for r in region_names}))
    type_names = tuple(sorted(set(leads[contracts.PROPERTY_TYPE])))
    region_code = {r: i for i, r in enumerate(region_names)}
    metro_code = {m: i for i, m in enumerate(metros)}
    type_code = {t: i for i, t in enumerate(type_names)}

    price = pd.to_numeric(leads[contracts.PRICE], errors="coerce").to_numpy(float)
    active = (leads[contracts.STATUS] == "active").to_numpy()
    catalogue = behaviour.Catalogue(
        latitude=leads[contracts.LATITUDE].astype(float).to_numpy(),
        longitude=leads[contracts.LONGITUDE].astype(float).to_numpy(),
        price=price,
        type_code=leads[contracts.PROPERTY_TYPE].map(type_code).to_numpy(np.int64),
        region_code=leads[contracts.REGION].map(region_code).to_numpy(np.int64),
        group_code=np.array([metro_code[metro_of(r)] for r in leads[contracts.REGION]]),
        available_from=np.zeros(len(leads), dtype=np.int64),
        available_until=active.astype(np.int64),  # 1: on the market now, 0: off it
    )

    affinity = np.full((len(truth), len(type_names)), behaviour.OTHER_TYPE_AFFINITY)
    for i, preferred in enumerate(truth["preferred_types"].astype(str)):
        for name in preferred.split("|"):
            if name in type_code:
                affinity[i, type_code[name]] = 1.0
    population = behaviour.Population(
        home_latitude=truth[contracts.HOME_LATITUDE].astype(float).to_numpy(),
        home_longitude=truth[contracts.HOME_LONGITUDE].astype(float).to_numpy(),
        radius_km=truth["radius_km"].astype(float).to_numpy(),
        budget=truth["budget"].astype(float).to_numpy(),
        type_affinity=affinity,
        home_region=truth["home_region"].map(region_code).to_numpy(np.int64),
        group_code=truth["metro"].map(metro_code).to_numpy(np.int64),
        activity=truth["activity_weight"].astype(float).to_numpy(),
        first_day=np.zeros(len(truth), dtype=np.int64),
    )
    user_ids = truth[contracts.USER_ID].astype(str).to_numpy(dtype=object)
    active_users = _users_with_events(root)
    return World(
        user_ids=user_ids,
        user_index={u: i for i, u in enumerate(user_ids)},
        population=population,
        cold=np.array([u not in active_users for u in user_ids]),
        lead_ids=leads[contracts.LEAD_ID].to_numpy(dtype=object),
        lead_index={lead: i for i, lead in enumerate(leads[contracts.LEAD_ID])},
        catalogue=catalogue,
        metros=metros,
        region_names=region_names,
        type_names=type_names,
    )


def _users_with_events(root: pathlib.Path) -> set[str]:
    seen: set[str] = set()
    for day in layout.list_spans(root):
        path = layout.table_path(root, contracts.EVENTS, day)
        if path.is_file():
            seen.update(
                pd.read_csv(path, usecols=[contracts.USER_ID], dtype=str)[contracts.USER_ID]
            )
    return seen
