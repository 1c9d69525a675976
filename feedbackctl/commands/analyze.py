"""``feedbackctl analyze`` and ``feedbackctl recommendations dismiss|accept``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from feedbackctl.commands.options import Common, command, switch
from feedbackctl.patterns.recommend import StatusChange, analyze, set_status
from feedbackctl.render import print_report

Write = Annotated[bool, switch("write", "Commit ConfigurationRecommendation sidecars.")]
Proposer = Annotated[str | None, typer.Option("--proposer", help="Agent id of the recommendation (observe).")]


@command("repo ref metrics now output write dry_run detailed_exitcode shard")
def analyze_command(c: Common, write: Write = False) -> int:
    """Report what runtime signals say about each tuned field (Pattern 4)."""
    report = analyze(
        c.open(), c.ref, c.metrics, c.at(), write_sidecars=write, dry_run=c.dry_run, shard=c.shards()
    )
    print_report(report, c.output.value, title=f"feedbackctl analyze @ {report.branch}")
    return c.exit(report)


recommendations = typer.Typer(help="Dismiss or accept ConfigurationRecommendation entries.")


def _status(status: str) -> Callable[..., int]:
    @command("claim field repo ref now reason proposer output dry_run remote")
    def status_command(c: Common, proposer: Proposer = None) -> int:
        change = StatusChange(c.claim, c.field.removeprefix("spec."), status, proposer)
        report = set_status(
            c.open(), c.ref, change, c.at(), dry_run=c.dry_run, reason=c.reason, remote=c.remote
        )
        print_report(report, c.output.value, title="recommendations")
        return c.exit(report)

    return status_command


recommendations.command("dismiss", help="Mark a recommendation dismissed (a commit, pushed to the remote).")(
    _status("dismissed")
)
recommendations.command(
    "accept", help="Apply a recommendation to the claim (a commit, pushed to the remote)."
)(_status("accepted"))


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze_command)
    app.add_typer(recommendations, name="recommendations")
