"""``feedbackctl analyze`` and ``feedbackctl recommendations dismiss|accept``."""

from __future__ import annotations

from typing import Annotated

import typer

from feedbackctl.authority.shard import parse_shard
from feedbackctl.authority.snapshot import open_repo
from feedbackctl.clock import now_or
from feedbackctl.commands.options import (
    Claim,
    Detailed,
    DryRun,
    Field,
    Metrics,
    Now,
    Output,
    OutputOpt,
    Reason,
    Ref,
    RemoteOpt,
    Repo,
    ShardOpt,
    exit_code,
    switch,
)
from feedbackctl.patterns.recommend import StatusChange, analyze, set_status
from feedbackctl.render import print_report


def analyze_command(
    repo: Repo = ".",
    ref: Ref = None,
    metrics: Metrics = None,
    now: Now = None,
    output: OutputOpt = Output.table,
    write: Annotated[
        bool, switch("write", "Commit ConfigurationRecommendation sidecars.")
    ] = False,
    dry_run: DryRun = False,
    detailed_exitcode: Detailed = False,
    shard: ShardOpt = None,
) -> int:
    """Report what runtime signals say about each tuned field (Pattern 4)."""
    report = analyze(
        open_repo(repo),
        ref,
        metrics,
        now_or(now),
        write_sidecars=write,
        dry_run=dry_run,
        shard=parse_shard(shard),
    )
    print_report(report, output.value, title=f"feedbackctl analyze @ {report.branch}")
    return exit_code(report, detailed_exitcode)


recommendations = typer.Typer(help="Dismiss or accept ConfigurationRecommendation entries.")


def _status(status: str):  # type: ignore[no-untyped-def]
    def command(
        claim: Claim,
        field: Field,
        repo: Repo = ".",
        ref: Ref = None,
        now: Now = None,
        reason: Reason = "",
        proposer: Annotated[
            str | None, typer.Option("--proposer", help="Agent id of the recommendation (observe).")
        ] = None,
        output: OutputOpt = Output.table,
        dry_run: DryRun = False,
        remote: RemoteOpt = None,
    ) -> int:
        report = set_status(
            open_repo(repo),
            ref,
            StatusChange(claim, field.removeprefix("spec."), status, proposer),
            now_or(now),
            dry_run=dry_run,
            reason=reason,
            remote=remote,
        )
        print_report(report, output.value, title="recommendations")
        return exit_code(report, False)

    return command


recommendations.command("dismiss", help="Mark a recommendation dismissed (a commit, pushed to the remote).")(
    _status("dismissed")
)
recommendations.command(
    "accept", help="Apply a recommendation to the claim (a commit, pushed to the remote)."
)(_status("accepted"))


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze_command)
    app.add_typer(recommendations, name="recommendations")
