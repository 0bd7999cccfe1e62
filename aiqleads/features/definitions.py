"""Feature definitions in one place: entities, feature views, their versions and schemas.

A feature view groups the features of one entity that are computed and written together. Each
view has a version, an owner, a time-to-live and a schema: every feature's name, value type
and default (the value a row without that feature reads as; ``None`` means "missing").

Versioning rules (enforced by `compat.check` against the committed golden, docs/feature_store.md):

- removing a feature or changing its type or default is incompatible: the view needs a new
  version, defined next to the old one;
- adding a feature (every feature has a default) is compatible: same version;
- the two newest versions of a view are materialized side by side (`materialized`), so
  models trained on N-1 keep their features while N rolls out.

Feature names are the raw tf.Example keys of ``transforms.features`` where a model reads
them (a test checks they agree); the core cannot import that layer.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

FeatureValue = int | float | str | dict[str, float] | None
"""A feature's value: ``None`` is missing; a FLOAT_MAP is a ``{key: number}`` mapping."""


class ValueType(str, enum.Enum):
    """The type of a feature's value, as stored and as checked on every write."""

    INT64 = "int64"
    FLOAT64 = "float64"
    STRING = "string"
    TIMESTAMP = "timestamp"  # seconds since the epoch (UTC), float
    FLOAT_MAP = "float_map"  # {key: float}; JSON in the online store


@dataclass(frozen=True)
class Entity:
    """What features describe; ``join_key`` is the id column of the data set."""

    name: str
    join_key: str
    description: str


@dataclass(frozen=True)
class Feature:
    name: str
    dtype: ValueType
    default: FeatureValue
    description: str
    domain: tuple[str, ...] | None = None
    """The values a STRING feature may take (None: any)."""


@dataclass(frozen=True)
class FeatureView:
    """One version of a view: its entity, schema, owner and time-to-live.

    ``ttl_seconds``: a row whose event time is older than this is stale; readers serve the
    defaults for it and count it (None: rows never go stale).
    """

    name: str
    version: int
    entity: Entity
    features: tuple[Feature, ...]
    owner: str
    ttl_seconds: float | None
    description: str

    @property
    def ref(self) -> str:
        """``name:version``, how models and messages name a view version."""
        return f"{self.name}:{self.version}"

    def feature(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(f"feature view {self.ref} has no feature {name!r}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def defaults(self) -> dict[str, FeatureValue]:
        return {f.name: f.default for f in self.features}


# -- entities --------------------------------------------------------------------------------
USER = Entity("user", "user_id", "someone who searches for real estate")
LEAD = Entity("lead", "lead_id", "a listing")
REGION = Entity("region", "region", "a market region (metro, zip code)")
ENTITIES = (USER, LEAD, REGION)

# -- feature names (the raw tf.Example keys where a model reads them) ------------------------
USER_VIEWS = "user_views"
USER_CLICKS = "user_clicks"
USER_INQUIRIES = "user_inquiries"
USER_PURCHASES = "user_purchases"
USER_LAST_EVENT_TS = "user_last_event_ts"
USER_MEDIAN_PRICE = "user_median_price"
USER_TYPE_SHARES = "user_type_shares"
USER_REGION_SHARES = "user_region_shares"
USER_LEAD_EVENTS = "user_lead_events"
USER_LATITUDE = "user_latitude"
USER_LONGITUDE = "user_longitude"
USER_LOCATION_SOURCE = "user_location_source"
LEAD_LATITUDE = "lead_latitude"
LEAD_LONGITUDE = "lead_longitude"
LEAD_REGION = "region"
LEAD_PROPERTY_TYPE = "property_type"
LEAD_PRICE = "price"
LEAD_BEDROOMS = "bedrooms"
LEAD_BATHROOMS = "bathrooms"
LEAD_LIVING_AREA = "living_area"
LEAD_LISTED_TS = "listed_ts"
LEAD_STATUS = "status"
MARKET_DEMAND = "market_demand"
MARKET_MEDIAN_PRICE = "market_median_price"
MARKET_INVENTORY = "market_inventory"
MARKET_PRICE_TREND = "market_price_trend"
MARKET_DATE_TS = "market_date_ts"

COUNT_FEATURES = {
    "view": USER_VIEWS,
    "click": USER_CLICKS,
    "inquiry": USER_INQUIRIES,
    "purchase": USER_PURCHASES,
}
"""Event type -> the count feature it adds to."""
LOCATION_SOURCES = ("home", "activity", "none")
UNKNOWN_STATUS = "unknown"
STATUSES = ("active", "pending", "sold", "withdrawn", UNKNOWN_STATUS)
UNAVAILABLE_STATUSES = frozenset({"pending", "sold", "withdrawn"})
"""Lead statuses that are never recommended once the online store holds them."""

OWNER_RECOMMENDATIONS = "recommendations-ml"
OWNER_LISTINGS = "listings-data"
OWNER_MARKET = "market-data"
THREE_DAYS = 3 * 86_400.0

F, N, S, T, M = (
    ValueType.FLOAT64,
    ValueType.INT64,
    ValueType.STRING,
    ValueType.TIMESTAMP,
    ValueType.FLOAT_MAP,
)

USER_BEHAVIOUR_V1 = FeatureView(
    name="user_behaviour",
    version=1,
    entity=USER,
    owner=OWNER_RECOMMENDATIONS,
    ttl_seconds=THREE_DAYS,
    description="aggregates over every event of the user so far (the model's user tower "
    "and crosses); days since the last event is derived from the last event's time on read",
    features=(
        Feature(USER_VIEWS, N, 0, "views so far"),
        Feature(USER_CLICKS, N, 0, "clicks so far"),
        Feature(USER_INQUIRIES, N, 0, "inquiries so far"),
        Feature(USER_PURCHASES, N, 0, "purchases so far"),
        Feature(USER_LAST_EVENT_TS, T, None, "time of the last event; missing: none"),
        Feature(USER_MEDIAN_PRICE, F, None, "median price of the leads engaged with"),
        Feature(USER_TYPE_SHARES, M, {}, "property type -> share of the weighted events on it"),
        Feature(USER_REGION_SHARES, M, {}, "region -> share of the weighted events on it"),
        Feature(USER_LEAD_EVENTS, M, {}, "lead -> weighted events on it (view 1 ... purchase 8)"),
    ),
)

USER_GEO_V1 = FeatureView(
    name="user_geo",
    version=1,
    entity=USER,
    owner=OWNER_RECOMMENDATIONS,
    ttl_seconds=THREE_DAYS,
    description="the geospatial features of a user: the location the model measures "
    "distances from (home when known, else the centroid of the leads engaged with); geo "
    "cells, hotspots and density are computed from it inside the model's Transform graph",
    features=(
        Feature(USER_LATITUDE, F, None, "latitude; missing when neither home nor activity"),
        Feature(USER_LONGITUDE, F, None, "longitude"),
        Feature(USER_LOCATION_SOURCE, S, "none", "home, activity or none", LOCATION_SOURCES),
    ),
)

LEAD_ATTRIBUTES_V1 = FeatureView(
    name="lead_attributes",
    version=1,
    entity=LEAD,
    owner=OWNER_LISTINGS,
    ttl_seconds=None,
    description="a listing's attributes and status; a status in UNAVAILABLE_STATUSES takes "
    "the lead out of every answer",
    features=(
        Feature(LEAD_LATITUDE, F, None, "latitude"),
        Feature(LEAD_LONGITUDE, F, None, "longitude"),
        Feature(LEAD_REGION, S, "", "market region"),
        Feature(LEAD_PROPERTY_TYPE, S, "", "house, condo, townhouse, multi_family"),
        Feature(LEAD_PRICE, F, None, "asking price"),
        Feature(LEAD_BEDROOMS, N, None, "bedrooms"),
        Feature(LEAD_BATHROOMS, F, None, "bathrooms"),
        Feature(LEAD_LIVING_AREA, F, None, "living area, m2"),
        Feature(LEAD_LISTED_TS, T, None, "listing date (lead age is derived on read)"),
        Feature(LEAD_STATUS, S, UNKNOWN_STATUS, "active, pending, sold, withdrawn", STATUSES),
    ),
)

REGION_MARKET_V1 = FeatureView(
    name="region_market",
    version=1,
    entity=REGION,
    owner=OWNER_MARKET,
    ttl_seconds=THREE_DAYS,
    description="the region's latest market row",
    features=(
        Feature(MARKET_DEMAND, F, None, "demand index"),
        Feature(MARKET_MEDIAN_PRICE, F, None, "median listing price"),
        Feature(MARKET_INVENTORY, F, None, "active listings"),
        Feature(MARKET_PRICE_TREND, F, None, "price trend"),
        Feature(MARKET_DATE_TS, T, None, "the market row's date"),
    ),
)

VIEWS: tuple[FeatureView, ...] = (
    USER_BEHAVIOUR_V1,
    USER_GEO_V1,
    LEAD_ATTRIBUTES_V1,
    REGION_MARKET_V1,
)
"""Every defined version of every view (old versions stay while models use them)."""

MODEL_VIEWS = ("user_behaviour", "user_geo", "lead_attributes")
"""The views the recommender's ``recommend_online`` signature is fed from."""
MATERIALIZED_VERSIONS = 2
"""How many of a view's newest versions are materialized side by side (N and N-1)."""


class FeatureVersionError(LookupError):
    """A view version a caller asked for is not defined (or not served)."""


class Registry:
    """Lookups over a set of view versions (`REGISTRY` holds `VIEWS`)."""

    def __init__(self, views: tuple[FeatureView, ...]) -> None:
        self.views = views
        self._by_ref = {v.ref: v for v in views}
        if len(self._by_ref) != len(views):
            raise ValueError("a feature view version is defined twice")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(v.name for v in self.views))

    def versions(self, name: str) -> tuple[FeatureView, ...]:
        """Every defined version of ``name``, oldest first."""
        found = tuple(sorted((v for v in self.views if v.name == name), key=lambda v: v.version))
        if not found:
            raise FeatureVersionError(f"no feature view {name!r}; defined: {', '.join(self.names)}")
        return found

    def latest(self, name: str) -> FeatureView:
        return self.versions(name)[-1]

    def get(self, name: str, version: int) -> FeatureView:
        view = self._by_ref.get(f"{name}:{version}")
        if view is None:
            known = ", ".join(v.ref for v in self.versions(name))
            raise FeatureVersionError(
                f"feature view {name}:{version} is not defined (defined: {known})"
            )
        return view

    def materialized(self, name: str) -> tuple[FeatureView, ...]:
        """The versions of ``name`` the store writes: the newest `MATERIALIZED_VERSIONS`."""
        return self.versions(name)[-MATERIALIZED_VERSIONS:]

    def for_entity(self, entity: Entity) -> tuple[str, ...]:
        return tuple(n for n in self.names if self.latest(n).entity == entity)

    def model_versions(self) -> dict[str, int]:
        """The versions a model trained now is fed (`MODEL_VIEWS` at their latest)."""
        return {name: self.latest(name).version for name in MODEL_VIEWS}

    def check_served(self, wanted: Mapping[str, int]) -> list[str]:
        """Why the store cannot feed a model that wants ``wanted`` (view -> version): one
        message per view version it does not materialize; empty when it can."""
        problems = []
        for name, version in sorted(wanted.items()):
            try:
                served = self.materialized(name)
            except FeatureVersionError as e:
                problems.append(str(e))
                continue
            if version not in {v.version for v in served}:
                have = ", ".join(v.ref for v in served)
                problems.append(
                    f"the model wants {name}:{version}, the store materializes {have}: "
                    + (
                        "deploy the gateways and store of the release that defines it"
                        if version > served[-1].version
                        else "retrain the model on a served version"
                    )
                )
        return problems


REGISTRY = Registry(VIEWS)
