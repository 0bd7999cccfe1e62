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
# # 04 · Online quality and A/B
#
# From the event log (the served answers, or impressions, and the feedback on them): online
# quality per model version and variant with 95% intervals, as `aiqleads quality report`
# computes it (`aiqleads.events.quality`), CTR over time, and the canary against stable as
# `aiqleads ab report` analyses it (`monitoring.ab`: per-user counts, a Poisson GLM with a
# user-clustered covariance). Without a canary in the log, the same analysis runs as an
# A/A check: stable's users split in two halves by a hash of their id, where no difference
# should show.
#
# The event store: `AIQLEADS_NOTEBOOK_EVENT_STORE` (a `redis://` URL), else the running
# `aiqleads serve` stack's (`runs/serve/stack.json`).

# %%
import hashlib
import math

import numpy as np
import pandas as pd
from IPython.display import HTML, display

from aiqleads.events.log import EventLog
from aiqleads.events.quality import OnlineQuality, report_rows
from aiqleads.events.records import (
    FEEDBACK_STREAM,
    IMPRESSIONS_STREAM,
    Feedback,
    Impression,
)
from monitoring import ab
from notebooks import inputs
from pipeline.report import figures

log = EventLog(inputs.event_store_url())
try:
    impressions = [Impression.decode(e.raw) for e in log.range(IMPRESSIONS_STREAM)]
    feedback = [Feedback.decode(e.raw) for e in log.range(FEEDBACK_STREAM)]
finally:
    log.close()
print(f"{len(impressions):,} answers and {len(feedback):,} feedback events in the log")
assert impressions, "the event log holds no answers yet: serve some traffic (aiqleads simulate)"

# %% [markdown]
# ## Online quality per model version and variant

# %%
quality = OnlineQuality(window_seconds=ab.Design().window_seconds)
for imp in impressions:
    quality.add_impression(imp)
for fb in feedback:
    quality.add_feedback(fb)
quality.expire(math.inf)
rows = []
for row in report_rows(quality):
    flat = {k: v for k, v in row.items() if not isinstance(v, dict)}
    for name, rate in row.items():
        if isinstance(rate, dict):
            flat[name] = rate["value"]
            flat[f"{name} 95%"] = f"[{rate['low']:.4f}, {rate['high']:.4f}]"
    rows.append(flat)
per_arm = pd.DataFrame(rows)
per_arm

# %%
fig, axes = figures.new_figure(9, 3.4, ncols=2)
for ax, name in zip(axes, ("ctr", "hit_rate"), strict=True):
    rates = [r for r in report_rows(quality) if r["variant"] != "all"]
    labels = [f"v{r['model_version']} {r['variant']}" for r in rates]
    values = np.array([r[name]["value"] for r in rates])
    errors = np.array(
        [[r[name]["value"] - r[name]["low"], r[name]["high"] - r[name]["value"]] for r in rates]
    ).T
    ax.errorbar(range(len(rates)), values, yerr=errors, fmt="o", capsize=4)
    ax.set_xticks(range(len(rates)), labels, fontsize=8)
    ax.set_ylabel(f"{name} (95% Wilson interval)")
display(HTML(figures.to_svg(fig)))

# %% [markdown]
# ## CTR over time
#
# Clicks per answer, by the minute the answer was given (feedback attributed to its answer
# by request id).

# %%
answers = pd.DataFrame(
    [(i.request_id, i.ts, f"v{i.model_version} {i.variant}") for i in impressions],
    columns=["request_id", "ts", "arm"],
).drop_duplicates("request_id")
events = pd.DataFrame(
    [(fb.request_id, fb.event_type) for fb in feedback], columns=["request_id", "event"]
)
clicks = events[events["event"] == "click"].groupby("request_id").size().rename("clicks")
answers = answers.join(clicks, on="request_id").fillna({"clicks": 0})
answers["minute"] = pd.to_datetime(answers["ts"], unit="s").dt.floor("min")
ctr = answers.pivot_table(index="minute", columns="arm", values="clicks", aggfunc="mean")
fig, (ax,) = figures.new_figure(8, 3.2)
ctr.plot(ax=ax, marker=".")
ax.set_ylabel("clicks per answer")
display(HTML(figures.to_svg(fig)))
ctr.tail()

# %% [markdown]
# ## Canary against stable (or an A/A check)

# %%
served = pd.DataFrame(
    [(i.variant, i.model_version, i.ts) for i in impressions], columns=["variant", "version", "ts"]
)
stable = served[served["variant"] == ab.STABLE]
canary = served[served["variant"] == ab.CANARY]
if len(canary):
    experiment = ab.Experiment(
        stable_version=int(stable["version"].mode().iloc[0]),
        canary_version=int(canary["version"].mode().iloc[0]),
        start=float(canary["ts"].min()),
        canary_fraction=len(canary) / len(served),
    )
    data = ab.ExperimentData.collect(impressions, feedback, experiment, ab.Design().window_seconds)
    title = f"canary v{experiment.canary_version} against stable v{experiment.stable_version}"
else:
    # A/A: stable's users in two halves by a hash of their id; the "canary" half is a copy
    # of stable, so the test should find nothing.
    only = ab.Experiment(
        stable_version=int(served["version"].mode().iloc[0]),
        canary_version=-1,
        start=float(served["ts"].min()),
        canary_fraction=0.0,
    )
    data = ab.ExperimentData.collect(impressions, feedback, only, ab.Design().window_seconds)
    half = data.answers["user"].map(lambda u: hashlib.sha256(u.encode()).digest()[0] % 2)
    data = ab.ExperimentData(
        data.answers.assign(arm=np.where(half == 1, ab.CANARY, ab.STABLE)), data.events
    )
    title = f"A/A check: stable v{only.stable_version}'s users in two halves"
counts = data.counts()
print(title)
print(counts.groupby("arm")[["impressions", "clicks", "inquiries", "hits"]].sum())

# %%
rows = []
for metric, column in ab.METRICS.items():
    row = {"metric": metric}
    for arm in ab.ARMS:
        estimate = ab.rate(counts[counts["arm"] == arm], column)
        row[arm] = estimate.value
        row[f"{arm} 95%"] = f"[{estimate.low:.4f}, {estimate.high:.4f}]"
    comparison = ab.compare(counts, column)
    row["lift"] = comparison.lift.value
    row["lift 95%"] = f"[{comparison.lift.low:+.3f}, {comparison.lift.high:+.3f}]"
    row["p-value"] = comparison.p_value
    rows.append(row)
pd.DataFrame(rows).set_index("metric")

# %% [markdown]
# ## How much data the test needs
#
# The information (1 / variance of the log CTR ratio) the test has now, against what the
# design needs to see a relative change of `mde` with the planned power, and the smallest
# lift it could detect today.

# %%
design = ab.Design()
have = ab.information(counts)
need = ab.information_needed(design)
print(f"information {have:.1f} of {need:.1f} needed ({have / need:.0%})")
if have > 0:
    print(f"minimum detectable lift now: {ab.minimum_detectable_lift(have, design):.1%}")
