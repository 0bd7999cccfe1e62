"""The on-disk layout of a data set: dimension tables at the root, one folder per daily span.

```
<root>/manifest.json                       name, source, currency, seed, spans, row counts
<root>/leads.csv                           the catalogue (contracts.LEADS)
<root>/users.csv                           contracts.USERS
<root>/spans/YYYY-MM-DD/events.csv         contracts.EVENTS, the events of that UTC day
<root>/spans/YYYY-MM-DD/market.csv         contracts.MARKET, the market rows of that day
<root>/ground_truth/user_preferences.csv   synthetic sets only: the hidden preferences
<root>/serving_logs/YYYY-MM-DD.jsonl       served answers' features (`aiqleads events ingest`)
<root>/quarantine/events/YYYY-MM-DD.jsonl  feedback ingestion set aside, with its reason
```

A pipeline run reads a rolling window of span folders; a new day is a new folder.
"""

from __future__ import annotations

import datetime as dt
import pathlib

from aiqleads import contracts

MANIFEST = "manifest.json"
SPANS_DIR = "spans"
GROUND_TRUTH_DIR = "ground_truth"
USER_PREFERENCES = "user_preferences.csv"
SERVING_LOGS_DIR = "serving_logs"
EVENTS_QUARANTINE_DIR = "quarantine/events"
SPAN_FORMAT = "%Y-%m-%d"


def span_name(day: dt.date) -> str:
    return day.strftime(SPAN_FORMAT)


def span_dir(root: pathlib.Path, day: dt.date) -> pathlib.Path:
    return pathlib.Path(root) / SPANS_DIR / span_name(day)


def list_spans(root: pathlib.Path) -> list[dt.date]:
    """The days that have a span folder under ``root``, oldest first."""
    spans_root = pathlib.Path(root) / SPANS_DIR
    if not spans_root.is_dir():
        return []
    days = []
    for child in spans_root.iterdir():
        try:
            days.append(dt.datetime.strptime(child.name, SPAN_FORMAT).date())
        except ValueError:
            continue
    return sorted(days)


def table_path(
    root: pathlib.Path, contract: contracts.Contract, day: dt.date | None = None
) -> pathlib.Path:
    """Where a contract's file lives: at the root for leads/users, in a span for the rest."""
    if contract in (contracts.LEADS, contracts.USERS):
        return pathlib.Path(root) / contract.file_name
    if day is None:
        raise ValueError(f"{contract.name} lives in daily spans: pass the span's day")
    return span_dir(root, day) / contract.file_name
