"""``feedbackctl propose`` and ``feedbackctl proposals list|show|approve|reject|ack|expire``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from feedbackctl.authority.snapshot import open_repo
from feedbackctl.commands.acts import field_act
from feedbackctl.commands.options import Common, Output, command, switch
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


AllChanges = Annotated[
    bool, switch("all", "Also propose the changes autotune would apply (an engineer asks).")
]
PushRemote = Annotated[str, typer.Option("--remote", help="Remote for --push.")]
BeyondBounds = Annotated[
    bool,
    typer.Option(
        "--beyond-bounds",
        help="Approve a value outside the claim's autoTune bounds (recorded in the commit).",
    ),
]


@command("repo ref metrics now all_changes push remote output dry_run detailed_exitcode shard")
def propose_command(c: Common, all_changes: AllChanges = False, remote: PushRemote = DEFAULT_REMOTE) -> int:
    """Open one proposal branch per change that needs human review (Pattern 1)."""
    report = propose(
        c.open(),
        c.ref,
        c.metrics,
        c.at(),
        all_changes=all_changes,
        push=c.push,
        dry_run=c.dry_run,
        remote=remote,
        shard=c.shards(),
    )
    _print(report, c.output, f"feedbackctl propose @ {report.branch}")
    return c.exit(report)


proposals = typer.Typer(help="Review proposal branches: list, show, approve, reject, ack, expire.")


@proposals.command("list")
@command("repo ref now output remote")
def list_command(c: Common) -> int:
    """Every proposal branch and its status (pending, stale, applied, rejected, ...)."""
    report = lifecycle.list_proposals(c.open(), c.ref, c.at(), remote=c.remote)
    _print(report, c.output, f"proposals @ {report.branch}", key="status")
    return c.exit(report)


@proposals.command("show")
@command("claim field repo ref now output remote")
def show_command(c: Common) -> int:
    """One proposal: its record and the commits on its branch."""
    report = lifecycle.show_proposal(c.open(), c.ref, c.claim, c.field, c.at(), remote=c.remote)
    show(report, c.output.value, View("proposal", _shown))
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
@command("claim field repo ref now reason output dry_run remote beyond_bounds")
def approve_command(c: Common, beyond_bounds: BeyondBounds = False) -> int:
    """Apply the proposal's claim edit to the authority branch (Feedback-Kind: approve), close its branch."""
    report = lifecycle.approve(
        c.open(), c.ref, c.claim, c.field, c.at(), reason=c.reason, dry_run=c.dry_run, remote=c.remote,
        beyond_bounds=beyond_bounds,
    )  # fmt: skip
    _print(report, c.output, "proposals approve")
    return c.exit(report)


proposals.command(
    "reject", help="Reject: recorded on the branch; the same change is not proposed again for 7 days."
)(field_act(lifecycle.reject, lambda report, output: _print(report, output, "proposals reject")))


@proposals.command("ack")
@command("claim field repo ref now output dry_run remote")
def ack_command(c: Common) -> int:
    """Acknowledge a MEDIUM proposal (within 8 h): autotune may then apply it inside the bounds."""
    report = lifecycle.acknowledge(
        c.open(), c.ref, c.claim, c.field, c.at(), dry_run=c.dry_run, remote=c.remote
    )
    _print(report, c.output, "proposals ack")
    return c.exit(report)


@proposals.command("expire")
@command("repo ref now output dry_run remote")
def expire_command(c: Common) -> int:
    """Close every pending proposal older than 7 days."""
    report = lifecycle.expire(c.open(), c.ref, c.at(), dry_run=c.dry_run, remote=c.remote)
    _print(report, c.output, "proposals expire")
    return c.exit(report)


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
