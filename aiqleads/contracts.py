"""The raw data contracts: leads, users, events and market data (docs/data.md).

Defined once, here. Validation (`aiqleads.data.validate`), the synthetic generator, the real
data-set adapters, the ExampleGen and the tests all read these definitions; nothing else
spells a raw column name as a string literal.

Units and conventions:
- coordinates are WGS84 degrees;
- prices are in the data set's local currency (``manifest.json`` names it);
- ``living_area`` is in square metres;
- dates are ISO ``YYYY-MM-DD``; timestamps are ISO 8601 UTC ``YYYY-MM-DDTHH:MM:SSZ``;
- ``price_trend`` is the relative change of the regional median price over the trailing
  window (0.05 means +5 %).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import TypedDict


class Kind(str, enum.Enum):
    """The type of a raw column, as it appears in the CSV files."""

    STRING = "string"
    INT = "int"
    FLOAT = "float"
    DATE = "date"  # YYYY-MM-DD
    TIMESTAMP = "timestamp"  # YYYY-MM-DDTHH:MM:SSZ


@dataclasses.dataclass(frozen=True)
class Field:
    """One column of a contract, with the bounds a valid value must respect."""

    name: str
    kind: Kind
    nullable: bool = False
    min_value: float | None = None
    max_value: float | None = None
    domain: tuple[str, ...] | None = None
    max_length: int = 128
    doc: str = ""


@dataclasses.dataclass(frozen=True)
class Contract:
    """A raw entity: its columns, in order, and the columns that identify a row."""

    name: str
    fields: tuple[Field, ...]
    key: tuple[str, ...]
    file_name: str

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"contract {self.name!r} has no column {name!r}")


EVENT_TYPES = ("view", "click", "inquiry", "purchase")
"""The engagement funnel, weakest to strongest."""

LEAD_STATUSES = ("active", "pending", "sold", "withdrawn")

# Column names, shared by every module that touches raw data.
LEAD_ID = "lead_id"
USER_ID = "user_id"
EVENT_ID = "event_id"
LATITUDE = "latitude"
LONGITUDE = "longitude"
REGION = "region"
PROPERTY_TYPE = "property_type"
PRICE = "price"
BEDROOMS = "bedrooms"
BATHROOMS = "bathrooms"
LIVING_AREA = "living_area"
LISTED_DATE = "listed_date"
STATUS = "status"
HOME_LATITUDE = "home_latitude"
HOME_LONGITUDE = "home_longitude"
SIGNUP_DATE = "signup_date"
EVENT_TYPE = "event_type"
TIMESTAMP = "timestamp"
REQUEST_ID = "request_id"
DATE = "date"
DEMAND = "demand"
MEDIAN_PRICE = "median_price"
INVENTORY = "inventory"
PRICE_TREND = "price_trend"


class _IdColumn(TypedDict):
    """The options every identifier column shares (``Field(name, **_ID)``)."""

    kind: Kind
    max_length: int


_ID: _IdColumn = {"kind": Kind.STRING, "max_length": 64}

LEADS = Contract(
    name="leads",
    file_name="leads.csv",
    key=(LEAD_ID,),
    fields=(
        Field(LEAD_ID, **_ID, doc="stable identifier of the lead"),
        Field(LATITUDE, Kind.FLOAT, min_value=-90.0, max_value=90.0),
        Field(LONGITUDE, Kind.FLOAT, min_value=-180.0, max_value=180.0),
        Field(REGION, Kind.STRING, max_length=64, doc="market region (metro, zip code, ...)"),
        Field(PROPERTY_TYPE, Kind.STRING, max_length=64),
        Field(PRICE, Kind.FLOAT, nullable=True, min_value=0.01, max_value=1e9),
        Field(BEDROOMS, Kind.INT, nullable=True, min_value=0, max_value=50),
        Field(BATHROOMS, Kind.FLOAT, nullable=True, min_value=0, max_value=50),
        Field(LIVING_AREA, Kind.FLOAT, nullable=True, min_value=1, max_value=100_000),
        Field(LISTED_DATE, Kind.DATE),
        Field(STATUS, Kind.STRING, domain=LEAD_STATUSES),
    ),
)

USERS = Contract(
    name="users",
    file_name="users.csv",
    key=(USER_ID,),
    fields=(
        Field(USER_ID, **_ID),
        Field(HOME_LATITUDE, Kind.FLOAT, nullable=True, min_value=-90.0, max_value=90.0),
        Field(HOME_LONGITUDE, Kind.FLOAT, nullable=True, min_value=-180.0, max_value=180.0),
        Field(SIGNUP_DATE, Kind.DATE),
    ),
)

EVENTS = Contract(
    name="events",
    file_name="events.csv",
    key=(EVENT_ID,),
    fields=(
        Field(EVENT_ID, **_ID),
        Field(USER_ID, **_ID),
        Field(LEAD_ID, **_ID),
        Field(EVENT_TYPE, Kind.STRING, domain=EVENT_TYPES),
        Field(TIMESTAMP, Kind.TIMESTAMP),
        Field(REQUEST_ID, Kind.STRING, nullable=True, max_length=64),
    ),
)

MARKET = Contract(
    name="market",
    file_name="market.csv",
    key=(REGION, DATE),
    fields=(
        Field(REGION, Kind.STRING, max_length=64),
        Field(DATE, Kind.DATE),
        Field(DEMAND, Kind.FLOAT, min_value=0, max_value=1e9),
        Field(MEDIAN_PRICE, Kind.FLOAT, nullable=True, min_value=0.01, max_value=1e9),
        Field(INVENTORY, Kind.INT, min_value=0, max_value=1e9),
        Field(PRICE_TREND, Kind.FLOAT, min_value=-1.0, max_value=10.0),
    ),
)

ALL_CONTRACTS = (LEADS, USERS, EVENTS, MARKET)
