"""The SVG pictures: a simulation's charts, its self-contained HTML report, and the
review dashboard's evidence windows.

The same ``Track`` the terminal chart of ``charts.py`` draws, drawn with polylines.
The HTML embeds the SVG inline and carries its own CSS: no scripts, fonts or other
external assets.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from feedbackctl.charts import Panel, Track, _fmt, _range, _rose, _when

THRESHOLD_COLOR = {"increase": "#d62728", "decrease": "#1f77b4", "guardrail": "#9467bd"}
STATUS_COLOR = {"blocked": "#d62728", "proposed": "#e6a700", "gated": "#c7c7c7"}

SVG_WIDTH = 960
PLOT_LEFT, PLOT_RIGHT = 64, 16
PANEL_HEIGHT = 130
VALUE_HEIGHT = 90
STRIP_HEIGHT = 18
TITLE = 18  # room above each panel for its title


def _x(i: int, n: int) -> float:
    return PLOT_LEFT + (SVG_WIDTH - PLOT_LEFT - PLOT_RIGHT) * (i / max(1, n - 1))


def _path(values: Sequence[float | None], n: int, y: Any, step: bool = False) -> str:
    parts: list[str] = []
    pen = False
    prev_y = 0.0
    for i, v in enumerate(values):
        if v is None:
            pen = False
            continue
        x, yy = _x(i, n), y(v)
        if pen and step:
            parts.append(f"L{x:.1f},{prev_y:.1f}")
        parts.append(f"{'L' if pen else 'M'}{x:.1f},{yy:.1f}")
        pen, prev_y = True, yy
    return " ".join(parts)


def _panel_svg(panel: Panel, n: int, top: float, height: float) -> list[str]:
    lo, hi = _range(panel.values, [v for th in panel.thresholds for v in th.values])

    def y(v: float) -> float:
        return top + height - (v - lo) / (hi - lo) * height

    title = html.escape(f"{panel.metric} ({panel.unit})" if panel.unit else panel.metric)
    out = [
        f'<rect x="{PLOT_LEFT}" y="{top}" width="{SVG_WIDTH - PLOT_LEFT - PLOT_RIGHT}" height="{height}" '
        'class="frame"/>',
        f'<text x="{PLOT_LEFT}" y="{top - 4}" class="title">{title}</text>',
        f'<text x="{PLOT_LEFT - 6}" y="{top + 10}" class="axis" text-anchor="end">{_fmt(hi)}</text>',
        f'<text x="{PLOT_LEFT - 6}" y="{top + height}" class="axis" text-anchor="end">{_fmt(lo)}</text>',
        f'<path d="{_path(panel.values, n, y)}" class="metric"/>',
    ]
    for th in panel.thresholds:
        color = THRESHOLD_COLOR.get(th.kind, "#d62728")
        label = html.escape(f"{th.kind} · {th.name}")
        out.append(
            f'<path d="{_path(th.values, n, y, step=True)}" class="threshold" stroke="{color}">'
            f"<title>{label}</title></path>"
        )
        last = next((v for v in reversed(th.values) if v is not None), None)
        if last is not None and lo <= last <= hi:
            out.append(
                f'<text x="{SVG_WIDTH - PLOT_RIGHT - 4}" y="{y(last) - 3:.1f}" class="label" '
                f'text-anchor="end" fill="{color}">{label} {_fmt(last)}</text>'
            )
    return out


def svg_chart(track: Track) -> str:
    """One inline SVG: metric panels, the tuned value (step line) and a strip of decisions."""
    n = len(track.times)
    height = TITLE + len(track.panels) * (PANEL_HEIGHT + TITLE) + VALUE_HEIGHT + STRIP_HEIGHT + 36
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{SVG_WIDTH}" height="{height}" '
        f'viewBox="0 0 {SVG_WIDTH} {height}" role="img" '
        f'aria-label="{html.escape(track.claim)} spec.{html.escape(track.field)}">'
    ]
    top = float(TITLE)
    for panel in track.panels:
        out += _panel_svg(panel, n, top, PANEL_HEIGHT)
        top += PANEL_HEIGHT + TITLE
    lo = min(track.values) if track.values else 0.0
    hi = max(track.values) if track.values else 1.0
    if track.bounds:
        lo, hi = min(lo, track.bounds[0]), max(hi, track.bounds[1])
    if hi <= lo:
        hi = lo + 1
    pad = (hi - lo) * 0.08
    lo, hi = lo - pad, hi + pad

    def y(v: float) -> float:
        return top + VALUE_HEIGHT - (v - lo) / (hi - lo) * VALUE_HEIGHT

    plot_w = SVG_WIDTH - PLOT_LEFT - PLOT_RIGHT
    value_title = html.escape(f"spec.{track.field} ({track.unit})" if track.unit else f"spec.{track.field}")
    out += [
        f'<rect x="{PLOT_LEFT}" y="{top}" width="{plot_w}" height="{VALUE_HEIGHT}" class="frame"/>',
        f'<text x="{PLOT_LEFT}" y="{top - 4}" class="title">{value_title}</text>',
        f'<text x="{PLOT_LEFT - 6}" y="{y(hi - pad) + 4:.1f}" class="axis" text-anchor="end">'
        f"{_fmt(hi - pad)}</text>",
        f'<text x="{PLOT_LEFT - 6}" y="{y(lo + pad) + 4:.1f}" class="axis" text-anchor="end">'
        f"{_fmt(lo + pad)}</text>",
    ]
    if track.bounds:
        for b in track.bounds:
            out.append(
                f'<line x1="{PLOT_LEFT}" x2="{SVG_WIDTH - PLOT_RIGHT}" y1="{y(b):.1f}" y2="{y(b):.1f}" '
                f'class="bound"><title>human bound {_fmt(b)}</title></line>'
            )
    out.append(f'<path d="{_path(track.values, n, y, step=True)}" class="value"/>')
    strip = top + VALUE_HEIGHT + 4
    i = 0
    while i < n:
        s = track.status[i]
        j = i
        while j + 1 < n and track.status[j + 1] == s:
            j += 1
        if s in STATUS_COLOR:
            x0, x1 = _x(i, n), max(_x(j, n), _x(i, n) + 1.5)
            tip = html.escape(f"{s}: {_when(track.times[i])} – {_when(track.times[j])}")
            out.append(
                f'<rect x="{x0:.1f}" y="{strip}" width="{x1 - x0:.1f}" height="{STRIP_HEIGHT - 6}" '
                f'fill="{STATUS_COLOR[s]}"><title>{tip}</title></rect>'
            )
        i = j + 1
    for i, s in enumerate(track.status):
        if s != "applied":
            continue
        after = track.values[i]
        up = _rose(track, i)
        x, yy = _x(i, n), y(after)
        tri = (
            f"{x - 5:.1f},{yy + 5:.1f} {x + 5:.1f},{yy + 5:.1f} {x:.1f},{yy - 5:.1f}"
            if up
            else (f"{x - 5:.1f},{yy - 5:.1f} {x + 5:.1f},{yy - 5:.1f} {x:.1f},{yy + 5:.1f}")
        )
        before = track.values[i - 1] if i > 0 else after
        tip = html.escape(f"applied {_when(track.times[i])}: {_fmt(before)} → {_fmt(after)}")
        out.append(f'<polygon points="{tri}" class="applied"><title>{tip}</title></polygon>')
    axis_y = strip + STRIP_HEIGHT + 10
    for i in (0, n // 2, n - 1):
        if 0 <= i < n:
            anchor = "start" if i == 0 else "end" if i == n - 1 else "middle"
            out.append(
                f'<text x="{_x(i, n):.1f}" y="{axis_y}" class="axis" text-anchor="{anchor}">'
                f"{_when(track.times[i])} UTC</text>"
            )
    out.append("</svg>")
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1000px}
body{color:#222}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}h3{font-size:1rem;margin-bottom:.3rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}.ok{color:#2a7d2a;font-weight:bold}.bad{color:#c62828;font-weight:bold}
.applied-row td{background:#f1faf1}.blocked-row td{background:#fdf1f1}.proposed-row td{background:#fff8e1}
svg .frame{fill:#fcfcfc;stroke:#ddd}svg .metric{fill:none;stroke:#17becf;stroke-width:1.3}
svg .threshold{fill:none;stroke-width:1.2;stroke-dasharray:5 4}
svg .value{fill:none;stroke:#2ca02c;stroke-width:2}
svg .bound{stroke:#555;stroke-dasharray:2 3}svg .applied{fill:#2ca02c}
.legend{font-size:.8rem;color:#666;margin-top:0}
svg .title{font-size:11px;font-weight:bold;fill:#333}svg .axis,svg .label{font-size:10px;fill:#666}
"""


def _cell(v: Any) -> str:
    return html.escape("-" if v is None else str(v))


def html_report(doc: Mapping[str, Any], tracks: Sequence[Track]) -> str:
    """A self-contained page from ``simulate``'s JSON document and its tracks."""
    title = doc.get("title") or doc.get("scenario") or "simulation"
    mode = ("plant model" if doc.get("plant") else "recorded metrics") + (
        ", guards on" if doc.get("guards") else ", GUARDS OFF (shows the runaway)"
    )
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>feedbackctl simulate — {html.escape(str(title))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>feedbackctl simulate — {html.escape(str(title))}</h1>",
        f"<p>{html.escape(str(doc.get('from')))} → {html.escape(str(doc.get('to')))}, every "
        f"{doc.get('stepMinutes')} min ({doc.get('steps')} steps); {html.escape(mode)}.</p>",
    ]
    if doc.get("description"):
        parts.append(f"<p>{html.escape(str(doc['description']))}</p>")
    parts.append(
        "<h2>Claims</h2><table><tr><th>claim</th><th>initial</th><th>final</th><th>applied</th>"
        "<th>blocked</th><th>cost (USD)</th><th>cost untuned</th><th>p99 mean / max (ms)</th>"
        "<th>time at timeout</th></tr>"
    )
    for c in doc.get("claims", []):
        est = c.get("estimates") or {}
        parts.append(
            "<tr>"
            f"<td>{_cell(c['claim'])}</td>"
            f"<td>{_cell(', '.join(f'{k}={v}' for k, v in c['initial'].items()))}</td>"
            f"<td>{_cell(', '.join(f'{k}={v}' for k, v in c['final'].items()))}</td>"
            f"<td>{_cell(c['applied'])}</td><td>{_cell(c['blocked'])}</td>"
            f"<td>{_cell(est.get('costUsd'))}</td><td>{_cell(est.get('baselineCostUsd'))}</td>"
            f"<td>{_cell(est.get('p99MeanMs'))} / {_cell(est.get('p99MaxMs'))}</td>"
            f"<td>{_cell(est.get('timeoutMinutes'))} min</td></tr>"
        )
    parts.append("</table>")
    safety = doc.get("safety") or {}
    bound_v, cool_v = len(safety.get("boundViolations", [])), len(safety.get("cooldownViolations", []))
    parts.append("<h2>Safety</h2><table>")
    for label, n in (("bound violations", bound_v), ("cooldown violations", cool_v)):
        cls = "ok" if n == 0 else "bad"
        parts.append(f'<tr><th>{label}</th><td class="{cls}">{n}</td></tr>')
    reversals = ", ".join(f"{k}: {v}" for k, v in (safety.get("reversals") or {}).items()) or "none"
    frozen = ", ".join(safety.get("frozen") or []) or "none"
    blocked = ", ".join(f"{k}: {v} steps" for k, v in (safety.get("blockedByRule") or {}).items()) or "none"
    parts += [
        f"<tr><th>direction reversals</th><td>{html.escape(reversals)}</td></tr>",
        f"<tr><th>flap-frozen</th><td>{html.escape(frozen)}</td></tr>",
        f"<tr><th>blocked by</th><td>{html.escape(blocked)}</td></tr></table>",
        "<h2>Charts</h2>",
    ]
    for track in tracks:
        parts.append(f"<h3>{html.escape(track.claim)} · spec.{html.escape(track.field)}</h3>")
        parts.append(svg_chart(track))
        parts.append(
            '<p class="legend">Dashed: rule thresholds (red increase, blue decrease, purple guardrail). '
            "Green: the tuned value, triangles where a change was applied; dotted: the human bounds. "
            "Strip: red blocked, amber routed to a proposal, grey held by a time gate.</p>"
        )
    parts.append(
        "<h2>Timeline</h2><table><tr><th>at</th><th>until</th><th>claim</th><th>field</th>"
        "<th>event</th><th>from → to</th><th>rule</th><th>blocked by</th><th>why</th></tr>"
    )
    for e in doc.get("timeline", []):
        parts.append(
            f'<tr class="{html.escape(e["event"])}-row"><td>{_cell(e["at"])}</td><td>{_cell(e["until"])}</td>'
            f"<td>{_cell(e['claim'])}</td><td>{_cell(e['field'])}</td><td>{_cell(e['event'])}</td>"
            f"<td>{_cell(e['from'])} → {_cell(e['to'])}</td><td>{_cell(e['rule'])}</td>"
            f"<td>{_cell(', '.join(e['blockedBy']))}</td><td>{_cell(e['reason'])}</td></tr>"
        )
    parts.append("</table></body></html>")
    return "\n".join(parts) + "\n"


# --- evidence windows (the review dashboard) ----------------------------------------------

WINDOW_WIDTH, WINDOW_HEIGHT = 600, 150
_W_LEFT, _W_RIGHT, _W_TOP, _W_BOTTOM = 58, 8, 12, 26


def window_svg(
    label: str,
    points: Sequence[Sequence[float]],
    window: tuple[float, float],
    threshold: float | None = None,
) -> str:
    """One metric around the window that fired: the series, the window shaded, the threshold dashed.

    Scales with its container (viewBox, no fixed width) so it reads on a phone.
    """
    times = [p[0] for p in points]
    t0, t1 = min([*times, window[0]]), max([*times, window[1]])
    if t1 <= t0:
        t1 = t0 + 1
    lo, hi = _range([p[1] for p in points], [threshold])
    plot_w = WINDOW_WIDTH - _W_LEFT - _W_RIGHT
    plot_h = WINDOW_HEIGHT - _W_TOP - _W_BOTTOM

    def x(t: float) -> float:
        return _W_LEFT + (t - t0) / (t1 - t0) * plot_w

    def y(v: float) -> float:
        return _W_TOP + plot_h - (v - lo) / (hi - lo) * plot_h

    line = " ".join(f"{'L' if i else 'M'}{x(t):.1f},{y(v):.1f}" for i, (t, v) in enumerate(points))
    wx0, wx1 = x(window[0]), x(window[1])
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WINDOW_WIDTH} {WINDOW_HEIGHT}" '
        f'class="window-chart" role="img" aria-label="{html.escape(label)}">',
        f"<title>{html.escape(label)}</title>",
        f'<rect x="{_W_LEFT}" y="{_W_TOP}" width="{plot_w}" height="{plot_h}" class="frame"/>',
        f'<rect x="{wx0:.1f}" y="{_W_TOP}" width="{max(1.0, wx1 - wx0):.1f}" height="{plot_h}" '
        'class="window"><title>the window that fired</title></rect>',
        f'<text x="{_W_LEFT - 4}" y="{_W_TOP + 12}" class="axis" text-anchor="end">{_fmt(hi)}</text>',
        f'<text x="{_W_LEFT - 4}" y="{_W_TOP + plot_h}" class="axis" text-anchor="end">{_fmt(lo)}</text>',
        f'<path d="{line}" class="metric"/>',
    ]
    if threshold is not None:
        ty = y(threshold)
        out += [
            f'<line x1="{_W_LEFT}" x2="{WINDOW_WIDTH - _W_RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" '
            'class="threshold">'
            f"<title>threshold {_fmt(threshold)}</title></line>",
            f'<text x="{WINDOW_WIDTH - _W_RIGHT - 4}" y="{ty - 4:.1f}" class="label" text-anchor="end">'
            f"threshold {_fmt(threshold)}</text>",
        ]
    base = WINDOW_HEIGHT - 6
    out += [
        f'<text x="{_W_LEFT}" y="{base}" class="axis">{_when(int(t0))} UTC</text>',
        f'<text x="{WINDOW_WIDTH - _W_RIGHT}" y="{base}" class="axis" text-anchor="end">'
        f"{_when(int(t1))} UTC</text>",
        "</svg>",
    ]
    return "\n".join(out)
