"""Materialization: the offline store's values as of a day, written to the online store.

For the day ``as_of`` (by default the newest complete span: today's events come from the
streaming updater) it writes, as of the end of that day:

- every lead's attributes and status (``leads.csv``), which also fills the availability set;
- every region's latest market row on or before the day;
- every user's fold state and values (every user of ``users.csv``, with the home it gives),
  from all events up to the end of the day (the same
  aggregates ExampleGen's as-of joins give a query at that moment; the skew test checks it).

Writes are guarded by event time: a user whose streamed state is newer keeps it. Every
materialized version of each view is written (N and N-1 side by side). `aiqleads features
materialize` runs it; in Kubernetes a CronJob does, after the events ingestion.
"""

from __future__ import annotations

import datetime as dt
import math
import pathlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from aiqleads import contracts as c
from aiqleads import layout
from aiqleads.errors import DataError
from aiqleads.features import definitions as d
from aiqleads.features import sources
from aiqleads.features.online import EntityWrite, OnlineStore
from aiqleads.features.user_state import LeadInfo, UserState

BATCH = 500  # entities per pipelined round trip


@dataclass(frozen=True)
class MaterializeSummary:
    as_of: dt.date
    leads: int
    regions: int
    users: int
    events: int
    written: int
    """Entities written (the others had newer values in the store already)."""
    seconds: float

    @property
    def rows(self) -> int:
        return self.leads + self.regions + self.users


def default_as_of(data_root: pathlib.Path | str, today: dt.date | None = None) -> dt.date:
    """The newest span before ``today`` (UTC): a complete day; today's events stream in."""
    today = today or dt.datetime.now(dt.timezone.utc).date()
    days = [day for day in layout.list_spans(pathlib.Path(data_root)) if day < today]
    if not days:
        raise DataError(f"no complete span (before {today}) under {data_root}/spans to materialize")
    return days[-1]


def _number(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]  # pandas cells: floats or NaN
    return number if math.isfinite(number) else None


def lead_infos(leads: pd.DataFrame) -> dict[str, LeadInfo]:
    """What the fold needs of every lead of ``leads.csv``."""
    out = {}
    for lead_id, lat, lon, price, ptype, region in zip(
        leads[c.LEAD_ID].astype(str),
        leads[c.LATITUDE].to_numpy(float),
        leads[c.LONGITUDE].to_numpy(float),
        leads[c.PRICE].to_numpy(float),
        leads[c.PROPERTY_TYPE].fillna("").astype(str),
        leads[c.REGION].fillna("").astype(str),
        strict=True,
    ):
        out[lead_id] = LeadInfo(float(lat), float(lon), float(price), ptype, region)
    return out


def lead_writes(leads: pd.DataFrame, event_ts: float) -> Iterator[EntityWrite]:
    listed = sources.to_seconds(leads[c.LISTED_DATE])
    frame = leads.reset_index(drop=True)
    for i, lead in enumerate(frame.itertuples(index=False)):
        bedrooms = _number(getattr(lead, c.BEDROOMS))
        row = {
            d.LEAD_LATITUDE: _number(getattr(lead, c.LATITUDE)),
            d.LEAD_LONGITUDE: _number(getattr(lead, c.LONGITUDE)),
            d.LEAD_REGION: str(getattr(lead, c.REGION)),
            d.LEAD_PROPERTY_TYPE: str(getattr(lead, c.PROPERTY_TYPE)),
            d.LEAD_PRICE: _number(getattr(lead, c.PRICE)),
            d.LEAD_BEDROOMS: None if bedrooms is None else int(bedrooms),
            d.LEAD_BATHROOMS: _number(getattr(lead, c.BATHROOMS)),
            d.LEAD_LIVING_AREA: _number(getattr(lead, c.LIVING_AREA)),
            d.LEAD_LISTED_TS: float(listed[i]),
            d.LEAD_STATUS: str(getattr(lead, c.STATUS)),
        }
        yield EntityWrite(d.LEAD, str(lead.lead_id), {d.LEAD_ATTRIBUTES_V1.name: row}, event_ts)


def market_writes(market: pd.DataFrame, day: dt.date, event_ts: float) -> Iterator[EntityWrite]:
    """The latest market row of each region on or before ``day``."""
    rows = market[market[c.DATE] <= pd.Timestamp(day)].dropna(subset=[c.REGION])
    latest = rows.sort_values(c.DATE, kind="stable").groupby(c.REGION, sort=True).tail(1)
    dates = sources.to_seconds(latest[c.DATE])
    for i, row in enumerate(latest.itertuples(index=False)):
        values = {
            d.MARKET_DEMAND: _number(getattr(row, c.DEMAND)),
            d.MARKET_MEDIAN_PRICE: _number(getattr(row, c.MEDIAN_PRICE)),
            d.MARKET_INVENTORY: _number(getattr(row, c.INVENTORY)),
            d.MARKET_PRICE_TREND: _number(getattr(row, c.PRICE_TREND)),
            d.MARKET_DATE_TS: float(dates[i]),
        }
        yield EntityWrite(
            d.REGION, str(getattr(row, c.REGION)), {d.REGION_MARKET_V1.name: values}, event_ts
        )


def user_states(
    users: pd.DataFrame, events: pd.DataFrame, leads: dict[str, LeadInfo], watermark: float
) -> dict[str, UserState]:
    """Every user's fold state over ``events`` (before ``watermark``), in time order; the
    users of ``users.csv`` (with their homes) and any other user with events."""
    states: dict[str, UserState] = {}
    for user_id, lat, lon in zip(
        users[c.USER_ID].astype(str),
        users[c.HOME_LATITUDE].to_numpy(float),
        users[c.HOME_LONGITUDE].to_numpy(float),
        strict=True,
    ):
        home = (float(lat), float(lon)) if np.isfinite(lat) and np.isfinite(lon) else None
        states[user_id] = UserState(home=home, watermark=watermark)
    ordered = events.sort_values(sources.TS_SECONDS, kind="stable")
    for user_id, lead_id, event_type, ts in zip(
        ordered[c.USER_ID].astype(str),
        ordered[c.LEAD_ID].astype(str),
        ordered[c.EVENT_TYPE].astype(str),
        ordered[sources.TS_SECONDS].to_numpy(np.int64),
        strict=True,
    ):
        state = states.get(user_id)
        if state is None:
            state = states[user_id] = UserState(watermark=watermark)
        state.apply(event_type, float(ts), lead_id, leads.get(lead_id, LeadInfo()))
    return states


def user_write(user_id: str, state: UserState, event_ts: float) -> EntityWrite:
    values = state.values()
    rows = {
        view: {name: values[name] for name in d.REGISTRY.latest(view).names}
        for view in d.REGISTRY.for_entity(d.USER)
    }
    return EntityWrite(d.USER, user_id, rows, event_ts, state=state)


def _batched(writes: Iterator[EntityWrite], store: OnlineStore) -> tuple[int, int]:
    total = written = 0
    batch: list[EntityWrite] = []
    for write in writes:
        batch.append(write)
        if len(batch) >= BATCH:
            written += sum(store.write_many(batch))
            total += len(batch)
            batch = []
    written += sum(store.write_many(batch))
    return total + len(batch), written


def materialize(
    store: OnlineStore,
    data_root: pathlib.Path | str,
    as_of: dt.date | None = None,
    progress: Callable[[str], None] | None = None,
) -> MaterializeSummary:
    """Write the offline values as of the end of ``as_of`` to the online store."""
    started = time.perf_counter()
    say = progress or (lambda _: None)
    day = as_of or default_as_of(data_root)
    watermark = float(sources.day_end_seconds(day))
    days = sources.spans_up_to(data_root, day)
    leads = sources.read_leads(data_root)
    n_leads, w_leads = _batched(lead_writes(leads, watermark), store)
    say(f"{n_leads:,} leads")
    market = sources.read_market(data_root, days)
    n_regions, w_regions = _batched(market_writes(market, day, watermark), store)
    say(f"{n_regions:,} regions")
    # Every user of users.csv, also those who sign up later: their home is known now, and
    # their first events will stream in.
    users = sources.read_users(data_root)
    events = sources.read_events(data_root, days)
    events = events[events[sources.TS_SECONDS] < watermark]
    states = user_states(users, events, lead_infos(leads), watermark)
    n_users, w_users = _batched((user_write(u, s, watermark) for u, s in states.items()), store)
    say(f"{n_users:,} users from {len(events):,} events")
    counts = {
        d.LEAD: n_leads,
        d.REGION: n_regions,
        d.USER: n_users,
    }
    for name in d.REGISTRY.names:
        for view in d.REGISTRY.materialized(name):
            store.set_meta(view, day.isoformat(), counts[view.entity])
    return MaterializeSummary(
        as_of=day,
        leads=n_leads,
        regions=n_regions,
        users=n_users,
        events=len(events),
        written=w_leads + w_regions + w_users,
        seconds=time.perf_counter() - started,
    )
