"""The report as one static HTML page (``pneumobench report --html DIR``): the verdict table,
Table 6 side by side, the figures, and per configuration the history across code versions.

The page is one self-contained file, ``DIR/index.html``: figures are embedded as PNG data URIs
and each history plot is inline SVG, so it opens offline, from a CI artifact, or attached to an
issue. The numbers behind each plot are a table under it. A small script marks the page when it
has loaded (``data-images="loaded/total"`` on ``<body>``), which the browser test reads.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from pneumobench.core.atomic import write_text_atomic
from pneumobench.reporting.sections import format_measured

__all__ = ["HISTORY_FLAGS", "history_svg", "page", "write_html"]

HISTORY_FLAGS = ("REGRESSED", "CHANGED")  # a version judged so is marked on its plot
VERDICT_CLASSES = {
    "REPRODUCED": "pass",
    "NO REGRESSION": "pass",
    "CONTRADICTED": "fail",
    "REGRESSED": "fail",
    "CHANGED": "fail",
}
CLAIM_COLUMNS = (
    "claim",
    "source",
    "paper",
    "reference",
    "target",
    "measured",
    "CI (1-2 alpha)",
    "p",
    "alpha",
    "seeds",
    "flags",
    "verdict",
)
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; }
th { background: #f0f0f0; }
tr.pass td.verdict { background: #d8f0d8; }
tr.fail td.verdict { background: #f6d0d0; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
.history { display: inline-block; vertical-align: top; margin: 0 2em 2em 0; }
.note { color: #555; }
"""
LOADED_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images", loaded + "/" + images.length);
});
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    table_id: str,
    row_attrs: Callable[[dict[str, Any]], str] | None = None,
) -> str:
    """An HTML table of ``rows`` (``columns`` in order); ``row_attrs(row)``: attributes of each <tr>."""
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for row in rows:
        attrs = row_attrs(row) if row_attrs else ""
        cells = "".join(f'<td class="{_e(c.replace(" ", "-"))}">{_e(row.get(c, ""))}</td>' for c in columns)
        body.append(f"<tr{attrs}>{cells}</tr>")
    return f'<table id="{_e(table_id)}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _claims_section(data: dict[str, Any]) -> str:
    """One row per judged claim, its verdict as ``report.json`` holds it (``data-claim``,
    ``data-verdict``), the columns of the terminal's verdict table."""
    table_rows = data.get("claims_table", [])

    def attrs(row: dict[str, Any]) -> str:
        verdict = row.get("verdict", "")
        return (
            f' data-claim="{_e(row["claim"])}" data-verdict="{_e(verdict)}" '
            f'class="{VERDICT_CLASSES.get(verdict, "open")}"'
        )

    counts: dict[str, int] = {}
    for row in table_rows:
        counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
    summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) or "none"
    return f"<h2>Verdicts</h2><p>{len(table_rows)} claims: {_e(summary)}.</p>" + _table(
        table_rows, CLAIM_COLUMNS, "verdicts", attrs
    )


def _table6_section(data: dict[str, Any]) -> str:
    rows = []
    for row in data.get("table6", []):
        entry = {"configuration": row["configuration"], "seeds": len(row["seeds"])}
        for metric in ("dice", "accuracy"):
            measured = row[metric]
            paper = measured.get("paper")
            entry[f"paper {metric}"] = "" if paper is None else f"{paper:.3f}"
            entry[f"{metric} mean [95% CI]"] = format_measured(measured)
            entry[f"{metric} verdict"] = measured.get("verdict", "")
        entry["flags"] = "; ".join([*row.get("degenerate", []), *row.get("unstable", [])])
        rows.append(entry)
    columns = [
        "configuration",
        "seeds",
        "paper dice",
        "dice mean [95% CI]",
        "dice verdict",
        "paper accuracy",
        "accuracy mean [95% CI]",
        "accuracy verdict",
        "flags",
    ]
    return "<h2>Table 6, side by side</h2>" + _table(rows, columns, "table6")


def _figures_section(data: dict[str, Any], report_dir: Path) -> str:
    """Each figure of the report, embedded (a missing file is said, never silently left out)."""
    parts = ["<h2>Figures</h2>"]
    for name, figure in data.get("figures", {}).items():
        path = report_dir / figure["path"]
        if not path.is_file():
            parts.append(f'<p class="note">figure {_e(name)}: {_e(path)} is missing</p>')
            continue
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(
            f'<figure id="figure-{_e(name)}"><img alt="{_e(figure["caption"])}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{_e(figure['caption'])}</figcaption></figure>"
        )
    return "".join(parts)


def history_svg(
    rows: Sequence[dict[str, Any]], band: tuple[float, float, float] | None, width: int = 420, height: int = 220
) -> str:
    """One configuration and metric over its code versions: mean and 95% interval per version,
    the recorded baseline's mean and margin as a band, and each version judged REGRESSED or
    CHANGED (against the previous version or the baseline) marked in red."""
    values = [v for r in rows for v in (r["mean"], r["ci_low"], r["ci_high"]) if math.isfinite(v)]
    if band is not None:
        values += list(band)
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    pad = (high - low) * 0.1 or 0.01
    low, high = low - pad, high + pad
    left, right, top, bottom = 50, 10, 10, 30

    def x(index: int) -> float:
        return left + (index + 0.5) * (width - left - right) / max(len(rows), 1)

    def y(value: float) -> float:
        return top + (high - value) / (high - low) * (height - top - bottom)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    parts.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>')
    if band is not None:
        band_low, band_mid, band_high = band
        parts.append(
            f'<rect class="baseline-band" x="{left}" y="{y(band_high):.1f}" width="{width - left - right}" '
            f'height="{y(band_low) - y(band_high):.1f}" fill="#cfe3f7"/>'
        )
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(band_mid):.1f}" y2="{y(band_mid):.1f}" stroke="#4a90d9"/>'
        )
    for tick in (low + pad, (low + high) / 2, high - pad):
        parts.append(f'<text x="{left - 4}" y="{y(tick) + 4:.1f}" font-size="10" text-anchor="end">{tick:.3f}</text>')
    for index, row in enumerate(rows):
        flagged = row.get("vs_previous") in HISTORY_FLAGS or row.get("vs_baseline") in HISTORY_FLAGS
        colour = "#d62728" if flagged else "#222"
        cx = x(index)
        if math.isfinite(row["ci_low"]) and math.isfinite(row["ci_high"]):
            parts.append(
                f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(row["ci_low"]):.1f}" y2="{y(row["ci_high"]):.1f}" '
                f'stroke="{colour}"/>'
            )
        parts.append(
            f'<circle class="{"regressed" if flagged else "version"}" cx="{cx:.1f}" cy="{y(row["mean"]):.1f}" '
            f'r="4" fill="{colour}"/>'
        )
        parts.append(
            f'<text x="{cx:.1f}" y="{height - 12}" font-size="10" text-anchor="middle">'
            f"{_e(row['commits'][:7] or row['version'])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


HISTORY_COLUMNS = (
    "version",
    "commits",
    "first_finished",
    "seeds",
    "mean",
    "ci_low",
    "ci_high",
    "baseline_mean",
    "vs_previous",
    "vs_baseline",
)


def _band(rows: Sequence[dict[str, Any]]) -> tuple[float, float, float] | None:
    """The recorded baseline's mean and margin of the newest version judged against it."""
    for row in reversed(rows):
        mean, margin = row.get("baseline_mean", math.nan), row.get("margin", math.nan)
        if math.isfinite(mean) and math.isfinite(margin):
            return mean - margin, mean, mean + margin
    return None


def _history_section(history: Sequence[dict[str, Any]], problem: str | None) -> str:
    parts = ["<h2>History across code versions</h2>"]
    if problem:
        return parts[0] + f'<p class="note">{_e(problem)}</p>'
    parts.append(
        '<p class="note">Per configuration and metric: each code version\'s mean and 95% interval over seeds, '
        "the recorded baseline's mean and regression margin as the blue band; red: a version judged REGRESSED "
        "or CHANGED against the previous version or the baseline, by the regression suite's rule.</p>"
    )
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in history:
        grouped.setdefault((row["config"], row["metric"]), []).append(row)
    for (config, metric), rows in grouped.items():
        numbers = [
            {
                **row,
                **{
                    k: f"{row[k]:.4f}" if math.isfinite(row[k]) else ""
                    for k in ("mean", "ci_low", "ci_high", "baseline_mean")
                },
            }
            for row in rows
        ]
        parts.append(
            f'<div class="history" data-config="{_e(config)}" data-metric="{_e(metric)}">'
            f"<h3>{_e(config)}: {_e(metric)}</h3>{history_svg(rows, _band(rows))}"
            + _table(numbers, HISTORY_COLUMNS, f"history-{config}-{metric}")
            + "</div>"
        )
    return "".join(parts)


def page(
    data: dict[str, Any],
    report_dir: Path,
    history: Sequence[dict[str, Any]] = (),
    history_problem: str | None = None,
) -> str:
    """The whole page as text (``write_html`` writes it)."""
    title = f"pneumobench report: profile {data.get('profile')}"
    notes = "".join(f"<li>{_e(note)}</li>" for note in data.get("notes", []))
    header = (
        f"<h1>{_e(title)}</h1><p>{_e(data.get('runs', 0))} runs of {len(data.get('configurations', []))} "
        f"configurations; dataset {_e(data.get('dataset_fingerprint'))}; device {_e(data.get('device_kind'))}; "
        f"code {_e(data.get('source_fingerprint'))}.</p>" + (f"<ul class='note'>{notes}</ul>" if notes else "")
    )
    body = (
        header
        + _claims_section(data)
        + _table6_section(data)
        + _figures_section(data, report_dir)
        + _history_section(history, history_problem)
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{STYLE}</style></head><body>{body}<script>{LOADED_SCRIPT}</script></body></html>"
    )


def write_html(
    report_dir: str | Path,
    out_dir: str | Path,
    history: Iterable[dict[str, Any]] = (),
    history_problem: str | None = None,
) -> Path:
    """Write ``out_dir/index.html`` from the report in ``report_dir`` (its ``report.json`` and
    figures) and the store's ``history`` rows (``reporting.history.history_rows``)."""
    report_dir = Path(report_dir)
    data = json.loads((report_dir / "report.json").read_text())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "index.html"
    write_text_atomic(path, page(data, report_dir, list(history), history_problem))
    return path
