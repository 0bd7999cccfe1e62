"""Matplotlib figures as self-contained HTML: inline SVG, or a base64 PNG for dense scatters.

The Agg backend is selected when a figure is made (never at import), so nothing needs a
display, and nothing in the output refers to a file or a network address.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

BACKEND = "Agg"
DPI = 100
PNG_DPI = 110
_SVG_START = re.compile(r"<svg\b")
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.DOTALL)
_SVG_IDS = re.compile(r'\b(id|href|clip-path|xlink:href)="(#?)([^"#][^"]*)"|url\(#([^)]*)\)')


def new_grid(rows: int, cols: int, width: float, height: float) -> tuple[Figure, list[list[Axes]]]:
    """A figure with a ``rows`` x ``cols`` grid of axes (constrained layout, Agg backend)."""
    import matplotlib

    matplotlib.use(BACKEND, force=True)
    from matplotlib import pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"  # text as <text>, set in the page's own fonts
    fig, axes = plt.subplots(
        rows, cols, figsize=(width, height), dpi=DPI, squeeze=False, layout="constrained"
    )
    return fig, [list(row) for row in axes]


def new_figure(
    width: float = 6.4, height: float = 3.6, ncols: int = 1
) -> tuple[Figure, list[Axes]]:
    """A figure with ``ncols`` axes side by side."""
    fig, grid = new_grid(1, ncols, width, height)
    return fig, grid[0]


def _close(fig: Figure) -> None:
    from matplotlib import pyplot as plt

    plt.close(fig)


def _unique_ids(svg: str, prefix: str) -> str:
    """Prefix the SVG's element ids (and the references to them) so that several inline
    figures in one page never share an id: matplotlib names clip paths alike in every
    figure, and a browser would clip one figure with another's path."""

    def rename(match: re.Match[str]) -> str:
        if match.group(4) is not None:
            return f"url(#{prefix}{match.group(4)})"
        attr, hash_, name = match.group(1), match.group(2), match.group(3)
        if attr == "id":
            return f'id="{prefix}{name}"'
        return f'{attr}="{hash_}{prefix}{name}"' if hash_ else match.group(0)

    return _SVG_IDS.sub(rename, svg)


def to_svg(fig: Figure) -> str:
    """The figure as an inline ``<svg>`` element (no XML prolog, no DOCTYPE)."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    _close(fig)
    text = buffer.getvalue()
    match = _SVG_START.search(text)
    svg = _METADATA.sub("", text[match.start() :] if match else text)
    return _unique_ids(svg, f"f{hashlib.sha1(svg.encode()).hexdigest()[:10]}-")


def to_png_img(fig: Figure, alt: str) -> str:
    """The figure as an ``<img>`` with a base64 PNG data URI (for plots of many points)."""
    import html

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=PNG_DPI)
    _close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
