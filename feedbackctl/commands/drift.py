"""``feedbackctl drift``: capture live state that differs from git (Pattern 3)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from feedbackctl.authority.gitrepo import branch_name_problem
from feedbackctl.authority.snapshot import open_repo
from feedbackctl.commands.history import history_table
from feedbackctl.commands.options import Common, command
from feedbackctl.core.drift import DriftResult, Finding, Status
from feedbackctl.core.results import Report
from feedbackctl.demo import DemoLayout
from feedbackctl.errors import EXIT_CHANGES, EXIT_OK, EXIT_RUNTIME, UsageError
from feedbackctl.notify import check_webhook_url
from feedbackctl.patterns.drift import DriftRequest, drift
from feedbackctl.patterns.history_view import HistoryFilter, read_history
from feedbackctl.render import View, show, stdout, terminal_safe


class Mode(StrEnum):
    capture = "capture"
    report = "report"


Live = Annotated[
    str,
    typer.Option("--live", help="A live-state file (YAML/JSON: claim -> {field: value}), or 'aws'."),
]
ModeOpt = Annotated[Mode, typer.Option("--mode", help="capture: commit live values; report: only report.")]
Branch = Annotated[
    str | None,
    typer.Option("--branch", help="Capture to this review branch (created from the authority branch)."),
]
Webhook = Annotated[
    str | None, typer.Option("--notify-webhook", help="POST one JSON event per capture to this URL.")
]

_STYLE = {
    Status.CAPTURED: "yellow",
    Status.WOULD_CAPTURE: "yellow",
    Status.DRIFT: "yellow",
    Status.ALREADY_CAPTURED: "dim",
    Status.PENDING_SYNC: "cyan",
    Status.IGNORED: "dim",
    Status.UNMANAGED: "dim",
}


def drift_table(findings: list[Finding], title: str) -> Table:
    table = Table(title=terminal_safe(title), title_justify="left")
    for col in ("claim", "field", "git → live", "status", "tags / why", "commit"):
        table.add_column(col, overflow="fold")
    for f in findings:
        tags = "break-glass, requires-review" if f.status in (Status.CAPTURED, Status.WOULD_CAPTURE) else ""
        if f.out_of_bounds:
            tags += (", " if tags else "") + "out-of-bounds: " + "; ".join(f.out_of_bounds)
        why = ", ".join(x for x in (tags, f.detail) if x)
        style = _STYLE.get(f.status, "")
        table.add_row(
            terminal_safe(f.claim),
            terminal_safe(f"spec.{f.field}"),
            terminal_safe(f"{'-' if f.desired is None else f.desired} → {f.observed}"),
            f"[{style}]{f.status.value}[/]" if style else f.status.value,
            terminal_safe(why),
            terminal_safe((f.commit or "")[:10]),
        )
    return table


def _body(report: Report, out: Console, title: str) -> None:
    result = report.result_as(DriftResult)
    findings = result.findings or []
    if findings:
        out.print(drift_table(findings, title))
    out.print(f"{result.in_sync} observed field(s) match git; {result.differs} differ")


def _notified(report: Report, out: Console, title: str) -> None:
    for e in report.events:
        notify = e.get("notify")
        if notify and notify.get("status") == "sent":
            out.print(terminal_safe(f"notified {notify['webhook']} of {str(e['commit'])[:10]}"))


def drift_view(report: Report) -> View:
    result = report.result_as(DriftResult)
    where = f"{report.branch}@{(report.commit or '')[:8]}"
    return View(f"feedbackctl drift ({result.mode}) — {result.source} vs {where}", _body, _notified)


def print_drift(report: Report, output: str) -> None:
    show(report, output, drift_view(report))


def exit_code(report: Report, detailed: bool) -> int:
    if report.problems:
        return EXIT_RUNTIME
    if detailed and (report.commits or report.result_as(DriftResult).differs):
        return EXIT_CHANGES
    return EXIT_OK


@command("live repo ref now mode branch notify_webhook push output dry_run detailed_exitcode shard")
def drift_command(
    c: Common, live: Live, mode: ModeOpt = Mode.capture, branch: Branch = None, notify_webhook: Webhook = None
) -> int:
    """Capture live state that differs from git into the claims, tagged for review (Pattern 3)."""
    request = DriftRequest(
        live=live,
        mode=mode.value,
        branch=branch,
        webhook=check_webhook_url(notify_webhook) if notify_webhook else None,
        push=c.push,
        dry_run=c.dry_run,
        shard=c.shards(),
    )
    # git's own rules are checked (in its words) by ref_name below.
    if branch is not None and (problem := branch_name_problem(branch, git_rules=False)):
        raise UsageError(
            f"--branch '{branch}' is not a valid git ref name: it {problem}; choose another name"
        )
    handle = c.open()
    if branch:
        handle.ref_name(branch)  # a name git refuses is a usage error before any work
    report = drift(handle, c.ref, request, c.at())
    print_drift(report, c.output.value)
    return exit_code(report, c.detailed_exitcode)


def demo_step(layout: DemoLayout, now: datetime) -> int:
    """Break-glass: prod's timeout was raised by hand during an incident; drift captures it."""
    if not layout.live.exists():
        return 0
    out = stdout()
    out.print(
        f"[bold]drift --live {layout.live.name}[/] — reality wins: a hand-made change is captured "
        "into git, tagged for post-incident review, never reverted"
    )
    repo = open_repo(layout.repo)
    report = drift(repo, None, DriftRequest(live=str(layout.live)), now)
    print_drift(report, "table")
    pending = read_history(repo, None, HistoryFilter(tag="requires-review"))
    out.print(f"\n[bold]history --pending-review[/] — {len(pending.entries)} capture(s) await review")
    out.print(history_table(pending.entries, "awaiting review"))
    if pending.entries:
        out.print(
            f"  close one with: feedbackctl review {pending.entries[0].commit[:10]} --repo {layout.repo} "
            "--note 'incident reviewed: keep 60s'"
        )
    return 1 if report.problems else 0


def register(app: typer.Typer) -> None:
    app.command("drift")(drift_command)
