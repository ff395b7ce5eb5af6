"""The backtest report: one self-contained HTML file (inline CSS and SVG, no scripts).

Summary first (a table and the plain-words projection), details after; readable
offline and printable.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime

from .backtest import BacktestResult, Figures, projection_sentence

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em} h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.8em 0;width:100%} th,td{padding:.3em .6em;border-bottom:1px solid #e4e4e4}
th{text-align:left;background:#f4f4f4} td.n{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#555} .plot{margin:1em 0} .projection{background:#fff7e0;padding:.6em 1em;border-left:4px solid #e0a800}
@media print{body{margin:0;max-width:none} h2{page-break-after:avoid} .plot,table{page-break-inside:avoid}}
"""

COLUMNS = [("alerts", "alerts"), ("alerted_keys", "alerted keys"), ("true_positives", "true pos."),
           ("false_positives", "false pos."), ("false_negatives", "missed"), ("precision", "precision"),
           ("recall", "recall"), ("f1", "F1"), ("alerts_per_10k_keys_per_month", "alerts / 10k keys / month"),
           ("median_hours_to_alert", "median hours to alert")]


def _fmt(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape(str(value))


def _table(rows: list[Figures], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in COLUMNS)
    body = []
    for f in rows:
        cells = "".join(f'<td class="n">{_fmt(getattr(f, name))}</td>' for name, _ in COLUMNS)
        body.append(f"<tr><th>{html.escape(f.scenario)}</th>{cells}</tr>")
    return f'<table id="{table_id}"><tr><th>scenario</th>{head}</tr>{"".join(body)}</table>'


def bar_chart(title: str, labels: list[str], series: dict[str, list[float | None]], width: int = 640) -> str:
    """Grouped horizontal bars in [0, 1] (precision and recall per scenario)."""
    colors = ["#3b6fb6", "#e07b39", "#4a9a5b"]
    row_h = 14 * len(series) + 10
    height = 40 + row_h * len(labels)
    left = 170
    scale = width - left - 110
    parts = [f'<svg class="plot" role="img" aria-label="{html.escape(title)}" xmlns="http://www.w3.org/2000/svg" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
             f'<text x="0" y="16" font-size="14" font-weight="bold">{html.escape(title)}</text>']
    for i, label in enumerate(labels):
        y0 = 30 + i * row_h
        parts.append(f'<text x="{left - 6}" y="{y0 + row_h / 2 + 4}" text-anchor="end" font-size="12">'
                     f"{html.escape(label[:24])}</text>")
        for j, (name, values) in enumerate(series.items()):
            v = values[i]
            w = 0 if v is None else max(v, 0) * scale
            y = y0 + j * 14
            parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="12" fill="{colors[j % 3]}"/>')
            parts.append(f'<text x="{left + w + 4:.1f}" y="{y + 10}" font-size="11">{name} {_fmt(v)}</text>')
    parts.append(f'<line x1="{left}" y1="26" x2="{left}" y2="{height - 4}" stroke="#888"/></svg>')
    return "".join(parts)


def line_chart(title: str, xs: list[float], ys: list[float | None], x_label: str, y_label: str,
               width: int = 480, height: int = 300, labels: list[str] | None = None,
               unit_square: bool = False) -> str:
    """A line with markers; points with no y are skipped."""
    pts = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
    left, right, top, bottom = 60, 20, 30, 45
    parts = [f'<svg class="plot" role="img" aria-label="{html.escape(title)}" xmlns="http://www.w3.org/2000/svg" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
             f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">'
             f"{html.escape(title)}</text>"]
    if pts:
        x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
        y0, y1 = min(0.0, min(p[1] for p in pts)), max(p[1] for p in pts)
        if unit_square:  # precision and recall live in [0, 1]
            x0, x1, y0, y1 = 0.0, 1.0, 0.0, 1.0
        x1 = x1 if x1 > x0 else x0 + 1
        y1 = y1 if y1 > y0 else y0 + 1

        def sx(x: float) -> float:
            return left + (x - x0) / (x1 - x0) * (width - left - right)

        def sy(y: float) -> float:
            return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)

        parts.append('<polyline fill="none" stroke="#3b6fb6" stroke-width="2" points="'
                     + " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts) + '"/>')
        for k, (x, y) in enumerate(pts):
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="#3b6fb6">'
                         f"<title>{html.escape(labels[k] if labels else f'{x:g}')}: {_fmt(y)}</title></circle>")
        for frac in (0, 0.5, 1):
            yv = y0 + frac * (y1 - y0)
            xv = x0 + frac * (x1 - x0)
            parts.append(f'<text x="{left - 6}" y="{sy(yv) + 4:.1f}" text-anchor="end" font-size="11">{yv:.3g}</text>')
            parts.append(f'<text x="{sx(xv):.1f}" y="{height - bottom + 16}" text-anchor="middle" font-size="11">'
                         f"{xv:.3g}</text>")
    parts.append(f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="#888"/>')
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#888"/>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 8}" text-anchor="middle" font-size="12">'
                 f"{html.escape(x_label)}</text>")
    parts.append(f'<text x="14" y="{(top + height - bottom) / 2}" text-anchor="middle" font-size="12" '
                 f'transform="rotate(-90 14 {(top + height - bottom) / 2})">{html.escape(y_label)}</text></svg>')
    return "".join(parts)


def render(result: BacktestResult, *, title: str = "assay backtest") -> str:
    f = result.figures
    sentences = [projection_sentence(x) for x in f if x.projection]
    projection = "".join(f"<p>{html.escape(s)}</p>" for s in sentences)
    out = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
           f"<style>{CSS}</style></head><body>",
           f"<h1>{html.escape(title)}</h1>",
           f'<p class="note">purpose <b>{html.escape(result.purpose)}</b> · generated '
           f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} · {html.escape('; '.join(result.notes))}</p>",
           "<h2>Summary</h2>", _table([*f, result.overall], "summary")]
    if projection:
        out.append(f'<div class="projection" id="projection">{projection}</div>')
    out.append(bar_chart("precision and recall per scenario (per key)", [x.scenario for x in f],
                         {"precision": [x.precision for x in f], "recall": [x.recall for x in f]}))
    if result.sweep:
        sw = result.sweep
        points = sw["points"]  # type: ignore[index]
        xs = list(range(len(points)))
        names = [str(p["value"]) for p in points]
        numeric = all(isinstance(p["value"], int | float) for p in points)
        x_vals = [float(p["value"]) for p in points] if numeric else [float(x) for x in xs]
        out.append(f"<h2>Sweep of {html.escape(str(sw['scenario']))}: {html.escape(str(sw['parameter']))}</h2>")
        out.append(line_chart("precision-recall", [p["recall"] or 0.0 for p in points],
                              [p["precision"] for p in points], "recall", "precision", labels=names,
                              unit_square=True))
        out.append(line_chart("alert volume", x_vals, [float(p["alerts"]) for p in points],
                              str(sw["parameter"]), "alerts", labels=names))
        rows = "".join(f"<tr><td>{html.escape(str(p['value']))}</td>" + "".join(
            f'<td class="n">{_fmt(p[k])}</td>' for k in ("alerts", "alerted_keys", "precision", "recall", "f1"))
            + "</tr>" for p in points)
        out.append(f'<table id="sweep"><tr><th>{html.escape(str(sw["parameter"]))}</th><th>alerts</th>'
                   f"<th>alerted keys</th><th>precision</th><th>recall</th><th>F1</th></tr>{rows}</table>")
    if result.baseline:
        b = result.baseline
        out.append("<h2>Change from the baseline</h2>")
        out.append(f"<p>{b['alerts_appear']:,} alert(s) appear and {b['alerts_disappear']:,} disappear.</p>")
        rows = []
        for move in b["scenarios"]:  # type: ignore[union-attr]
            if move["status"] != "changed":
                rows.append(f"<tr><th>{html.escape(move['scenario'])}</th><td colspan=4>{move['status']}</td></tr>")
                continue
            for name, d in move["figures"].items():
                rows.append(f"<tr><th>{html.escape(move['scenario'])}</th><td>{name}</td>"
                            f'<td class="n">{_fmt(d["before"])}</td><td class="n">{_fmt(d["after"])}</td>'
                            f'<td class="n">{_fmt(d["change"])}</td></tr>')
        out.append('<table id="baseline"><tr><th>scenario</th><th>figure</th><th>before</th><th>after</th>'
                   f"<th>change</th></tr>{''.join(rows)}</table>")
    out.append('<h2>Details</h2><table id="details"><tr><th>scenario</th><th>false-positive keys '
               "(first 50)</th><th>missed positive keys (first 50)</th></tr>")
    for x in f:
        out.append(f"<tr><th>{html.escape(x.scenario)}</th>"
                   f"<td>{html.escape(', '.join(x.false_positive_keys)) or '–'}</td>"
                   f"<td>{html.escape(', '.join(x.missed_keys)) or '–'}</td></tr>")
    out.append("</table>")
    out.append("<h2>Definitions</h2><ul>"
               "<li>Figures are per key: a key is a true positive when it raised an alert and is labelled "
               "positive; missed positives are labelled positive keys without an alert.</li>"
               "<li>alerts / 10k keys / month: alerts divided by the keys seen, times 10,000, per month of "
               "data.</li><li>median hours to alert: from a true-positive key's first relevant row to its "
               "first alert.</li><li>The projection scales the measured false-alert rate per key and month; "
               "its interval is the 95% Poisson interval of the false-alert count.</li></ul>")
    out.append("</body></html>")
    return "".join(out)
