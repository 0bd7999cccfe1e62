"""The report page: sections, tables, figures and notes in one HTML file, styles inline.

Every value is escaped; tables come from pandas frames; figures are inline SVG or data-URI
PNGs (`figures`), so the file refers to nothing outside itself.
"""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Iterable, Sequence

import pandas as pd

# Classes and data attributes the page uses (and the report's test looks for).
FIGURE_CLASS = "figure"
TABLE_CLASS = "data"
SECTION_ATTR = "data-section"
PASS, FAIL, INFO = "pass", "fail", "info"

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #1d2430; background: #fafbfc; }
header { background: #1d2430; color: #fff; padding: 16px 32px; }
header h1 { margin: 0 0 4px 0; font-size: 22px; }
header p { margin: 2px 0; color: #c9d1dc; font-size: 14px; }
nav { padding: 8px 32px; background: #e9edf2; font-size: 14px; }
nav a { margin-right: 16px; color: #1d4e89; text-decoration: none; }
main { padding: 8px 32px 48px 32px; max-width: 1280px; }
section { margin-top: 28px; }
h2 { border-bottom: 2px solid #d5dbe3; padding-bottom: 4px; }
h3 { margin-top: 22px; }
p.note { color: #4a5666; font-size: 14px; max-width: 960px; }
table.data { border-collapse: collapse; font-size: 13px; margin: 8px 0 16px 0; }
table.data th, table.data td { border: 1px solid #d5dbe3; padding: 3px 8px; text-align: right; }
table.data th { background: #eef1f5; }
table.data td:first-child, table.data th:first-child { text-align: left; white-space: nowrap; }
figure.figure { display: inline-block; margin: 8px 16px 16px 0; vertical-align: top;
                background: #fff; border: 1px solid #e1e6ec; padding: 6px; }
figure.figure svg, figure.figure img { display: block; max-width: 100%; height: auto; }
figcaption { font-size: 13px; color: #4a5666; max-width: 640px; margin-top: 4px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 13px; }
.pass { background: #d9f2e0; color: #11602c; }
.fail { background: #fbdcdc; color: #8a1414; }
.info { background: #e3e9f3; color: #1d4e89; }
"""


@dataclasses.dataclass(frozen=True)
class Section:
    """One top-level section: its anchor, title and body (already HTML)."""

    anchor: str
    title: str
    body: str


def esc(value: object) -> str:
    return html.escape(str(value))


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def heading(text: str) -> str:
    return f"<h3>{esc(text)}</h3>"


def badge(text: str, kind: str) -> str:
    return f'<span class="badge {kind}">{esc(text)}</span>'


def passed_badge(passed: bool | None) -> str:
    if passed is None:
        return badge("n/a", INFO)
    return badge("passed", PASS) if passed else badge("FAILED", FAIL)


def number(value: object, digits: int = 4) -> str:
    """A readable number: integers as such, floats with ``digits`` significant figures."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:.{digits}g}"
    return str(value)


def table(frame: pd.DataFrame, caption: str | None = None, raw_columns: Sequence[str] = ()) -> str:
    """``frame`` as a table; cells of ``raw_columns`` are HTML already (badges), the rest are
    escaped and numbers formatted."""
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False, name=None):
        cells = []
        for column, value in zip(frame.columns, record, strict=True):
            text = str(value) if column in raw_columns else esc(number(value))
            cells.append(f"<td>{text}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (
        f'<table class="{TABLE_CLASS}">{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def figure(content: str, caption: str, name: str) -> str:
    """A figure (an ``<svg>`` or ``<img>`` element) with its caption; ``name`` identifies it."""
    return (
        f'<figure class="{FIGURE_CLASS}" data-figure="{esc(name)}">{content}'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def page(title: str, subtitle_lines: Iterable[str], sections: Sequence[Section]) -> str:
    """The whole document."""
    subtitle = "".join(f"<p>{esc(line)}</p>" for line in subtitle_lines)
    links = "".join(f'<a href="#{esc(s.anchor)}">{esc(s.title)}</a>' for s in sections)
    body = "".join(
        f'<section id="{esc(s.anchor)}" {SECTION_ATTR}="{esc(s.anchor)}">'
        f"<h2>{esc(s.title)}</h2>{s.body}</section>"
        for s in sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>{esc(title)}</h1>{subtitle}</header><nav>{links}</nav>"
        f"<main>{body}</main></body></html>\n"
    )
