"""``feedbackctl dashboard``: the review page (static HTML) or its data model (JSON)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from feedbackctl.authority.snapshot import open_repo
from feedbackctl.clock import now_or
from feedbackctl.commands.options import Metrics, Now, Output, OutputOpt, Ref, Repo
from feedbackctl.dashboard import dashboard, write_page
from feedbackctl.demo import DemoLayout
from feedbackctl.errors import EXIT_OK, EXIT_RUNTIME
from feedbackctl.render import print_json, stderr, stdout


def dashboard_command(
    out: Annotated[str, typer.Option("--out", help="Write DIR/index.html (created if missing).")],
    repo: Repo = ".",
    ref: Ref = None,
    remote: Annotated[
        str | None, typer.Option("--remote", help="Read proposal branches from this remote (fetched first).")
    ] = None,
    metrics: Metrics = None,
    now: Now = None,
    output: OutputOpt = Output.table,
) -> int:
    """One static page of what waits on a human: proposals, recommendations, captures, audit."""
    doc = dashboard(open_repo(repo), ref, now_or(now), remote=remote, metrics=metrics)
    page = write_page(doc, out)
    if output == Output.json:
        print_json(doc)
    else:
        c = doc["counts"]
        stdout().print(
            f"wrote {page}: {c['proposals']} pending proposal(s), {c['recommendations']} recommendation(s), "
            f"{c['captures']} capture(s) to review, {c['violations']} audit violation(s)",
            markup=False,
        )
    err = stderr()
    for p in doc["problems"]:
        err.print(f"error: {p}", markup=False)
    return EXIT_RUNTIME if doc["problems"] else EXIT_OK


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard_command)


def demo_step(layout: DemoLayout, now: datetime) -> int:
    out = stdout()
    out.print("[bold]dashboard[/] — one page of what waits on a human")
    doc = dashboard(open_repo(layout.repo), None, now, metrics=str(layout.metrics))
    page = write_page(doc, layout.root / "dashboard")
    out.print(f"  review dashboard: {page}", markup=False)
    return 1 if doc["problems"] else 0
