"""``feedbackctl dashboard``: the review page (static HTML) or its data model (JSON)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from feedbackctl.authority.snapshot import open_repo
from feedbackctl.commands.options import Common, Output, command
from feedbackctl.dashboard import dashboard, write_page
from feedbackctl.demo import DemoLayout
from feedbackctl.errors import EXIT_OK, EXIT_RUNTIME
from feedbackctl.render import print_json, stderr, stdout


@command("out repo ref remote metrics now output")
def dashboard_command(
    c: Common,
    out: Annotated[str, typer.Option("--out", help="Write DIR/index.html (created if missing).")],
    remote: Annotated[
        str | None, typer.Option("--remote", help="Read proposal branches from this remote (fetched first).")
    ] = None,
) -> int:
    """One static page of what waits on a human: proposals, recommendations, captures, audit."""
    doc = dashboard(c.open(), c.ref, c.at(), remote=remote, metrics=c.metrics)
    page = write_page(doc, out)
    if c.output == Output.json:
        print_json(doc)
    else:
        n = doc["counts"]
        stdout().print(
            f"wrote {page}: {n['proposals']} pending proposal(s), {n['recommendations']} recommendation(s), "
            f"{n['captures']} capture(s) to review, {n['violations']} audit violation(s)",
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
