"""``feedbackctl demo``: the main job on embedded example data."""

from __future__ import annotations

from typing import Annotated

import typer

from feedbackctl.authority.snapshot import open_repo
from feedbackctl.clock import parse_instant
from feedbackctl.demo import DEMO_NOW, build
from feedbackctl.patterns.recommend import analyze
from feedbackctl.render import print_report, stdout


def demo_command(
    dir: Annotated[
        str | None, typer.Option("--dir", help="Create the scratch repo here (new or empty).")
    ] = None,
) -> int:
    """Create a scratch config repo from the embedded example and run the patterns on it."""
    layout = build(dir)
    out = stdout()
    now = parse_instant(DEMO_NOW)
    out.print(f"[bold]Scratch config repo:[/] {layout.repo} (origin: {layout.origin})")
    out.print(f"[bold]Metric fixtures:[/] {layout.metrics}  [bold]evaluated at:[/] {DEMO_NOW}\n")
    out.print("[bold]1. analyze[/] — what the signals say (advisory, nothing written)")
    report = analyze(
        open_repo(layout.repo), None, str(layout.metrics), now, write_sidecars=True, dry_run=False
    )
    print_report(report, "table", title="feedbackctl analyze --write")
    out.print("\n[bold]Try next:[/]")
    base = f"--repo {layout.repo} --metrics {layout.metrics} --now {DEMO_NOW}"
    out.print(f"  feedbackctl analyze {base} --output json")
    out.print(f"  git -C {layout.repo} log -1 --format='%(trailers)'")
    return 1 if report.problems else 0


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
