"""`preprocessing_fn` through Beam on tiny hand-made examples: golden schema and values."""

from __future__ import annotations

import importlib.util
import math
import os
import pathlib

import numpy as np
import pytest

from transforms import features as f

HERE = pathlib.Path(__file__).resolve().parent
GOLDEN = HERE.parents[1] / "tests" / "testdata" / "transforms" / "transformed_schema.pbtxt"
KM_PER_DEGREE = 6371.0088 * math.pi / 180.0


def _load(name: str, path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tiny = _load("tiny_examples", HERE / "tiny_examples.py")


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
    out = tmp_path_factory.mktemp("tft")
    rows = tiny.analyze_and_transform(tiny.raw_examples(), out)
    return out, rows


def test_transformed_schema_matches_golden(transformed):
    import tensorflow_transform as tft
    from google.protobuf import text_format

    out, _ = transformed
    schema = tft.TFTransformOutput(str(out / "transform_graph")).transformed_metadata.schema
    text = text_format.MessageToString(schema)
    if os.environ.get("AIQLEADS_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "regenerate with AIQLEADS_UPDATE_GOLDEN=1 if intended"


def _rows_for(rows, tft_out, user: str, lead: str):
    users = tft_out.vocabulary_by_name(f.USER_ID)
    leads = tft_out.vocabulary_by_name(f.LEAD_ID)
    u, lead_i = users.index(user.encode()), leads.index(lead.encode())
    return [r for r in rows if r[f.T_USER_INDEX] == u and r[f.T_LEAD_INDEX] == lead_i]


def test_values_derived_by_hand(transformed):
    import tensorflow_transform as tft

    out, rows = transformed
    tft_out = tft.TFTransformOutput(str(out / "transform_graph"))
    assert len(rows) == len(tiny.INTERACTIONS)

    # Vocabularies by frequency: U1 (3) and U2 (3) tie; L1 is the most frequent lead.
    assert tft_out.vocabulary_by_name(f.LEAD_ID)[0] == b"L1"
    assert tft_out.vocabulary_size_by_name(f.REGION) == 2

    # U1 -> L1 purchase: user one degree north of the lead.
    purchase = [r for r in _rows_for(rows, tft_out, "U1", "L1") if r[f.T_WEIGHT] == 8.0]
    assert len(purchase) == 1
    r = purchase[0]
    assert r[f.T_LABEL] == 1.0
    assert r[f.T_DISTANCE] == pytest.approx(math.log1p(KM_PER_DEGREE), rel=1e-4)
    assert r[f.T_USER_LOCATION_MISSING] == 0.0
    # price 500k vs market 400k; user median 450k.
    assert r[f.T_PRICE_VS_MARKET] == pytest.approx(math.log(500 / 400), rel=1e-5)
    assert r[f.T_PRICE_FIT] == pytest.approx(abs(math.log(500 / 450)), rel=1e-5)
    assert r[f.T_USER_LEAD_HISTORY] == pytest.approx(math.log1p(3.0), rel=1e-6)
    assert r[f.T_USER_TYPE_SHARE] == pytest.approx(0.6, rel=1e-6)
    assert r[f.T_USER_REGION_SHARE] == pytest.approx(0.8, rel=1e-6)
    # Hotspot of `north`: L1's cell carries 8 + 2 of demand, L4's only 1 (< half): the only
    # hotspot is centred on L1 (L2 in the same cell has no demand), so L1 is 0 km from it.
    assert r[f.T_HOTSPOT_DISTANCE] == pytest.approx(0.0, abs=1e-6)
    # L1 and L2 share a fine cell: two distinct leads, whatever their example counts.
    assert r[f.T_CELL_DENSITY] == pytest.approx(math.log1p(2.0), rel=1e-6)

    # Engagement 2 (click) -> weight 2; negative -> label 0, weight 1.
    weights = sorted(x[f.T_WEIGHT] for x in _rows_for(rows, tft_out, "U1", "L1"))
    assert weights == [2.0, 8.0]
    neg = _rows_for(rows, tft_out, "U2", "L2")[0]
    assert (neg[f.T_LABEL], neg[f.T_WEIGHT]) == (0.0, 1.0)
    # Unknown user location -> flag and neutral distance; unknown user price -> no fit.
    assert neg[f.T_USER_LOCATION_MISSING] == 1.0
    assert neg[f.T_DISTANCE] == 0.0
    assert neg[f.T_PRICE_FIT] == 0.0
    assert neg[f.T_USER_PRICE_MISSING] == 1.0
    assert neg[f.T_USER_LEAD_HISTORY] == 0.0  # no history given: none
    assert neg[f.T_USER_TYPE_SHARE] == 0.0  # missing share: 0
    assert neg[f.T_USER_REGION_SHARE] == 0.0

    # L4 is one degree north of the hotspot at L1; alone in its cell.
    l4 = _rows_for(rows, tft_out, "U1", "L4")[0]
    assert l4[f.T_HOTSPOT_DISTANCE] == pytest.approx(math.log1p(KM_PER_DEGREE), rel=1e-4)
    assert l4[f.T_CELL_DENSITY] == pytest.approx(math.log1p(1.0), rel=1e-6)
    assert l4[f.T_USER_TYPE_SHARE] == pytest.approx(0.25, rel=1e-6)
    assert l4[f.T_USER_REGION_SHARE] == 1.0  # 1.5 clipped to the share's range
    assert l4[f.T_DISTANCE] == pytest.approx(0.0, abs=1e-3)
    # L3: price missing -> flag, neutral z and ratio; `south`'s only hotspot is L3 itself.
    l3 = _rows_for(rows, tft_out, "U2", "L3")[0]
    assert (l3[f.T_PRICE_MISSING], l3[f.T_LOG_PRICE], l3[f.T_PRICE_VS_MARKET]) == (1.0, 0.0, 0.0)
    assert l3[f.T_HOTSPOT_DISTANCE] == pytest.approx(0.0, abs=1e-6)


def test_zscores_are_centred_over_present_values(transformed):
    _, rows = transformed
    present = [r[f.T_LOG_PRICE] for r in rows if r[f.T_PRICE_MISSING] == 0.0]
    assert np.mean(present) == pytest.approx(0.0, abs=1e-5)
    assert np.std(present) == pytest.approx(1.0, abs=1e-4)
