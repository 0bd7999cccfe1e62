# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Data and drift
#
# A data set and one pipeline run's view of it: what the spans hold, the TFDV statistics of
# the run's examples, the anomalies against the curated schema, and drift between any two
# days of the window, measured exactly as the pipeline's drift check measures it.
#
# The pipeline config comes from `AIQLEADS_NOTEBOOK_CONFIG` (the default config when unset)
# and the run from `AIQLEADS_NOTEBOOK_RUN` (`latest` when unset): `make notebooks` and
# `notebooks/execute.py --config FILE --run ID` set them, `notebooks/inputs.py` reads them.

# %%
import pathlib

import pandas as pd
from IPython.display import HTML, display
from tensorflow_data_validation.utils import display_util

from aiqleads import contracts, layout
from aiqleads.data.describe import describe_dataset, format_description
from components.drift_check import drift
from components.drift_check import executor as drift_executor
from components.example_gen import raw_tables
from notebooks import inputs
from pipeline.report import data_section, examples, figures
from pipeline.report import html as report_html
from transforms import features as f

cfg, run = inputs.pipeline_run()
data_root = inputs.data_root(cfg, run)
print(f"pipeline {cfg.name}, run {run.run_id}, data {data_root}")

# %% [markdown]
# ## The data set

# %%
print(format_description(describe_dataset(data_root)))

# %%
events = raw_tables.read_events(data_root, layout.list_spans(pathlib.Path(data_root)))
per_day = (
    events.assign(day=pd.to_datetime(events[contracts.TIMESTAMP]).dt.date)
    .pivot_table(
        index="day", columns=contracts.EVENT_TYPE, values=contracts.LEAD_ID, aggfunc="count"
    )
    .fillna(0)
    .astype(int)
)
fig, (ax,) = figures.new_figure(8, 3.2)
per_day.plot(ax=ax, marker=".")
ax.set_ylabel("events per day")
display(HTML(figures.to_svg(fig)))
per_day.tail()

# %% [markdown]
# ## The run's examples: TFDV statistics per split
#
# StatisticsGen's statistics of the examples ExampleGen wrote (positives and sampled
# negatives). TFDV's own Facets view (`tfdv.visualize_statistics`) loads its web
# components from the network, so the same statistics are shown here as tables.

# %%
statistics = data_section.load_statistics(run.statistics)
for split, stats in statistics.items():
    print(f"split {split}: {stats.datasets[0].num_examples:,} examples")
data_section.feature_table(statistics["train"].datasets[0])

# %% [markdown]
# ## Anomalies against the curated schema (ExampleValidator)

# %%
for split, anomalies in data_section.load_anomalies(run.anomalies).items():
    frame = display_util.get_anomalies_dataframe(anomalies)
    print(f"split {split}: {len(frame)} anomalies")
    display(frame)

# %% [markdown]
# ## The run's drift report
#
# The newest span against the one before, as the drift check measured it, with the
# thresholds of the run's config.

# %%
report = drift_executor.read_report(run.drift_report)
print(report.to_text())
display(HTML(data_section.drift_figure(report)))

# %% [markdown]
# ## Drift between any two days
#
# The drift check's own comparison (`components.drift_check.drift.compare`) on the engaged
# examples of two days of the window, with the thresholds the run used. Change `DAY_A` and
# `DAY_B` to compare other days.

# %%
schema = examples.load_schema(run.schema)
frames = [examples.read_split(run.examples, split, schema).frame for split in ("train", "eval")]
positives = pd.concat(frames, ignore_index=True)
positives = positives[positives[f.ENGAGEMENT] > 0]
positives["day"] = pd.to_datetime(positives[f.EVENT_TIMESTAMP], unit="s").dt.date
window_days = sorted(positives["day"].unique())
DAY_A, DAY_B = window_days[0], window_days[-1]

thresholds = drift.Thresholds(
    numeric={m.feature: m.threshold for m in report.measurements if m.measure == drift.JS},
    categorical={m.feature: m.threshold for m in report.measurements if m.measure == drift.LINF},
    regional_median_shift=None,
)
between = drift.compare(
    current=positives[positives["day"] == DAY_B],
    previous=positives[positives["day"] == DAY_A],
    serving=None,
    training=None,
    schema=schema,
    thresholds=thresholds,
    current_span=str(DAY_B),
    previous_span=str(DAY_A),
)
print(between.to_text())
display(HTML(report_html.table(data_section.drift_table(between), raw_columns=("status",))))

# %% [markdown]
# ### The two days' distributions (TFDV histograms)

# %%
pair = data_section.SpanPair(
    str(DAY_B),
    str(DAY_A),
    positives[positives["day"] == DAY_B],
    positives[positives["day"] == DAY_A],
)
now, then = data_section.span_statistics(pair, thresholds.features, schema)
display(HTML(data_section.span_histograms_figure(now, then, pair)))
data_section.span_comparison_table(now, then, pair)
