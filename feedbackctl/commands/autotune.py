"""``feedbackctl autotune``: bounded auto-tune for cron (Pattern 2)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from feedbackctl.authority.snapshot import open_repo
from feedbackctl.commands.options import Common, command
from feedbackctl.core.results import AutotuneResult, Report
from feedbackctl.demo import DemoLayout
from feedbackctl.patterns.autotune import APPLIED, NEEDS_PROPOSAL, Outcomes, RunOptions, run_autotune
from feedbackctl.render import NARROW_BELOW, View, report_json, show, stdout

_STATUS_STYLE = {APPLIED: "green", "would-apply": "green", NEEDS_PROPOSAL: "yellow", "blocked": "red"}


def outcomes_json(out: Outcomes) -> dict[str, Any]:
    """The report's JSON, each decision with its status (applied, blocked, ...)."""
    data = report_json(out.report)
    for d, item in zip(out.report.decisions, data["decisions"], strict=True):
        item["status"] = out.status_of(d)
    data["needsProposal"] = [e for e in out.report.events if e.get("type") == "needs-proposal"]
    return data


def outcomes_table(out: Outcomes, title: str, width: int | None = None) -> Table:
    narrow = width is not None and width < NARROW_BELOW  # the layout decisions_table uses
    table = Table(title=title, title_justify="left", expand=narrow)
    if narrow:
        for col, ratio in (("claim / field", 3), ("change", 2), ("status", 2), ("why / blocked by", 5)):
            table.add_column(col, overflow="fold", ratio=ratio)
    else:
        for col in ("claim", "field", "current → target", "status", "risk", "why / blocked by"):
            table.add_column(col, overflow="fold")
    for d in out.report.decisions:
        arrow = "-" if d.current is None else str(d.current)
        if d.recommended is not None and d.recommended != d.current:
            arrow += f" → {d.recommended}"
            if d.uncapped not in (None, d.recommended):
                arrow += f" (uncapped {d.uncapped})"
        status = out.status_of(d)
        style = _STATUS_STYLE.get(status, "dim")
        shown = f"[{style}]{status}[/]"
        if narrow:
            table.add_row(f"{d.claim}\n{d.field}", arrow, shown + (f"\n{d.risk}" if d.risk else ""), d.reason)
        else:
            table.add_row(d.claim, d.field, arrow, shown, d.risk or "-", d.reason)
    return table


def outcomes_view(out: Outcomes) -> View:
    r = out.report
    where = f"{r.branch} @ {r.commit[:10] if r.commit else '?'}"

    def body(r: Report, console: Console, title: str) -> None:
        console.print(outcomes_table(out, title, console.width))

    def after(r: Report, console: Console, title: str) -> None:
        counts = r.result_as(AutotuneResult).summary or {}
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        console.print(f"{len(r.decisions)} decisions: {summary or 'none'}", markup=False)

    title = f"feedbackctl autotune {where}{' (dry run)' if r.dry_run else ''}"
    return View(title, body, after, json=lambda _: outcomes_json(out))


def print_outcomes(out: Outcomes, output: str) -> None:
    show(out.report, output, outcomes_view(out))


@command("repo ref metrics now dry_run push remote output detailed_exitcode shard")
def autotune_command(
    c: Common,
    remote: Annotated[
        str | None,
        typer.Option("--remote", help="Remote for --push (default: the branch's upstream, else origin)."),
    ] = None,
) -> int:
    """Apply bounded, guarded changes to claims that opt in with spec.autoTune (Pattern 2)."""
    opts = RunOptions(dry_run=c.dry_run, push=c.push, remote=remote, shard=c.shards())
    out = run_autotune(c.open(), c.ref, c.metrics, c.at(), opts)
    print_outcomes(out, c.output.value)
    return c.exit(out.report)


def demo_step(layout: DemoLayout, now: datetime) -> int:
    """Auto-tune the demo repo: prod's memory goes 256 -> 384, one commit with trailers."""
    console = stdout()
    console.print(
        "[bold]autotune[/] — claims that opt in with spec.autoTune change one step, inside human bounds"
    )
    repo = open_repo(layout.repo)
    out = run_autotune(repo, None, str(layout.metrics), now)
    print_outcomes(out, "table")
    for c in out.report.commits:
        if c["sha"] == "(dry-run)":
            continue
        text = repo.show_commit(c["sha"])
        console.print(text.rstrip("\n"), markup=False, highlight=False)
        diff = repo.show_patch(c["sha"])
        console.print(diff.rstrip("\n"), markup=False, highlight=False)
    return 1 if out.report.problems else 0


def register(app: typer.Typer) -> None:
    app.command("autotune")(autotune_command)
