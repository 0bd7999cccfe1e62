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
# # 02 · Model evaluation
#
# One run's TFMA result: the gate's thresholds and whether each passed, metrics overall and
# per slice against the last blessed model, the plots of both models' scores on the eval
# split, and the quality benchmark's baselines (per-region popularity, item-item CF) ranked
# on the same eval examples beside the model.
#
# Config and run: `AIQLEADS_NOTEBOOK_CONFIG`, `AIQLEADS_NOTEBOOK_RUN` (see 01).

# %%
import datetime as dt

import numpy as np
import pandas as pd
import tensorflow_model_analysis as tfma
from IPython.display import HTML, display

from components.baselines import metrics as ranking
from components.baselines.item_knn import ItemKNN
from components.baselines.popularity import RegionalPopularity
from components.example_gen import raw_tables, snapshots
from notebooks import inputs
from pipeline.report import examples, model_section, plots_section, render, scoring
from pipeline.report import html as report_html
from transforms import features as f

cfg, run = inputs.pipeline_run()
assert run.evaluation, f"run {run.run_id} has no evaluation (the Evaluator did not run)"
print(f"run {run.run_id}: blessed {run.blessed}, pushed to {run.pushed_to}")
print(f"candidate {run.model}\nbaseline  {run.baseline_model or '- (first blessing)'}")

# %% [markdown]
# ## The gate
#
# The thresholds as the Evaluator applied them (`eval_config.json` next to the metrics),
# the value each was held to (the change against the baseline for a change threshold),
# and TFMA's verdict (`tfma.load_validation_result`).

# %%
metrics = model_section.load_metrics(run.evaluation)
validation = tfma.load_validation_result(run.evaluation)
print(f"validation_ok: {validation.validation_ok}")
display(
    HTML(
        report_html.table(
            model_section.gate_table(run.evaluation, metrics), raw_columns=("status",)
        )
    )
)

# %% [markdown]
# ## Overall and per slice (TFMA)

# %%
model_section.overall_table(metrics)

# %%
for feature in model_section.slice_features(metrics):
    chart = model_section.slice_figure(metrics, feature, "engagement_auc")
    if chart:
        display(HTML(chart))
    display(model_section.slice_table(metrics, feature))

# %% [markdown]
# ## Both models on the eval split
#
# TFMA keeps metrics, not predictions: the eval split is scored here with each model's
# `serving_default`, the signature the Evaluator scores.

# %%
schema = examples.load_schema(run.schema)
eval_split = examples.read_split(run.examples, "eval", schema)
frame = eval_split.frame.copy()
models = []
for name, path in (
    (scoring.CANDIDATE, run.candidate_saved_model),
    (scoring.BASELINE, run.baseline_saved_model),
):
    if path:
        frame[name] = scoring.score(path, eval_split.records)
        models.append(name)
top_k = render.evaluation_top_k(run.evaluation)
display(HTML(plots_section.render(frame, models, top_k)))
scoring.segment_metrics(frame, models, top_k)

# %% [markdown]
# ## The quality benchmark's baselines, side by side
#
# Per-region popularity and item-item CF (`components.baselines`, the quality benchmark's
# baselines) learn from the window's training days and rank each eval user's examples,
# the Evaluator's protocol; the model's ranking is its `serving_default` score.

# %%
data_root = inputs.data_root(cfg, run)
eval_days = sorted(pd.to_datetime(frame[f.EVENT_TIMESTAMP], unit="s").dt.date.unique())
cut = eval_days[0] - dt.timedelta(days=1)
train_events = raw_tables.read_events(data_root, raw_tables.spans_up_to(data_root, cut))
catalogue = snapshots.load_catalogue(data_root, eval_days[-1])
lead_ids = catalogue[f.LEAD_ID].to_numpy()
row_of = {lead: i for i, lead in enumerate(lead_ids)}
popularity = RegionalPopularity(lead_ids, catalogue[f.REGION].to_numpy()).fit(train_events)
item_cf = ItemKNN(lead_ids).fit(train_events)


def baseline_scores(score_user) -> np.ndarray:
    """Each eval example's score by a catalogue scorer (-inf for a lead not in it)."""
    out = np.full(len(frame), -np.inf)
    for user, rows in frame.groupby(f.USER_ID):
        scores = score_user(user)
        rows_in = [row_of.get(lead) for lead in rows[f.LEAD_ID]]
        out[rows.index] = [scores[i] if i is not None else -np.inf for i in rows_in]
    return out


frame["popularity"] = baseline_scores(popularity.score)
frame["item_cf"] = baseline_scores(lambda u: item_cf.score(u) + 1e-6 * popularity.scores)

rows = []
for method in [*models, "popularity", "item_cf"]:
    per_user = []
    for _, group in frame.groupby(f.USER_ID):
        gains = dict(enumerate(group[f.ENGAGEMENT].to_numpy(float)))
        relevant = {i: g for i, g in gains.items() if g > 0}
        if relevant:
            order = np.argsort(-group[method].to_numpy(), kind="stable")
            per_user.append(ranking.ranking_metrics(order.tolist(), relevant, top_k))
    rows.append(
        {
            "method": method,
            **{key: float(np.mean([r[key] for r in per_user])) for key in per_user[0]},
        }
    )
side_by_side = pd.DataFrame(rows).set_index("method")
side_by_side["NDCG / popularity"] = (
    side_by_side[ranking.NDCG] / side_by_side.loc["popularity", ranking.NDCG]
)
side_by_side
