"""Option types shared by the repo-reading commands (docs/contracts.md)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, get_type_hints

import typer

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.shard import Shard, parse_shard
from feedbackctl.authority.snapshot import open_repo
from feedbackctl.clock import now_or
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


@dataclass(frozen=True)
class Common:
    """The options most commands share, handed to a command body as one value.

    A command that does not offer an option gets the field's default here, which
    is what the option's own default would have been.
    """

    claim: str = ""
    field: str = ""
    repo: str = "."
    ref: str | None = None
    metrics: str | None = None
    now: str | None = None
    output: Output = Output.table
    reason: str = ""
    dry_run: bool = False
    push: bool = False
    remote: str | None = None
    detailed_exitcode: bool = False
    shard: str | None = None

    def open(self) -> GitRepo:
        return open_repo(self.repo)

    def at(self) -> datetime:
        return now_or(self.now)

    def shards(self) -> Shard:
        return parse_shard(self.shard)

    def exit(self, report: Report) -> int:
        return exit_code(report, self.detailed_exitcode)


# How each Common field is declared to typer; the dataclass gives the defaults,
# except that claim and field are required arguments.
_DECLARED: dict[str, Any] = {
    "claim": Claim,
    "field": Field,
    "repo": Repo,
    "ref": Ref,
    "metrics": Metrics,
    "now": Now,
    "output": OutputOpt,
    "reason": Reason,
    "dry_run": DryRun,
    "push": Push,
    "remote": RemoteOpt,
    "detailed_exitcode": Detailed,
    "shard": ShardOpt,
}
_REQUIRED = ("claim", "field")
_DEFAULTS = {f.name: f.default for f in fields(Common)}
_KEYWORD = inspect.Parameter.KEYWORD_ONLY


def _shared(name: str) -> inspect.Parameter:
    default = inspect.Parameter.empty if name in _REQUIRED else _DEFAULTS[name]
    return inspect.Parameter(name, _KEYWORD, annotation=_DECLARED[name], default=default)


def command(layout: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Declare a command's options once: ``layout`` names them in ``--help`` order.

    A name in ``layout`` that the body does not declare is a shared option (a
    field of Common, declared as in ``_DECLARED``); the body's own parameters,
    after the Common it takes first, are placed where ``layout`` names them. A
    body that declares a shared name itself (``--remote`` with its own help)
    gets that value as a keyword and Common keeps the default. The typer
    command is a function with exactly the listed options, so ``--help`` shows
    what a hand-written signature would.
    """
    names = layout.split()

    def decorate(body: Callable[..., int]) -> Callable[..., int]:
        hints = get_type_hints(body, include_extras=True)
        own = {p.name: p for p in list(inspect.signature(body).parameters.values())[1:]}
        unknown = [n for n in names if n not in own and n not in _DECLARED]
        unplaced = [n for n in own if n not in names]
        if unknown or unplaced or len(set(names)) != len(names):
            raise TypeError(
                f"{body.__qualname__}: layout {layout!r} names unknown {unknown}, "
                f"leaves out {unplaced}, or repeats a name"
            )
        shared = [n for n in names if n not in own]
        params = [
            own[n].replace(kind=_KEYWORD, annotation=hints[n]) if n in own else _shared(n)
            for n in names
        ]

        def typer_command(**given: Any) -> int:
            common = Common(**{n: given.pop(n) for n in shared})
            return body(common, **given)

        typer_command.__signature__ = inspect.Signature(params, return_annotation=int)  # type: ignore[attr-defined]
        typer_command.__annotations__ = {p.name: p.annotation for p in params} | {"return": int}
        for attr in ("__name__", "__qualname__", "__module__", "__doc__"):
            setattr(typer_command, attr, getattr(body, attr))
        return typer_command

    return decorate
