"""``feedbackctl demo``: the main job on embedded example data.

Each pattern's command module may expose ``demo_step(layout, now) -> int``;
the demo runs them in ``DEMO_STEPS`` order on one scratch repo.
"""

from __future__ import annotations

import importlib
import importlib.util
from datetime import datetime
from typing import Annotated

import typer

from feedbackctl.authority.snapshot import open_repo
from feedbackctl.clock import parse_instant
from feedbackctl.demo import DEMO_NOW, DemoLayout, build
from feedbackctl.patterns.recommend import analyze
from feedbackctl.render import print_report, stdout

DEMO_STEPS = ("demo", "autotune", "propose", "drift", "dashboard")


def demo_step(layout: DemoLayout, now: datetime) -> int:
    out = stdout()
    out.print("[bold]analyze --write[/] — what the signals say; advisory sidecars, the claims untouched")
    report = analyze(
        open_repo(layout.repo), None, str(layout.metrics), now, write_sidecars=True, dry_run=False
    )
    print_report(report, "table", title="feedbackctl analyze --write")
    return 1 if report.problems else 0


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
    out.print(f"[bold]Metric fixtures:[/] {layout.metrics}  [bold]evaluated at:[/] {DEMO_NOW}")
    rc = 0
    n = 0
    for name in DEMO_STEPS:
        module = f"feedbackctl.commands.{name}"
        if importlib.util.find_spec(module) is None:
            continue
        step = getattr(importlib.import_module(module), "demo_step", None)
        if step is None:
            continue
        n += 1
        out.print(f"\n[bold]{n}.[/]", end=" ")
        rc = max(rc, step(layout, now))
    out.print("\n[bold]Try next:[/]")
    base = f"--repo {layout.repo} --metrics {layout.metrics} --now {DEMO_NOW}"
    out.print(f"  feedbackctl analyze {base} --output json")
    out.print(f"  git -C {layout.repo} log --format='%h %s%n%(trailers)'")
    page = layout.root / "dashboard" / "index.html"
    if page.is_file():
        out.print(f"  feedbackctl dashboard {base} --out {page.parent}")
        out.print(f"\n[bold]Review dashboard:[/] {page}")
    return rc


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
