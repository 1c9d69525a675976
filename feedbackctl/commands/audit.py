"""``feedbackctl audit verify`` and ``feedbackctl unfreeze``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from feedbackctl.clock import parse_instant
from feedbackctl.commands.acts import field_act
from feedbackctl.commands.options import Common, Output, command
from feedbackctl.core.results import Report
from feedbackctl.errors import EXIT_CHANGES, EXIT_OK, EXIT_RUNTIME
from feedbackctl.patterns.audit import AuditResult, audit_json, unfreeze, verify
from feedbackctl.render import print_json, print_report, stderr, stdout

audit = typer.Typer(help="Prove from git alone that every feedback commit was allowed.")
Since = Annotated[str | None, typer.Option("--since", help="Audit only commits after REV (REV..ref).")]


def print_audit(r: AuditResult, output: str) -> None:
    if output == "json":
        print_json(audit_json(r))
    else:
        out = stdout()
        span = f"{r.since[:10]}..{r.branch}" if r.since else r.branch
        if r.violations:
            table = Table(title=f"feedbackctl audit verify @ {span}", title_justify="left")
            for col in ("commit", "date", "kind", "claim", "field", "rule", "why"):
                table.add_column(col, overflow="fold")
            for v in r.violations:
                table.add_row(
                    v.commit[:10],
                    f"{v.at:%Y-%m-%d %H:%M}",
                    v.kind or "-",
                    v.claim or "-",
                    v.field or "-",
                    f"[red]{v.rule}[/]",
                    v.detail,
                )
            out.print(table)
        verdict = f"[red]{len(r.violations)} violation(s)[/]" if r.violations else "[green]no violations[/]"
        out.print(f"audited {r.commits} feedbackctl commit(s), {r.changes} change(s) on {span}: {verdict}")
    err = stderr()
    for p in r.problems:
        err.print(f"error: {p.message}", markup=False)


@audit.command("verify")
@command("repo ref since now output detailed_exitcode")
def verify_command(c: Common, since: Since = None) -> int:
    """Replay the authority branch; exit 3 when any feedback commit broke a rule.

    With --now, commits dated after it are left out (a replay of the audit as of then).

    Exits 3 on violations whether or not --detailed-exitcode is given.
    """
    # violations always exit 3 so CI can gate on it, --detailed-exitcode or not
    result = verify(c.open(), c.ref, since, parse_instant(c.now) if c.now else None)
    print_audit(result, c.output.value)
    if result.violations:
        return EXIT_CHANGES
    return EXIT_RUNTIME if result.problems else EXIT_OK


UNFREEZE_HELP = (
    "Lift a flap freeze: a commit with Feedback-Kind: unfreeze (no file changes), pushed to the remote."
)


def _show_unfreeze(report: Report, output: Output) -> None:
    print_report(report, output.value, title="unfreeze")


def register(app: typer.Typer) -> None:
    app.add_typer(audit, name="audit")
    app.command("unfreeze", help=UNFREEZE_HELP)(field_act(unfreeze, _show_unfreeze))
