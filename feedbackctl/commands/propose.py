"""``feedbackctl propose`` and ``feedbackctl proposals list|show|approve|reject|ack|expire``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from feedbackctl.authority.shard import parse_shard
from feedbackctl.authority.snapshot import open_repo
from feedbackctl.clock import now_or
from feedbackctl.commands.acts import field_act
from feedbackctl.commands.options import (
    Claim,
    Detailed,
    DryRun,
    Field,
    Metrics,
    Now,
    Output,
    OutputOpt,
    Push,
    Reason,
    Ref,
    RemoteOpt,
    Repo,
    ShardOpt,
    exit_code,
    switch,
)
from feedbackctl.core.results import ProposalShown, ProposalsResult, Report
from feedbackctl.demo import DemoLayout
from feedbackctl.patterns import proposals as lifecycle
from feedbackctl.patterns.propose import DEFAULT_REMOTE, propose
from feedbackctl.render import View, show, stdout

_STYLE = {
    "created": "green",
    "reopened": "green",
    "updated": "yellow",
    "rebased": "yellow",
    "unchanged": "dim",
    "held-back": "magenta",
    "suppressed": "dim",
    "handed-off": "cyan",
    "blocked": "red",
    "skipped": "red",
    "pending": "yellow",
    "stale": "red",
    "applied": "green",
    "merged": "green",
    "rejected": "dim",
    "expired": "dim",
    "invalid": "red",
}


def _arrow(e: dict[str, Any]) -> str:
    if "from" not in e:
        return "-"
    return f"{e['from']} → {e['to']}"


def proposals_table(entries: Sequence[dict[str, Any]], title: str, key: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("branch", "change", "risk", key, "detail"):
        table.add_column(col, overflow="fold")
    for e in entries:
        state = str(e.get(key, ""))
        style = _STYLE.get(state, "")
        risk = e.get("risk") or "-"
        if e.get("escalated"):
            risk += " (escalated)"
        table.add_row(
            e["branch"],
            f"{e.get('field', '-')} {_arrow(e)}",
            risk,
            f"[{style}]{state}[/]" if style else state,
            str(e.get("detail", "")),
        )
    return table


def _print(report: Report, output: Output, title: str, key: str = "action") -> None:
    """The proposals table stands for the decisions (the JSON has both)."""

    def body(report: Report, out: Console, title: str) -> None:
        result = report.result if isinstance(report.result, ProposalsResult) else ProposalsResult()
        if result.proposals:
            out.print(proposals_table(result.proposals, title, key))
        elif report.command in ("propose", "proposals list"):
            passed = result.passed_over or []
            out.print(f"{title}: no proposals" + (":" if passed else ""))
            for p in passed:
                out.print(f"  {p['claim']} {p['field']}: {p['outcome']}: {p['reason']}")

    show(report, output.value, View(title, body))


def propose_command(
    repo: Repo = ".",
    ref: Ref = None,
    metrics: Metrics = None,
    now: Now = None,
    all_changes: Annotated[
        bool, switch("all", "Also propose the changes autotune would apply (an engineer asks).")
    ] = False,
    push: Push = False,
    remote: Annotated[str, typer.Option("--remote", help="Remote for --push.")] = DEFAULT_REMOTE,
    output: OutputOpt = Output.table,
    dry_run: DryRun = False,
    detailed_exitcode: Detailed = False,
    shard: ShardOpt = None,
) -> int:
    """Open one proposal branch per change that needs human review (Pattern 1)."""
    report = propose(
        open_repo(repo),
        ref,
        metrics,
        now_or(now),
        all_changes=all_changes,
        push=push,
        dry_run=dry_run,
        remote=remote,
        shard=parse_shard(shard),
    )
    _print(report, output, f"feedbackctl propose @ {report.branch}")
    return exit_code(report, detailed_exitcode)


proposals = typer.Typer(help="Review proposal branches: list, show, approve, reject, ack, expire.")


@proposals.command("list")
def list_command(
    repo: Repo = ".",
    ref: Ref = None,
    now: Now = None,
    output: OutputOpt = Output.table,
    remote: RemoteOpt = None,
) -> int:
    """Every proposal branch and its status (pending, stale, applied, rejected, ...)."""
    report = lifecycle.list_proposals(open_repo(repo), ref, now_or(now), remote=remote)
    _print(report, output, f"proposals @ {report.branch}", key="status")
    return exit_code(report, False)


@proposals.command("show")
def show_command(
    claim: Claim,
    field: Field,
    repo: Repo = ".",
    ref: Ref = None,
    now: Now = None,
    output: OutputOpt = Output.table,
    remote: RemoteOpt = None,
) -> int:
    """One proposal: its record and the commits on its branch."""
    report = lifecycle.show_proposal(open_repo(repo), ref, claim, field, now_or(now), remote=remote)
    show(report, output.value, View("proposal", _shown))
    return 0


def _shown(report: Report, out: Console, title: str) -> None:
    shown = report.result_as(ProposalShown)
    out.print(proposals_table([shown.proposal], f"proposal {shown.proposal['branch']}", "status"))
    rationale = (shown.record or {}).get("spec", {}).get("rationale", {})
    if rationale:
        out.print(f"summary: {rationale.get('summary', '')}", markup=False)
        for e in rationale.get("evidence") or []:
            out.print(f"  evidence: {e.get('summary')}", markup=False)
    for c in shown.chain:
        out.print(f"  {c['sha'][:10]} {c['kind']:<9} {c['author']}", markup=False)


@proposals.command("approve")
def approve_command(
    claim: Claim,
    field: Field,
    repo: Repo = ".",
    ref: Ref = None,
    now: Now = None,
    reason: Reason = "",
    output: OutputOpt = Output.table,
    dry_run: DryRun = False,
    remote: RemoteOpt = None,
    beyond_bounds: Annotated[
        bool,
        typer.Option(
            "--beyond-bounds",
            help="Approve a value outside the claim's autoTune bounds (recorded in the commit).",
        ),
    ] = False,
) -> int:
    """Apply the proposal's claim edit to the authority branch (Feedback-Kind: approve), close its branch."""
    report = lifecycle.approve(
        open_repo(repo), ref, claim, field, now_or(now), reason=reason, dry_run=dry_run, remote=remote,
        beyond_bounds=beyond_bounds,
    )  # fmt: skip
    _print(report, output, "proposals approve")
    return exit_code(report, False)


proposals.command(
    "reject", help="Reject: recorded on the branch; the same change is not proposed again for 7 days."
)(field_act(lifecycle.reject, lambda report, output: _print(report, output, "proposals reject")))


@proposals.command("ack")
def ack_command(
    claim: Claim,
    field: Field,
    repo: Repo = ".",
    ref: Ref = None,
    now: Now = None,
    output: OutputOpt = Output.table,
    dry_run: DryRun = False,
    remote: RemoteOpt = None,
) -> int:
    """Acknowledge a MEDIUM proposal (within 8 h): autotune may then apply it inside the bounds."""
    report = lifecycle.acknowledge(
        open_repo(repo), ref, claim, field, now_or(now), dry_run=dry_run, remote=remote
    )
    _print(report, output, "proposals ack")
    return exit_code(report, False)


@proposals.command("expire")
def expire_command(
    repo: Repo = ".",
    ref: Ref = None,
    now: Now = None,
    output: OutputOpt = Output.table,
    dry_run: DryRun = False,
    remote: RemoteOpt = None,
) -> int:
    """Close every pending proposal older than 7 days."""
    report = lifecycle.expire(open_repo(repo), ref, now_or(now), dry_run=dry_run, remote=remote)
    _print(report, output, "proposals expire")
    return exit_code(report, False)


def register(app: typer.Typer) -> None:
    app.command("propose")(propose_command)
    app.add_typer(proposals, name="proposals")


def demo_step(layout: DemoLayout, now: datetime) -> int:
    out = stdout()
    out.print(
        "[bold]propose[/] — every change autotune will not apply (dev is not opted in) goes to a "
        "human: one branch each (claim edit + ConfigurationProposal); the authority branch untouched"
    )
    repo = open_repo(layout.repo)
    report = propose(repo, None, str(layout.metrics), now)
    _print(report, Output.table, "feedbackctl propose")
    listed = lifecycle.list_proposals(repo, None, now)
    _print(listed, Output.table, "feedbackctl proposals list", key="status")
    out.print(f"  review one: git -C {layout.repo} show feedback/messagewall-dev/lambdaMemory")
    out.print("  decide:     feedbackctl proposals approve|reject|ack CLAIM FIELD")
    return 1 if report.problems or listed.problems else 0
