"""Shared pieces of the static HTML pages (ranking pages, run index, site index).

Every page is one self-contained HTML5 file: inline CSS and inline SVG, no JavaScript, no
external assets, so it opens from ``file://`` and from ``python3 -m http.server`` alike.
All text that comes from data (captions, ids, config values, titles) goes through :func:`esc`.
"""
from __future__ import annotations

import html
from urllib.parse import quote

from utils.metric_names import GMEAN_KEY

METRIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("R1", "R1"),
    ("R5", "R5"),
    ("R10", "R10"),
    ("R50", "R50"),
    ("MedR", "MedR"),
    ("MeanR", "MeanR"),
    (GMEAN_KEY, "Geometric mean (R1, R5, R10)"),
)
"""(metric key, column label) pairs of the metrics table, in display order."""

METRIC_ROWS: tuple[tuple[str, str], ...] = (
    ("t2v_metrics", "Text → Video"),
    ("v2t_metrics", "Video → Text"),
)
"""(metrics dict key, row label) pairs of the metrics table, in display order."""

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: 0.3em; }
h2 { font-size: 1.1em; margin: 0 0 0.4em 0; color: #555; }
h3 { font-size: 1.05em; margin: 1.4em 0 0.4em 0; }
nav { margin: 0.4em 0 1em 0; }
nav a { margin-right: 1.2em; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #666; font-size: 0.9em; }
section.query { border: 1px solid #ddd; border-radius: 6px; padding: 0.8em 1em; margin: 1.2em 0; }
p.caption { font-size: 1.15em; margin: 0.2em 0 0.5em 0; }
.vid { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
tr.gt td { background: #e3f6e3; font-weight: bold; }
td.hit { color: #1a7f1a; font-weight: bold; text-align: center; }
.gt-tag { color: #1a7f1a; }
.miss { color: #b00020; }
li.this { font-weight: bold; }
td.off { color: #b00020; }
.bar { display: inline-block; height: 0.7em; background: #4c78a8; vertical-align: middle; margin-right: 0.3em; }
video { display: block; max-width: 16em; margin: 0.3em 0; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
figure.plot { margin: 0; border: 1px solid #ddd; border-radius: 6px; padding: 0.4em; }
figure.plot figcaption { font-size: 0.85em; color: #555; max-width: 32em; }
div.wide { overflow-x: auto; }
table.evaluations, table.runs { font-size: 0.85em; }
dl.config { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dl.config dt { font-weight: bold; }
dl.config dd { margin: 0; }
"""


def esc(text: object) -> str:
    """HTML-escape ``str(text)`` (``&``, ``<``, ``>`` and both quote characters)."""
    return html.escape(str(text), quote=True)


def href(path: str) -> str:
    """A relative URL for the ``/``-separated ``path``, percent-encoded and HTML-escaped."""
    return esc(quote(path))


def document(title: str, body: list[str]) -> str:
    """A complete HTML5 page with the shared style; ``body`` lines are inserted as they are."""
    head = ["<!DOCTYPE html>", "<html lang=\"en\">", "<head>", "<meta charset=\"utf-8\">",
            f"<title>{esc(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>"]
    return "\n".join([*head, *body, "</body>", "</html>", ""])


def fmt(value: float | None, digits: int = 2) -> str:
    """A number with ``digits`` decimals, or an en dash for a missing value."""
    return "–" if value is None else f"{float(value):.{digits}f}"


def metrics_table(metrics: dict[str, dict[str, float]]) -> list[str]:
    """HTML lines of the t2v / v2t metrics table; absent values are shown as an en dash."""
    lines = ["<table class=\"metrics\">", "<thead><tr><th>Direction</th>"]
    lines += [f"<th>{esc(label)}</th>" for _, label in METRIC_COLUMNS]
    lines += ["</tr></thead>", "<tbody>"]
    for key, row_label in METRIC_ROWS:
        values = metrics.get(key, {})
        cells = "".join(f"<td class=\"num\">{fmt(values.get(metric))}</td>" for metric, _ in METRIC_COLUMNS)
        lines.append(f"<tr><th>{esc(row_label)}</th>{cells}</tr>")
    lines += ["</tbody>", "</table>"]
    return lines + _other_metrics_tables(metrics)


def _other_metrics_tables(metrics: dict[str, dict[str, float]]) -> list[str]:
    """HTML lines of one table per metrics dict not in ``METRIC_ROWS`` (e.g. the nDCG and mAP
    of ``relevance_metrics``): its keys as columns, values with four decimals."""
    lines = []
    retrieval = {name for name, _ in METRIC_ROWS}
    for name, values in metrics.items():
        if name in retrieval or not values:
            continue
        lines.append(f"<table class=\"metrics\"><caption>{esc(name)}</caption>")
        lines.append("<thead><tr>" + "".join(f"<th>{esc(k)}</th>" for k in values) + "</tr></thead>")
        lines.append("<tbody><tr>" + "".join(f"<td class=\"num\">{fmt(v, 4)}</td>" for v in values.values())
                     + "</tr></tbody>")
        lines.append("</table>")
    return lines


def caption_list(captions: list[str], current: int | None, summary: str) -> list[str]:
    """A collapsible numbered list of ``captions``; the one at index ``current`` is in bold."""
    items = []
    for k, caption in enumerate(captions):
        item_class = " class=\"this\"" if k == current else ""
        items.append(f"<li{item_class}>{esc(caption)}</li>")
    return ["<details class=\"captions\">", f"<summary>{esc(summary)}</summary>", "<ol>", *items,
            "</ol>", "</details>"]
