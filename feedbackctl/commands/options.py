"""Option types shared by the repo-reading commands (docs/contracts.md)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from feedbackctl.core.results import Report
from feedbackctl.errors import EXIT_CHANGES, EXIT_OK, EXIT_RUNTIME


class Output(StrEnum):
    table = "table"
    json = "json"


Repo = Annotated[str, typer.Option("--repo", help="Any path inside a git work tree, or a bare repo.")]
Ref = Annotated[
    str | None, typer.Option("--ref", help="Authority branch (default: the repo's current branch).")
]
Metrics = Annotated[
    str | None,
    typer.Option("--metrics", help="A metric fixtures directory, or 'cloudwatch'."),
]
Now = Annotated[
    str | None, typer.Option("--now", help="Evaluation time, ISO-8601 (default: the real clock).")
]
OutputOpt = Annotated[Output, typer.Option("--output", help="table for people, json for scripts.")]


# The acts on one claim field (proposals approve|reject|ack, unfreeze, recommendations).
Claim = Annotated[str, typer.Argument(help="Claim metadata.name")]
Field = Annotated[str, typer.Argument(help="Field, e.g. lambdaMemory")]
Reason = Annotated[str, typer.Option("--reason", help="Why, recorded in the commit.")]

RemoteOpt = Annotated[
    str | None,
    typer.Option(
        "--remote",
        help="Act on this remote: fetch it first, push the act with a lease "
        "(default: the authority branch's upstream).",
    ),
]


def switch(name: str, help: str) -> Any:
    """A boolean option as an on/off pair (``--write/--no-write``), shown without a value.

    A flag that looked like it took ``<bool>`` invited ``--write true``; the pair says
    what it is, and lets a wrapper script turn a default-on flag off explicitly.
    """
    on, off = (name, f"no-{name}") if not name.startswith("no-") else (name, name.removeprefix("no-"))
    return typer.Option(f"--{on}/--{off}", help=help, metavar="")


DryRun = Annotated[bool, switch("dry-run", "Decide and report; write nothing.")]
Detailed = Annotated[bool, switch("detailed-exitcode", "Exit 3 when changes were made or are recommended.")]
Push = Annotated[bool, switch("push", "Push to the remote with an explicit-SHA lease.")]


def exit_code(report: Report, detailed: bool) -> int:
    if report.problems:
        return EXIT_RUNTIME
    if detailed and report.changed:
        return EXIT_CHANGES
    return EXIT_OK


ShardOpt = Annotated[
    str | None,
    typer.Option(
        "--shard", help="Only the claims of hash partition i/n (0 <= i < n), for sharded cron jobs."
    ),
]
