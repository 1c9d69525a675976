"""``feedbackctl reset``: put fields back to their tested baseline."""

from __future__ import annotations

from typing import Annotated

import typer

from feedbackctl.authority.snapshot import open_repo
from feedbackctl.clock import now_or
from feedbackctl.commands.options import DryRun, Now, Output, OutputOpt, Ref, Repo, exit_code
from feedbackctl.patterns.reset import Selection, reset
from feedbackctl.render import print_report, stdout


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
    if output == Output.table:
        out = stdout()
        for row in report.extra["resets"]:
            verb = "would reset" if dry_run else "reset"
            out.print(f"{verb} {row['claim']} {row['field']}: {row['from']} -> {row['to']} ({row['risk']})")
        if not report.extra["resets"]:
            out.print("every selected field is at its baseline")
    print_report(report, output.value, title="reset")
    return exit_code(report, False)


def register(app: typer.Typer) -> None:
    app.command("reset")(reset_command)
