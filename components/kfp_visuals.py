"""Artifacts the Kubeflow Pipelines UI shows on a run's page, and writers for them.

KFP v2's UI renders three system artifact types by their schema title: ``system.HTML`` and
``system.Markdown`` (the file at the artifact's URI, shown in the run's visualization tab)
and ``system.Metrics`` (the artifact's scalar metadata, shown as a table; also compared
across runs). TFX's Kubeflow V2 compiler writes a custom artifact type's ``TYPE_NAME`` as
its schema title, so artifact classes with those names are what a TFX component emits for
the UI. They are value artifacts: the URI is the file itself, as KFP expects (other TFX
artifacts are folders). Locally they are ordinary MLMD artifacts beside the run's others.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence

from tfx.types import artifact, value_artifact


class _Text(value_artifact.ValueArtifact):
    def encode(self, value: str) -> bytes:
        return value.encode("utf-8")

    def decode(self, serialized_value: bytes) -> str:
        return serialized_value.decode("utf-8")


class HtmlVisualization(_Text):
    """An HTML page the KFP UI shows (``system.HTML``)."""

    TYPE_NAME = "system.HTML"


class MarkdownVisualization(_Text):
    """A Markdown text the KFP UI shows (``system.Markdown``)."""

    TYPE_NAME = "system.Markdown"


class ScalarMetrics(_Text):
    """Scalar metrics the KFP UI tabulates (``system.Metrics``): float custom properties;
    the file holds the same as ``name value`` lines."""

    TYPE_NAME = "system.Metrics"


def write_metrics(target: artifact.Artifact, metrics: Mapping[str, float]) -> None:
    """Each finite metric as a float custom property, and all of them as the file."""
    kept = {name: float(v) for name, v in metrics.items() if v is not None and math.isfinite(v)}
    for name, value in kept.items():
        target.set_float_custom_property(name, value)
    target.value = "".join(f"{name} {value:.6g}\n" for name, value in sorted(kept.items()))


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table (``|`` in cells escaped)."""

    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |"]
    lines.append("|" + "---|" * len(headers))
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def html_page(title: str, body: str) -> str:
    """A self-contained page (no external reference) around ``body``."""
    style = (
        "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
        "td:first-child,th:first-child{text-align:left}.fail{color:#b00020;font-weight:bold}"
        ".pass{color:#1b7f3b;font-weight:bold}"
    )
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body>{body}</body></html>\n"
    )


def html_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
