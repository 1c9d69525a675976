"""``feedbackctl reset``: put fields back to their tested baseline."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from feedbackctl.authority.snapshot import open_repo
from feedbackctl.clock import now_or
from feedbackctl.commands.options import DryRun, Now, Output, OutputOpt, Ref, Repo, exit_code
from feedbackctl.core.results import Report, ResetResult
from feedbackctl.patterns.reset import Selection, reset
from feedbackctl.render import View, decisions_body, show


def reset_command(
    claim: Annotated[str, typer.Option("--claim", help="Claim name or glob (default: all).")] = "*",
    field: Annotated[
        list[str] | None,
        typer.Option("--field", help="Field to reset (repeatable; default: every tuned field)."),
    ] = None,
    repo: Repo = ".",
    ref: Ref = None,
    now: Now = None,
    output: OutputOpt = Output.table,
    dry_run: DryRun = False,
) -> int:
    """Reset tuned fields to their tested baseline (the value last set by a human)."""
    fields = tuple(f.removeprefix("spec.") for f in field or ())
    report = reset(open_repo(repo), ref, Selection(claim, fields), now_or(now), dry_run=dry_run)
    show(report, output.value, View("reset", _resets))
    return exit_code(report, False)


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
