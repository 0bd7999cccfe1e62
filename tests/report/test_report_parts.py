"""The report's pieces on small hand-made inputs; expected values worked out by hand."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from tensorflow_metadata.proto.v0 import statistics_pb2

from pipeline.report import data_section, figures, geo_section, run_artifacts, scoring
from pipeline.report import html as h
from transforms import features as f

NAN = float("nan")


@pytest.fixture
def scored() -> pd.DataFrame:
    """Three users' eval examples: engagement and the candidate's score.

    u1 (known): by score 0.9 (neg), 0.8 (click), 0.7 (view), 0.1 (neg): relevant by rank
    [no, yes, yes, no]. u2 (new: no recency): 0.5 (neg), 0.4 (inquiry), 0.2 (neg).
    u3 (known): negatives only, so it counts for AUC but not for the per-user metrics.
    """
    rows = [
        ("u1", 0, 0.9, 1.0),
        ("u1", 2, 0.8, 1.0),
        ("u1", 0, 0.1, 1.0),
        ("u1", 1, 0.7, 1.0),
        ("u2", 0, 0.2, NAN),
        ("u2", 0, 0.5, NAN),
        ("u2", 3, 0.4, NAN),
        ("u3", 0, 0.3, 2.0),
        ("u3", 0, 0.6, 2.0),
    ]
    return pd.DataFrame(
        rows, columns=[f.USER_ID, f.ENGAGEMENT, scoring.CANDIDATE, f.USER_DAYS_SINCE_LAST]
    )


def test_precision_and_recall_at_k(scored):
    curve = scoring.at_k_curve(scored, scoring.CANDIDATE, range(1, 4)).set_index("k")
    # k=1: nobody's first is relevant. k=2: u1 1 of 2 (p .5, r .5), u2 1 of 1 (p .5, r 1).
    # k=3: u1 2 of 2 (p 2/3, r 1), u2 1 of 1 (p 1/3, r 1).
    assert curve.loc[1].tolist() == [0.0, 0.0]
    assert curve.loc[2].tolist() == pytest.approx([0.5, 0.75])
    assert curve.loc[3].tolist() == pytest.approx([0.5, 1.0])


def test_calibration_bins(scored):
    table = scoring.calibration(scored, scoring.CANDIDATE, bins=2)
    # [0, .5): 0.1 0.2 0.4 0.3 -> mean .25, one engaged of 4; [.5, 1]: 0.9 0.8 0.7 0.5 0.6
    # -> mean .7, two engaged of 5.
    assert table["examples"].tolist() == [4, 5]
    assert table["mean score"].tolist() == pytest.approx([0.25, 0.7])
    assert table["engaged rate"].tolist() == pytest.approx([0.25, 0.4])


def test_new_and_known_users(scored):
    table = scoring.segment_metrics(scored, [scoring.CANDIDATE], k=2).set_index("user segment")
    known, new = table.loc[scoring.KNOWN_USERS], table.loc[scoring.NEW_USERS]
    assert (known["examples"], known["engaged"], known["users"]) == (6, 2, 2)
    assert (new["examples"], new["engaged"], new["users"]) == (3, 1, 1)
    # known AUC: positives 0.8, 0.7 each above 3 of the 4 negatives (0.1, 0.3, 0.6; not 0.9).
    assert known["engagement_auc"] == pytest.approx(6 / 8)
    assert new["engagement_auc"] == pytest.approx(1 / 2)  # 0.4 beats 0.2, not 0.5
    # Per user at k=2 (u3 has nothing relevant): u1 finds the click in slot 2.
    assert known["hit_rate@2"] == 1.0
    assert known["precision@2"] == pytest.approx(0.5)
    assert known["recall@2"] == pytest.approx(0.5)
    # NDCG@2 of u1: gains by rank [0, 2]: (2^2-1)/log2(3) over the ideal 3/1 + 1/log2(3).
    ideal = 3.0 + 1.0 / math.log2(3)
    assert known["ndcg@2"] == pytest.approx((3.0 / math.log2(3)) / ideal)
    assert (new["hit_rate@2"], new["recall@2"]) == (1.0, 1.0)


def test_region_shift_is_the_change_in_each_regions_share():
    current = pd.DataFrame({f.REGION: ["a", "a", "b"]})
    before = pd.DataFrame({f.REGION: ["a", "b", "b", "c"]})
    shift = geo_section.region_shift(current, before)
    # a: 2/3 - 1/4, b: 1/3 - 1/2, c: 0 - 1/4; largest absolute change first.
    assert shift[f.REGION].tolist() == ["a", "c", "b"]
    assert shift["change"].tolist() == pytest.approx([2 / 3 - 1 / 4, -1 / 4, 1 / 3 - 1 / 2])


def test_areas_group_nearby_leads():
    lat = np.array([47.60, 47.62, 47.55, 42.30, 42.35])
    lon = np.array([-122.30, -122.25, -122.20, -71.05, -71.10])
    assert geo_section.areas(lat, lon).tolist() == [0, 0, 0, 1, 1]


def test_feature_table_reads_tfdv_statistics():
    stats = statistics_pb2.DatasetFeatureStatistics(num_examples=10)
    price = stats.features.add(type=statistics_pb2.FeatureNameStatistics.FLOAT)
    price.path.step.append("price")
    price.num_stats.common_stats.num_non_missing = 8
    price.num_stats.common_stats.num_missing = 2
    price.num_stats.mean, price.num_stats.max, price.num_stats.num_zeros = 3.5, 9.0, 1
    region = stats.features.add(type=statistics_pb2.FeatureNameStatistics.STRING)
    region.path.step.append("region")
    region.string_stats.common_stats.num_non_missing = 10
    region.string_stats.unique = 2
    region.string_stats.top_values.add(value="north", frequency=7)
    region.string_stats.top_values.add(value="south", frequency=3)
    table = data_section.feature_table(stats).set_index("feature")
    assert table.loc["price", "missing %"] == 20.0
    assert table.loc["price", "zeros %"] == 10.0
    assert table.loc["price", "mean"] == 3.5
    assert table.loc["region", "unique"] == 2
    assert table.loc["region", "top values"] == "north (7), south (3)"


def test_tables_escape_and_format():
    frame = pd.DataFrame({"name": ["<b>x</b>"], "count": [1234.0], "share": [0.123456]})
    page = h.table(frame)
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>" not in page
    assert "<td>1,234</td>" in page and "<td>0.1235</td>" in page


def test_figures_are_inline_and_do_not_share_ids():
    svgs = []
    for slope in (1, 2):
        fig, (ax,) = figures.new_figure()
        ax.plot([0, 1], [0, slope])
        svgs.append(figures.to_svg(fig))
    ids = [set(re.findall(r'\bid="([^"]+)"', svg)) for svg in svgs]
    assert ids[0] and ids[1] and not ids[0] & ids[1]
    for svg in svgs:
        assert svg.startswith("<svg")
        refs = re.findall(r'(?:href|src)="([^"]*)"', svg)
        assert all(ref.startswith("#") for ref in refs), refs
    fig, (ax,) = figures.new_figure()
    ax.scatter([0, 1], [1, 0])
    assert figures.to_png_img(fig, "a < b").startswith('<img alt="a &lt; b" src="data:image/png')


def test_a_missing_metadata_store_says_to_run_the_pipeline_first(tmp_path):
    with pytest.raises(run_artifacts.RunNotFound, match="run the pipeline first"):
        run_artifacts.find(tmp_path / "absent.sqlite", "aiqleads-recommender")


def test_a_failed_step_is_named_with_its_message_or_where_to_look():
    from pipeline import run_report
    from pipeline.report import render

    def run_line(message: str) -> str:
        failed = run_report.ComponentRun("StatisticsGen", run_report.FAILED, 1.0, 7, message)
        artifacts = "schema examples statistics anomalies drift_report transform_graph model"
        nothing = dict.fromkeys(
            (*artifacts.split(), "baseline_model", "evaluation", "blessed", "pushed_to")
        )
        found = run_artifacts.RunArtifacts(
            pipeline="aiqleads",
            run_id="2026-12-07T06-36-34",
            runs=(failed,),
            example_gen_properties={},
            **nothing,
        )
        return render._run_lines(found)[-1]

    # A step that raised inside its Beam pipeline leaves no message in MLMD.
    assert run_line("") == "stopped: StatisticsGen failed: see the run's log"
    assert run_line("drift check failed: region\n\ndetails") == (
        "stopped: StatisticsGen failed: drift check failed: region"
    )
