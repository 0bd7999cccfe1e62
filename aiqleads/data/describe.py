"""A readable summary of a data set: rows, spans, dates, event mix, regions, prices."""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np
import pandas as pd

from aiqleads import contracts, layout
from aiqleads.data import io

PERCENTILES = (5, 25, 50, 75, 95)


def describe_dataset(root: pathlib.Path) -> dict[str, Any]:
    """Figures about the data set at ``root`` (reads every file once)."""
    root = io.check_dataset_dir(pathlib.Path(root))
    manifest = io.read_manifest(root)
    leads = io.read_text_table(layout.table_path(root, contracts.LEADS))
    users = io.read_text_table(layout.table_path(root, contracts.USERS))
    days = layout.list_spans(root)
    mix = dict.fromkeys(contracts.EVENT_TYPES, 0)
    events = market = 0
    first_ts = last_ts = None
    regions_in_market: set[str] = set()
    _, _, e = io.read_text_tables(
        [layout.table_path(root, contracts.EVENTS, d) for d in days],
        (contracts.EVENT_TYPE, contracts.TIMESTAMP),
    )
    _, _, m = io.read_text_tables(
        [layout.table_path(root, contracts.MARKET, d) for d in days], (contracts.REGION,)
    )
    events, market = len(e), len(m)
    for kind, n in e[contracts.EVENT_TYPE].value_counts().items():
        mix[kind] = mix.get(kind, 0) + int(n)
    if events:
        first_ts, last_ts = e[contracts.TIMESTAMP].min(), e[contracts.TIMESTAMP].max()
    regions_in_market = set(m[contracts.REGION])
    price = pd.to_numeric(leads[contracts.PRICE], errors="coerce").dropna().to_numpy()
    with_home = (users[contracts.HOME_LATITUDE] != "").sum()
    return {
        "root": str(root),
        "name": manifest.get("name", root.name),
        "source": manifest.get("source", "unknown"),
        "currency": manifest.get("currency", "?"),
        "rows": {"leads": len(leads), "users": len(users), "events": events, "market": market},
        "spans": len(days),
        "first_span": layout.span_name(days[0]) if days else None,
        "last_span": layout.span_name(days[-1]) if days else None,
        "first_event": first_ts,
        "last_event": last_ts,
        "event_mix": mix,
        "regions": int(leads[contracts.REGION].nunique()),
        "market_regions": len(regions_in_market),
        "top_regions": leads[contracts.REGION].value_counts().head(5).to_dict(),
        "property_types": leads[contracts.PROPERTY_TYPE].value_counts().head(8).to_dict(),
        "status": leads[contracts.STATUS].value_counts().to_dict(),
        "price_percentiles": (
            {
                p: float(v)
                for p, v in zip(PERCENTILES, np.percentile(price, PERCENTILES), strict=True)
            }
            if len(price)
            else {}
        ),
        "leads_without_price": int(len(leads) - len(price)),
        "users_with_home": int(with_home),
    }


def format_description(d: dict[str, Any]) -> str:
    """The description as aligned text lines."""
    rows = d["rows"]
    total = max(1, rows["events"])
    lines = [
        f"data set {d['name']} ({d['source']}) at {d['root']}",
        "  rows        " + ", ".join(f"{k} {v:,}" for k, v in rows.items()),
        f"  spans       {d['spans']} ({d['first_span']} .. {d['last_span']})",
        f"  events      {d['first_event']} .. {d['last_event']}",
        "  event mix   "
        + ", ".join(f"{k} {v:,} ({100 * v / total:.1f}%)" for k, v in d["event_mix"].items()),
        f"  regions     {d['regions']} in leads, {d['market_regions']} in market data; top: "
        + ", ".join(f"{k} {v}" for k, v in d["top_regions"].items()),
        "  types       " + ", ".join(f"{k} {v}" for k, v in d["property_types"].items()),
        "  status      " + ", ".join(f"{k} {v}" for k, v in d["status"].items()),
    ]
    if d["price_percentiles"]:
        lines.append(
            f"  price ({d['currency']}) "
            + ", ".join(f"p{p} {v:,.0f}" for p, v in d["price_percentiles"].items())
            + f"; {d['leads_without_price']} without price"
        )
    lines.append(
        f"  users       {d['users_with_home']:,} of {rows['users']:,} with home coordinates"
    )
    return "\n".join(lines)
