"""``feedbackctl reset``: put fields back to their tested baseline."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from feedbackctl.commands.options import Common, command
from feedbackctl.core.results import Report, ResetResult
from feedbackctl.patterns.reset import Selection, reset
from feedbackctl.render import View, decisions_body, show


@command("claim field repo ref now output dry_run")
def reset_command(
    c: Common,
    claim: Annotated[str, typer.Option("--claim", help="Claim name or glob (default: all).")] = "*",
    field: Annotated[
        list[str] | None,
        typer.Option("--field", help="Field to reset (repeatable; default: every tuned field)."),
    ] = None,
) -> int:
    """Reset tuned fields to their tested baseline (the value last set by a human)."""
    fields = tuple(f.removeprefix("spec.") for f in field or ())
    report = reset(c.open(), c.ref, Selection(claim, fields), c.at(), dry_run=c.dry_run)
    show(report, c.output.value, View("reset", _resets))
    return c.exit(report)


def _resets(report: Report, out: Console, title: str) -> None:
    rows = report.result_as(ResetResult).resets
    verb = "would reset" if report.dry_run else "reset"
    for row in rows:
        out.print(f"{verb} {row['claim']} {row['field']}: {row['from']} -> {row['to']} ({row['risk']})")
    if not rows:
        out.print("every selected field is at its baseline")
    decisions_body(report, out, title)


def register(app: typer.Typer) -> None:
    app.command("reset")(reset_command)
