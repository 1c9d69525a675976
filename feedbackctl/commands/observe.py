"""``feedbackctl observe --source NAME [FILE|-]``: observations from outside agents."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from feedbackctl.commands.options import Common, command
from feedbackctl.errors import UsageError
from feedbackctl.patterns.observe import observe
from feedbackctl.render import print_report

MAX_INPUT_BYTES = 10 * 1024 * 1024


def _read(file: str) -> tuple[bytes, str]:
    if file == "-":
        if sys.stdin.isatty():
            raise UsageError("no observations: pass a JSON or YAML FILE, or pipe them on stdin")
        data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        where = "stdin"
    else:
        path = Path(file)
        if not path.is_file():
            raise UsageError(f"{file}: no such file; pass a JSON or YAML file of observations, or -")
        data = path.read_bytes()[: MAX_INPUT_BYTES + 1]
        where = file
    if len(data) > MAX_INPUT_BYTES:
        limit = MAX_INPUT_BYTES // 1024 // 1024
        raise UsageError(f"{where}: more than {limit} MB of observations; split them")
    return data, where


@command("source file repo ref now output dry_run")
def observe_command(
    c: Common,
    source: Annotated[
        str, typer.Option("--source", help="A registered feedback source of type push (sources.yaml).")
    ],
    file: Annotated[str, typer.Argument(help="JSON or YAML observations; - reads stdin.")] = "-",
) -> int:
    """Record observations from an outside agent as recommendations (never auto-tune)."""
    text, where = _read(file)
    report = observe(c.open(), c.ref, source, text, where, c.at(), dry_run=c.dry_run)
    print_report(report, c.output.value, title=f"feedbackctl observe --source {source} @ {report.branch}")
    return c.exit(report)


def register(app: typer.Typer) -> None:
    app.command("observe")(observe_command)
