"""`aiqleads monitor snapshot`: the dashboards' panels, from Prometheus, on one static page.

No Grafana binary runs here, so the same panels (`monitoring.dashboards`) are drawn from the
same PromQL through Prometheus' ``/api/v1/query_range`` as inline SVG (`monitoring.svg`) into
``<out>/index.html``: one self-contained file, no script, no network.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import pathlib
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from aiqleads.errors import ServiceError
from monitoring import dashboards, svg

PAGE = "index.html"
POINTS = 120  # samples per series over the range
TIMEOUT_SECONDS = 10.0


def query_range(url: str, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
    """Prometheus' matrix result for ``expr``; ServiceError when Prometheus refuses or is down."""
    params = urllib.parse.urlencode(
        {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:.3f}"}
    )
    try:
        with urllib.request.urlopen(
            f"{url.rstrip('/')}/api/v1/query_range?{params}", timeout=TIMEOUT_SECONDS
        ) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")[:300]
        raise ServiceError(f"Prometheus refused {expr!r}: {e.code} {detail}") from e
    except (urllib.error.URLError, OSError) as e:
        raise ServiceError(
            f"Prometheus at {url} does not answer ({e}): is `aiqleads serve` running?"
        ) from e
    if body.get("status") != "success":
        raise ServiceError(f"Prometheus refused {expr!r}: {body.get('error')}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def legend(template: str, labels: dict[str, str]) -> str:
    """Grafana's legendFormat: ``{{label}}`` replaced by the series' label values."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)


def series_of(result: list[dict[str, Any]], template: str) -> list[svg.Series]:
    out = []
    for item in result:
        points = tuple(
            (float(t), float(v)) for t, v in item.get("values", []) if math.isfinite(float(v))
        )
        out.append(svg.Series(legend(template, item.get("metric", {})), points))
    return out


@dataclasses.dataclass(frozen=True)
class PanelData:
    dashboard: str
    title: str
    unit: str
    description: str
    series: tuple[svg.Series, ...]

    @property
    def has_data(self) -> bool:
        return any(s.points for s in self.series)


def collect(url: str, since_seconds: float, now: float | None = None) -> list[PanelData]:
    """Every panel's series over the last ``since_seconds``."""
    end = time.time() if now is None else now
    start = end - since_seconds
    step = max(since_seconds / POINTS, 1.0)
    out = []
    for dashboard, panel in dashboards.panels():
        series: list[svg.Series] = []
        for q in panel.queries:
            series += series_of(query_range(url, q.expr, start, end, step), q.legend)
        out.append(
            PanelData(dashboard.title, panel.title, panel.unit, panel.description, tuple(series))
        )
    return out


@dataclasses.dataclass(frozen=True)
class Page:
    path: pathlib.Path
    panels: int
    empty: int


STYLE = """
body { font-family: sans-serif; margin: 16px; background: #f4f5f7; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 24px; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
.panel { background: #fff; border: 1px solid #ddd; padding: 8px; width: 560px; }
.panel h3 { font-size: 13px; margin: 0 0 4px 0; } .panel p { font-size: 11px; color: #666;
margin: 0 0 6px 0; }
"""


def html_page(panels: list[PanelData], prometheus_url: str, since_seconds: float) -> str:
    generated = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<title>AIQLeads monitoring snapshot</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>AIQLeads monitoring snapshot</h1>",
        f"<p>{html.escape(generated)}; the last {since_seconds / 60:g} minutes from "
        f"{html.escape(prometheus_url)}; {sum(p.has_data for p in panels)} of "
        f"{len(panels)} panels with data.</p>",
    ]
    current = None
    for panel in panels:
        if panel.dashboard != current:
            if current is not None:
                parts.append("</div>")
            current = panel.dashboard
            parts.append(f"<h2>{html.escape(current)}</h2><div class='grid'>")
        state = "data" if panel.has_data else "empty"
        parts.append(
            f"<div class='panel' data-state='{state}'><h3>{html.escape(panel.title)}</h3>"
            f"<p>{html.escape(panel.description)}</p>{svg.plot(list(panel.series), panel.unit)}"
            "</div>"
        )
    parts.append("</div></body></html>\n")
    return "".join(parts)


def render_page(url: str, out_dir: pathlib.Path, since_seconds: float = 1800.0) -> Page:
    """Query every panel and write ``<out_dir>/index.html``."""
    panels = collect(url, since_seconds)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / PAGE
    path.write_text(html_page(panels, url, since_seconds))
    return Page(path, len(panels), sum(not p.has_data for p in panels))
