"""Output for people (Rich tables) and for scripts (a stable JSON schema).

JSON goes to stdout alone; messages and problems go to stderr, so
``--output json`` can be piped. Rich falls back to plain text when stdout is
not a terminal or ``NO_COLOR`` is set.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from feedbackctl.core.models import Decision, Evidence, Outcome, reason_of
from feedbackctl.core.results import JSON_SCHEMA_VERSION, Report
from feedbackctl.patterns.packed import PackedDecisions, decision_text, plain_decision

_OUTCOME_STYLE = {
    Outcome.CHANGE: "green",
    Outcome.PROPOSE: "yellow",
    Outcome.BLOCKED: "red",
    Outcome.HOLD: "dim",
    Outcome.NOT_ENOUGH_DATA: "magenta",
}


# When stdout is not a terminal (a pipe, cron, CI) and COLUMNS says nothing, tables
# get room rather than being folded into 80 columns.
PLAIN_WIDTH = 160
# Below this width the decisions table folds its seven columns into four.
NARROW_BELOW = 100


def columns() -> int | None:
    """``COLUMNS`` when it is a usable width (people set it for pipes and narrow panes)."""
    raw = os.environ.get("COLUMNS", "").strip()
    return int(raw) if raw.isdigit() and int(raw) >= 20 else None


def stdout() -> Console:
    width = columns()
    console = Console(highlight=False, soft_wrap=False, width=width)
    if width is None and not console.is_terminal:
        console = Console(highlight=False, soft_wrap=False, width=PLAIN_WIDTH)
    return console


def stderr() -> Console:
    # Problems are one line each (grep-able in cron logs): never folded at 80 columns.
    return Console(stderr=True, highlight=False, soft_wrap=True)


# C0 and C1 controls, DEL, and the Unicode line/paragraph separators: shown as
# escapes so that text from a repo or a live system cannot move the cursor,
# retitle the terminal or forge extra output lines.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_CONTROLS.update({0x2028: "\\u2028", 0x2029: "\\u2029"})
_CONTROLS_BUT_NEWLINE = {c: v for c, v in _CONTROLS.items() if c != 0x0A}


def terminal_safe(value: object, *, markup: bool = True, newlines: bool = False) -> str:
    """Untrusted text as it may reach a terminal: controls escaped, Rich markup inert.

    Every value that came from a repo, a live system or a file goes through
    here before printing; ``markup=False`` for plain writes that Rich never
    parses, ``newlines=True`` for messages that may span lines.
    """
    text = str(value).translate(_CONTROLS_BUT_NEWLINE if newlines else _CONTROLS)
    return escape(text) if markup else text


def decision_json(d: Decision) -> dict[str, Any]:
    return plain_decision_json(plain_decision(d))


def plain_decision_json(raw: list[Any]) -> dict[str, Any]:
    """A decision's JSON, from its plain list (patterns/packed.py ``plain_decision``).

    A fleet's report writes each decision's text as ``patterns/packed.py`` builds it,
    the same text as this dict's ``json.dumps`` (tests/test_analyzecache_packed.py).
    """
    (claim, field_name, current, outcome, recommended, uncapped, direction, confidence, rule, source, risk,
     evidence, notes) = raw[:13]  # fmt: skip
    return {
        "claim": claim,
        "field": f"spec.{field_name}",
        "current": current,
        "recommended": recommended,
        "uncapped": uncapped,
        "outcome": outcome,
        "direction": direction,
        "confidence": confidence,
        "risk": risk,
        "rule": rule,
        "source": source,
        "reason": reason_of(notes),
        "blockedBy": [n[0] for n in notes if n[1] == "blocked"],
        "evidence": [
            {
                "metric": e[0],
                "statistic": e[1],
                "windowMinutes": e[2],
                "points": e[3],
                "value": e[4],
                "threshold": e[5],
                "summary": Evidence(*e).summary,
            }
            for e in evidence
        ],
        "notes": [{"rule": n[0], "effect": n[1], "detail": n[2]} for n in notes],
    }


def _slice_texts(decisions: Sequence[Decision], start: int) -> list[str]:
    """Decisions ``start:start + JSON_SLICE`` as ``json.dumps(decision_json(d), default=str)`` each."""
    stop = start + JSON_SLICE
    texts = decisions.texts(start, stop) if isinstance(decisions, PackedDecisions) else None
    if texts is not None:
        return texts
    return [decision_text(d) or json.dumps(decision_json(d), default=str) for d in decisions[start:stop]]


def report_json(r: Report) -> dict[str, Any]:
    return {
        "schemaVersion": JSON_SCHEMA_VERSION,
        "command": r.command,
        "now": r.now.isoformat().replace("+00:00", "Z"),
        "branch": r.branch,
        "commit": r.commit,
        "dryRun": r.dry_run,
        "decisions": [decision_json(d) for d in r.decisions],
        "commits": r.commits,
        "events": r.events,
        "problems": [{"claim": p.where or None, "message": p.message} for p in r.problems],
        "warnings": r.warnings,
        **r.extra_json(),
    }


# Indented JSON goes through the pure-Python encoder; a fleet's report is
# written compact (the C encoder, several times faster).
PRETTY_JSON_MAX_DECISIONS = 500


def print_json(data: Any) -> None:
    pretty = len(data.get("decisions", ())) <= PRETTY_JSON_MAX_DECISIONS if isinstance(data, dict) else True
    sys.stdout.write(json.dumps(data, indent=2 if pretty else None, default=str) + "\n")


# Decisions written per slice: a fleet's report (100k decisions, ~90 MB of JSON) is
# never built whole in memory (docs/performance.md).
JSON_SLICE = 1000


def print_report_json(r: Report) -> None:
    """``print_json(report_json(r))``, byte for byte, without holding the whole text."""
    if len(r.decisions) <= PRETTY_JSON_MAX_DECISIONS:
        print_json(report_json(r))
        return
    doc = report_json(replace(r, decisions=[]))
    # No JSON string can hold this text unescaped, and the keys before it are scalars.
    head, marker, tail = json.dumps(doc, default=str).partition('"decisions": []')
    assert marker, "report_json lost its decisions key"
    out = sys.stdout
    out.write(head + '"decisions": [')
    for i in range(0, len(r.decisions), JSON_SLICE):
        # The same ", "-separated text as one dump of the slice as a list.
        part = ", ".join(_slice_texts(r.decisions, i))
        out.write(part if i == 0 else ", " + part)
    out.write("]" + tail + "\n")


def _value(v: Any) -> str:
    return "-" if v is None else terminal_safe(v)


def decisions_table(decisions: Sequence[Decision], title: str, width: int | None = None) -> Table:
    """Seven columns; below ``NARROW_BELOW`` columns, four (claim and field, change, outcome
    with confidence and risk, why), so that 80 columns stay readable."""
    narrow = width is not None and width < NARROW_BELOW
    table = Table(title=terminal_safe(title), title_justify="left", expand=narrow)
    if narrow:
        table.add_column("claim / field", overflow="fold", ratio=3)
        table.add_column("change", overflow="fold", ratio=2)
        table.add_column("outcome", overflow="fold", ratio=2)
        table.add_column("why / blocked by", overflow="fold", ratio=5)
    else:
        for col in ("claim", "field", "current → recommended", "outcome", "conf", "risk", "why / blocked by"):
            table.add_column(col, overflow="fold")
    for d in decisions:
        arrow = _value(d.current)
        if d.recommended is not None and d.recommended != d.current:
            arrow += f" → {_value(d.recommended)}"
            if d.uncapped not in (None, d.recommended):
                arrow += f" (uncapped {_value(d.uncapped)})"
        style = _OUTCOME_STYLE.get(d.outcome, "")
        outcome = f"[{style}]{d.outcome.value}[/]" if style else d.outcome.value
        conf = f"{d.confidence:.2f}" if d.confidence else "-"
        claim, field_name, risk, reason = (
            terminal_safe(x) for x in (d.claim, d.field, d.risk or "", d.reason)
        )
        if narrow:
            extra = ", ".join(x for x in (conf if d.confidence else "", risk) if x)
            table.add_row(
                f"{claim}\n{field_name}", arrow, outcome + (f"\n{extra}" if extra else ""), reason
            )
        else:
            table.add_row(claim, field_name, arrow, outcome, conf, risk or "-", reason)
    return table


def cost_json(r: Report) -> dict[str, Any]:
    """``{"metricsCost": ...}`` when the command read metrics, else empty."""
    return {"metricsCost": r.metrics_cost.json()} if r.metrics_cost is not None else {}


def print_cost_line(doc: Mapping[str, Any], out: Console) -> None:
    """The table's last line: what the run's metric reads cost (``doc``: a report's JSON or ``cost_json``)."""
    cost = doc.get("metricsCost")
    if isinstance(cost, dict):
        out.print(
            f"metrics cost: {cost['apiCalls']:,} API calls, {cost['metricsRequested']:,} metrics requested, "
            f"about {cost['estimatedUSD']:.4f} USD",
            markup=False,
        )


# --- output formats ---------------------------------------------------------------

Body = Callable[[Report, Console, str], None]


def decisions_body(r: Report, out: Console, title: str) -> None:
    if r.decisions:
        out.print(decisions_table(r.decisions, title, out.width))


@dataclass(frozen=True)
class View:
    """How one command shows its report: the title, the table's body, and what its JSON is.

    The table format prints ``body``, then the commits and event messages every
    command shares, then ``after`` (a summary line), then the cost line.
    """

    title: str
    body: Body = decisions_body
    after: Body | None = None
    json: Callable[[Report], Any] | None = None  # None: report_json, written in slices


def print_table(r: Report, view: View) -> None:
    out = stdout()
    view.body(r, out, view.title)
    for c in r.commits:
        out.print(committed_line(c, r.branch))
    for e in r.events:
        if "message" in e:
            out.print(terminal_safe(e["message"]))
    if view.after is not None:
        view.after(r, out, view.title)
    print_cost_line(cost_json(r), out)


def print_json_format(r: Report, view: View) -> None:
    if view.json is None:
        print_report_json(r)
    else:
        print_json(view.json(r))


# ``--output NAME``: a new format is one function here (and its name in commands/options.Output).
FORMATS: dict[str, Callable[[Report, View], None]] = {"table": print_table, "json": print_json_format}


def print_diagnostics(r: Report) -> None:
    # One line each, never wrapped: people grep these and cron mails them.
    for w in r.warnings:
        sys.stderr.write(f"warning: {terminal_safe(w, markup=False)}\n")
    for p in r.problems:
        sys.stderr.write(f"error: {terminal_safe(p.message, markup=False)}\n")


def show(r: Report, output: str, view: View) -> None:
    """The report in the chosen format on stdout; warnings and problems on stderr."""
    FORMATS[output](r, view)
    print_diagnostics(r)


def print_report(r: Report, output: str, *, title: str) -> None:
    show(r, output, View(title))


def committed_line(c: dict[str, Any], branch: str | None) -> str:
    """``committed SHA on BRANCH: SUBJECT``, safe for Rich and the terminal."""
    return terminal_safe(f"committed {c['sha'][:10]} on {c.get('branch', branch)}: {c['subject']}")
