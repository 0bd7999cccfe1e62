"""The offline store's retrieval (ExampleGen's as-of joins, by feature view): each view adds
the columns it defines, user-only queries get the user columns, and the Examples artifact
records the view versions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aiqleads.features import definitions as d


def test_each_view_adds_its_columns_and_only_them(small_world):
    from components.example_gen import offline_store as o
    from components.example_gen import raw_tables

    data, days = small_world
    tables = o.OfflineTables.read(data, days[-1])
    queries = pd.DataFrame(
        {
            "user_id": tables.users["user_id"].iloc[:5].to_numpy(),
            "lead_id": tables.leads["lead_id"].iloc[:5].to_numpy(),
            raw_tables.TS_SECONDS: np.int64(raw_tables.day_end_seconds(days[-1])),
        }
    )
    full = o.historical_features(queries, tables)
    assert set(full.columns) - set(queries.columns) == {
        col for cols in o.OFFLINE_COLUMNS.values() for col in cols
    }
    users_only = o.historical_features(
        queries.drop(columns=["lead_id"]), tables, [d.USER_BEHAVIOUR_V1.name, d.USER_GEO_V1.name]
    )
    assert set(users_only.columns) - set(queries.columns) == set(o.USER_COLUMNS + o.GEO_COLUMNS)
    market = o.historical_features(queries, tables, [d.REGION_MARKET_V1.name])
    assert set(o.OFFLINE_COLUMNS[d.REGION_MARKET_V1.name]) <= set(market.columns)
    with pytest.raises(
        o.OfflineRetrievalError, match=r"no offline retrieval for view\(s\) \['x'\]"
    ):
        o.historical_features(queries, tables, ["x"])
    assert o.view_versions() == {v.name: v.version for v in d.VIEWS}
