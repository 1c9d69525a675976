"""Pictures of a simulation: a terminal block chart (the SVG and HTML ones: ``charts_svg.py``).

A ``Track`` is one claim field over simulated time: its tuned value, what the
core decided at each step, and one panel per metric that drives it with the
thresholds of the rules (and guardrails) that read that metric. The terminal
chart draws bars with eighth blocks and the thresholds as dashed rows; the
SVG draws the same with polylines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rich.text import Text

BLOCKS = " ▁▂▃▄▅▆▇█"
LEGEND_WIDTH = 40  # room right of the plot for threshold names
SPARK = "▁▂▃▄▅▆▇█"
THRESHOLD_STYLE = {"increase": "red", "decrease": "blue", "guardrail": "magenta"}
STATUS_RANK = {"applied": 5, "proposed": 4, "blocked": 3, "gated": 2, "hold": 1, "no-data": 0}
STATUS_MARK = {"proposed": ("?", "yellow"), "blocked": ("✕", "red"), "gated": ("·", "dim")}


@dataclass
class Threshold:
    name: str  # the rule or guardrail
    kind: str  # increase | decrease | guardrail
    values: list[float | None] = field(default_factory=list)  # per step (relative thresholds move)


@dataclass
class Panel:
    metric: str
    unit: str
    values: list[float | None] = field(default_factory=list)  # newest point at each step
    thresholds: list[Threshold] = field(default_factory=list)


@dataclass
class Track:
    claim: str
    field: str
    unit: str
    times: list[int]  # epoch seconds, one per step
    values: list[float]  # the tuned value at each step
    status: list[str]  # applied | blocked | proposed | gated | hold | no-data
    panels: list[Panel]
    bounds: tuple[float, float] | None = None


def _fmt(v: float) -> str:
    a = abs(v)
    if a >= 10000:
        return f"{v / 1000:.0f}k"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 1:
        return f"{v:.3g}"
    return f"{v:.2g}"


def _columns(n: int, width: int) -> list[range]:
    width = max(1, min(width, n))
    return [range(j * n // width, max(j * n // width + 1, (j + 1) * n // width)) for j in range(width)]


def _peak(values: Sequence[float | None], cols: list[range]) -> list[float | None]:
    out: list[float | None] = []
    for r in cols:
        got = [values[i] for i in r if values[i] is not None]
        out.append(max(got) if got else None)  # type: ignore[type-var]
    return out


def _last(values: Sequence[float | None], cols: list[range]) -> list[float | None]:
    out: list[float | None] = []
    for r in cols:
        got = [values[i] for i in r if values[i] is not None]
        out.append(got[-1] if got else None)
    return out


def _range(values: Sequence[float | None], extra: Sequence[float | None]) -> tuple[float, float]:
    seen = [v for v in [*values, *extra] if v is not None]
    if not seen:
        return 0.0, 1.0
    lo, hi = min(seen), max(seen)
    if hi <= lo:
        hi = lo + max(1.0, abs(lo) * 0.1)
    pad = (hi - lo) * 0.08
    # Zoom in on where values and thresholds are; never below zero (metrics never are).
    return max(0.0, lo - pad) if lo >= 0 else lo - pad, hi + pad


def _rose(track: Track, i: int) -> bool:
    """Did the change applied at step ``i`` raise the value? (values are sampled after it)."""
    return i == 0 or track.values[i] >= track.values[i - 1]


def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%m-%d %H:%M")


# --- terminal --------------------------------------------------------------------------


def _panel_lines(panel: Panel, cols: list[range], label_width: int, height: int) -> list[Text]:
    values = _peak(panel.values, cols)
    lines = [Text(f"{panel.metric} ({panel.unit})" if panel.unit else panel.metric, style="bold")]
    th_cols = [(th, _last(th.values, cols)) for th in panel.thresholds]
    lo, hi = _range(values, [v for _, vs in th_cols for v in vs])
    step = (hi - lo) / height
    for row in range(height):
        top = hi - row * step
        bottom = top - step
        label = _fmt(top) if row == 0 else _fmt(lo) if row == height - 1 else ""
        line = Text(f"{label:>{label_width}} ┤", style="dim")
        legend = Text()
        for j, v in enumerate(values):
            marks = [th for th, vs in th_cols if vs[j] is not None and bottom <= vs[j] < top]  # type: ignore[operator]
            mark_style = THRESHOLD_STYLE.get(marks[0].kind, "red") if marks else None
            if v is not None and v >= top:
                line.append("█", style=mark_style or "cyan")  # a bar through a threshold takes its colour
            elif v is not None and v > bottom:
                line.append(BLOCKS[max(1, int((v - bottom) / step * 8))], style=mark_style or "cyan")
            elif marks:
                line.append("╌", style=THRESHOLD_STYLE.get(marks[0].kind, "red"))
            else:
                line.append(" ")
        for th, vs in th_cols:
            last = next((x for x in reversed(vs) if x is not None), None)
            if last is not None and bottom <= last < top:
                arrow = {"increase": "up", "decrease": "down"}.get(th.kind, "guard")
                legend.append(f" {arrow} {th.name} {_fmt(last)}", style=THRESHOLD_STYLE.get(th.kind, "red"))
        line.append_text(legend)
        lines.append(line)
    return lines


def terminal_chart(track: Track, width: int = 100, height: int = 7) -> list[Text]:
    """Rich text lines: metric panels with thresholds, the tuned value, and what happened."""
    n = len(track.times)
    if n == 0:
        return [Text(f"{track.claim} spec.{track.field}: no steps")]
    label_width = 6
    cols = _columns(n, max(10, width - label_width - 2 - LEGEND_WIDTH))
    first, final = track.values[0], track.values[-1]
    applied = sum(1 for s in track.status if s == "applied")
    stopped = sum(1 for s in track.status if s in ("blocked", "proposed"))
    head = Text(f"{track.claim} · spec.{track.field}  ", style="bold")
    head.append(f"{_fmt(first)} → {_fmt(final)} {track.unit}".rstrip())
    head.append(f"   {applied} applied, {stopped} blocked or proposed steps", style="dim")
    lines = [head]
    for panel in track.panels:
        lines += _panel_lines(panel, cols, label_width, height)
    vals = _last(track.values, cols)
    lo = min(v for v in vals if v is not None)
    hi = max(v for v in vals if v is not None)
    if track.bounds:
        lo, hi = min(lo, track.bounds[0]), max(hi, track.bounds[1])
    value = Text(f"{'value':>{label_width}} ┤", style="dim")
    for v in vals:
        k = 0 if v is None or hi == lo else round((v - lo) / (hi - lo) * (len(SPARK) - 1))
        value.append(SPARK[k], style="green")
    bounds = f" bounds {_fmt(track.bounds[0])}-{_fmt(track.bounds[1])}" if track.bounds else " no bounds"
    value.append(f" {_fmt(lo)}..{_fmt(hi)}{bounds}", style="dim")
    lines.append(value)
    events = Text(f"{'events':>{label_width}} ┤", style="dim")
    for r in cols:
        best = max((track.status[i] for i in r), key=lambda s: STATUS_RANK.get(s, 0))
        if best == "applied":
            i = next(i for i in r if track.status[i] == "applied")
            events.append("▲" if _rose(track, i) else "▼", style="bold green")
        elif best in STATUS_MARK:
            mark, style = STATUS_MARK[best]
            events.append(mark, style=style)
        else:
            events.append(" ")
    events.append(" ▲▼ applied ✕ blocked ? proposal · gated", style="dim")
    lines.append(events)
    axis = " " * (label_width + 2)
    span = len(cols)
    left, right = _when(track.times[0]), _when(track.times[-1])
    lines.append(Text(axis + left + " " * max(1, span - len(left) - len(right)) + right, style="dim"))
    return lines
