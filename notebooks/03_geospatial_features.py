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
# # 03 · Geospatial features
#
# What the run's Transform graph computes from locations: each lead's distance to the
# nearest demand hotspot of its region and the density of its fine grid cell (learned by
# the analyzers of `transforms/hotspots.py`), and for each example the user-to-lead distance
# (`transforms/geo.py`). The examples go through the run's own graph
# (`tft.TFTransformOutput.transform_features_layer`), the function the model serves with.
#
# Config and run: `AIQLEADS_NOTEBOOK_CONFIG`, `AIQLEADS_NOTEBOOK_RUN` (see 01).

# %%

import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_transform as tft
from IPython.display import HTML, display

from notebooks import inputs
from pipeline.report import examples, figures, geo_section
from transforms import features as f

cfg, run = inputs.pipeline_run()
assert run.transform_graph, f"run {run.run_id} has no Transform output"
print(f"run {run.run_id}: Transform graph {run.transform_graph}")

# %% [markdown]
# ## Per lead: hotspot distance and cell density, on the map

# %%
schema = examples.load_schema(run.schema)
splits = {name: examples.read_split(run.examples, name, schema) for name in ("train", "eval")}
frame = pd.concat([s.frame for s in splits.values()], ignore_index=True)
records = [r for s in splits.values() for r in s.records]
leads = geo_section.lead_features(run.transform_graph, frame, records)
display(HTML(geo_section.features_figure(leads)))
leads.frame.sort_values(geo_section.HOTSPOT_KM).head(10)

# %%
per_region = leads.frame.groupby(f.REGION)[[geo_section.HOTSPOT_KM, geo_section.DENSITY]].median()
per_region.sort_values(geo_section.HOTSPOT_KM).head(15)

# %% [markdown]
# ## Per example: the user-to-lead distance, engaged against sampled negatives
#
# The Transform graph's `log1p` km from the user's location (home, else activity centroid)
# to the lead, 0 with a flag when the user's location is unknown. Engaged examples sit
# closer than the uniformly sampled negatives: the distance is what the model weighs most.

# %%
output = tft.TFTransformOutput(run.transform_graph)
layer = output.transform_features_layer()
sample = np.random.default_rng(0).choice(len(records), min(len(records), 20_000), replace=False)
raw = tf.io.parse_example(tf.constant([records[i] for i in sample]), output.raw_feature_spec())
transformed = layer(raw)
distance = pd.DataFrame(
    {
        "km": np.expm1(transformed[f.T_DISTANCE].numpy().reshape(-1)),
        "location unknown": transformed[f.T_USER_LOCATION_MISSING].numpy().reshape(-1) > 0,
        "engaged": frame[f.ENGAGEMENT].to_numpy()[sample] > 0,
    }
)
known = distance[~distance["location unknown"]]
fig, (ax,) = figures.new_figure(7, 3.4)
bins = np.logspace(-1, 4, 50)
for engaged, color in ((False, "#8d99ae"), (True, "#d1495b")):
    part = known[known["engaged"] == engaged]["km"].clip(lower=0.1)
    ax.hist(
        part,
        bins=bins,
        density=True,
        histtype="step",
        linewidth=1.6,
        color=color,
        label=f"{'engaged' if engaged else 'sampled negative'} ({len(part):,})",
    )
ax.set_xscale("log")
ax.set_xlabel("user-to-lead distance (km)")
ax.set_ylabel("density")
ax.legend(fontsize=8)
display(HTML(figures.to_svg(fig)))
known.groupby("engaged")["km"].describe()

# %% [markdown]
# ## The other features Transform computes
#
# Every transformed feature of the sample, as the Trainer reads it.

# %%
pd.DataFrame({name: value.numpy().reshape(-1) for name, value in transformed.items()}).describe().T
