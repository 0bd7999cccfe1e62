"""The report's geography: the leads on map-like panels, coloured by the geospatial features
the run's Transform graph computes for them, and where the newest span's engagement moved.

The features come from the run's own Transform output: one example per lead goes through
the graph (`tft.TFTransformOutput.transform_features_layer`), the very function the model
serves with, and its hotspot distance and cell density are read back (both are log1p in the
graph; shown here in km and leads). Leads are grouped into areas (metros) by location, one
panel each, so that a world of several cities stays readable.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_transform as tft
from numpy.typing import NDArray

from components.drift_check import drift
from pipeline.report import figures
from pipeline.report import html as h
from transforms import features as f

HOTSPOT_KM = "hotspot distance (km)"
DENSITY = "leads in the fine cell"
# What the model sees (the graph's values), the colour scales of the map.
HOTSPOT_LOG = "log1p hotspot distance (km)"
DENSITY_LOG = "log1p leads in the fine cell"
AREA_RADIUS_DEG = 1.5  # leads within this many degrees of an area's seed share its panel
MAX_AREAS = 6
TOP_REGIONS = 15


@dataclasses.dataclass(frozen=True)
class LeadFeatures:
    """One row per lead: location, region, and the Transform graph's geo features."""

    frame: pd.DataFrame


def lead_features(
    transform_graph_uri: str, frame: pd.DataFrame, records: list[bytes]
) -> LeadFeatures:
    """Run one example per lead (its first in ``frame``) through the Transform graph."""
    first = frame.drop_duplicates(f.LEAD_ID).index.to_numpy()
    output = tft.TFTransformOutput(transform_graph_uri)  # type: ignore[attr-defined]
    raw = tf.io.parse_example(tf.constant([records[i] for i in first]), output.raw_feature_spec())
    transformed = output.transform_features_layer()(raw)
    leads = frame.loc[first, [f.LEAD_ID, f.REGION, f.LEAD_LATITUDE, f.LEAD_LONGITUDE]].copy()
    leads[HOTSPOT_LOG] = transformed[f.T_HOTSPOT_DISTANCE].numpy().reshape(-1)
    leads[DENSITY_LOG] = transformed[f.T_CELL_DENSITY].numpy().reshape(-1)
    leads[HOTSPOT_KM] = np.expm1(leads[HOTSPOT_LOG])
    leads[DENSITY] = np.expm1(leads[DENSITY_LOG])
    return LeadFeatures(leads.reset_index(drop=True))


def areas(lat: NDArray[np.float64], lon: NDArray[np.float64]) -> NDArray[np.intp]:
    """An area index per point: seeds are the busiest 1-degree cells, each point joins the
    nearest seed within ``AREA_RADIUS_DEG`` (else the nearest seed); at most ``MAX_AREAS``."""
    cells = pd.Series(list(zip(np.round(lat), np.round(lon), strict=True))).value_counts()
    seeds: list[tuple[float, float]] = []
    for lat0, lon0 in cells.index:
        if len(seeds) >= MAX_AREAS:
            break
        if all(np.hypot(lat0 - a, lon0 - b) > 2 * AREA_RADIUS_DEG for a, b in seeds):
            seeds.append((float(lat0), float(lon0)))
    centres = np.array(seeds) if seeds else np.zeros((1, 2))
    distance = np.hypot(lat[:, None] - centres[:, 0], lon[:, None] - centres[:, 1])
    return np.asarray(distance.argmin(axis=1), dtype=np.intp)


def _area_names(leads: pd.DataFrame, index: NDArray[np.intp]) -> list[str]:
    """Each area's most common region name, without its numeric suffix when it has one."""
    names = []
    for i in range(index.max() + 1):
        regions = leads[f.REGION][index == i]
        top = str(regions.mode().iloc[0]) if len(regions) else f"area {i + 1}"
        names.append(top.rsplit("-", 1)[0] if top[-1:].isdigit() and "-" in top else top)
    return names


def features_figure(leads: LeadFeatures) -> str:
    """Per area, the leads coloured by hotspot distance (top row) and cell density."""
    frame = leads.frame
    lat, lon = frame[f.LEAD_LATITUDE].to_numpy(), frame[f.LEAD_LONGITUDE].to_numpy()
    index = areas(lat, lon)
    names = _area_names(frame, index)
    fig, grid = figures.new_grid(2, len(names), 3.4 * len(names) + 1.0, 6.4)
    for row, (column, cmap) in enumerate(((HOTSPOT_LOG, "viridis_r"), (DENSITY_LOG, "magma_r"))):
        values = frame[column].to_numpy()
        for i, name in enumerate(names):
            ax = grid[row][i]
            mask = index == i
            points = ax.scatter(
                lon[mask],
                lat[mask],
                c=values[mask],
                cmap=cmap,
                s=14,
                vmin=np.nanmin(values),
                vmax=np.nanmax(values),
            )
            ax.set_title(f"{name}: {column}", fontsize=8)
            ax.tick_params(labelsize=6)
            ax.set_aspect(1.0 / max(np.cos(np.radians(np.nanmean(lat[mask]))), 0.1))
        fig.colorbar(points, ax=grid[row], shrink=0.85, label=column)
    return figures.to_png_img(fig, "leads coloured by hotspot distance and cell density")


def drift_map_figure(
    pair_current: pd.DataFrame, pair_before: pd.DataFrame, labels: tuple[str, str]
) -> str:
    """Per area, the engaged leads of the newest span and of the span before it."""
    both = pd.concat([pair_current, pair_before], ignore_index=True)
    lat, lon = both[f.LEAD_LATITUDE].to_numpy(float), both[f.LEAD_LONGITUDE].to_numpy(float)
    index = areas(lat, lon)
    names = _area_names(both, index)
    newest = np.arange(len(both)) < len(pair_current)
    fig, grid = figures.new_grid(1, len(names), 3.4 * len(names), 3.4)
    for i, name in enumerate(names):
        ax = grid[0][i]
        for mask, label, color in ((~newest, labels[1], "#2e86ab"), (newest, labels[0], "#d1495b")):
            pick = mask & (index == i)
            ax.scatter(lon[pick], lat[pick], s=10, alpha=0.45, color=color, label=label)
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=6)
        ax.set_aspect(1.0 / max(np.cos(np.radians(np.nanmean(lat[index == i]))), 0.1))
    grid[0][0].legend(fontsize=7)
    return figures.to_png_img(fig, "engaged leads on the newest span and the span before")


def region_shift(current: pd.DataFrame, before: pd.DataFrame) -> pd.DataFrame:
    """Each region's share of the positives on both spans and the change (the L-infinity
    distance the drift check measures on ``region`` is the largest absolute change)."""
    now = current[f.REGION].value_counts(normalize=True)
    then = before[f.REGION].value_counts(normalize=True)
    table = pd.DataFrame({"newest share": now, "previous share": then}).fillna(0.0)
    table["change"] = table["newest share"] - table["previous share"]
    table = table.reindex(table["change"].abs().sort_values(ascending=False).index)
    return table.rename_axis(f.REGION).reset_index()


def region_shift_figure(shift: pd.DataFrame, limit: float | None) -> str:
    top = shift.head(TOP_REGIONS).iloc[::-1]
    fig, (ax,) = figures.new_figure(6.5, 0.3 * len(top) + 1.4)
    colors = ["#d1495b" if c > 0 else "#2e86ab" for c in top["change"]]
    ax.barh(top[f.REGION], top["change"], color=colors)
    if limit is not None:
        for x in (limit, -limit):
            ax.axvline(x, color="#1d2430", linestyle="--", linewidth=1)
    ax.set_xlabel("change in the share of engaged examples (newest - previous)")
    ax.tick_params(labelsize=7)
    return figures.to_svg(fig)


def render(
    leads: LeadFeatures | None,
    current: pd.DataFrame | None,
    before: pd.DataFrame | None,
    labels: tuple[str, str],
    report: drift.DriftReport | None,
) -> str:
    parts = [h.heading("Geospatial features of the leads (the run's Transform graph)")]
    if leads is None:
        parts.append(h.note("Transform did not run in this run: no geospatial features."))
    else:
        parts.append(
            h.figure(
                features_figure(leads),
                "Each lead at its location, coloured by the distance to the nearest demand "
                "hotspot of its region and by the number of distinct leads in its fine cell, "
                "as the Transform graph computes them.",
                "geo-features",
            )
        )
        summary = leads.frame[[HOTSPOT_KM, DENSITY]].describe().T.reset_index()
        parts.append(h.table(summary.rename(columns={"index": "feature"})))
    parts.append(h.heading("Where the drift is"))
    if current is None or before is None or before.empty:
        parts.append(h.note("No previous span in the window: nothing to compare."))
        return "".join(parts)
    parts.append(
        h.figure(
            drift_map_figure(current, before, labels),
            f"Engaged leads on {labels[0]} (red) and {labels[1]} (blue).",
            "drift-map",
        )
    )
    shift = region_shift(current, before)
    limit = None
    if report is not None:
        limit = next((m.threshold for m in report.measurements if m.feature == f.REGION), None)
        worst = [m for m in report.measurements if m.measure == drift.MEDIAN_SHIFT]
        for m in worst:
            parts.append(
                h.note(
                    f"Regional market median price: the largest move is {m.feature}, "
                    f"score {m.value:.3f} against the limit {m.threshold:.3f}."
                )
            )
    parts.append(
        h.figure(
            region_shift_figure(shift, limit),
            "Regions whose share of the engaged examples moved most between the two days; "
            "dashed: the drift check's limit on region (L-infinity).",
            "region-shift",
        )
    )
    parts.append(h.table(shift.head(TOP_REGIONS)))
    return "".join(parts)
