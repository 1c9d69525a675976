"""One command body for the acts on one claim field that take the same options.

``proposals reject`` and ``unfreeze`` read the same options (a claim, a field,
the repo, ``--reason``, ``--dry-run``, ``--remote``) and differ only in the act
and how its report is shown.
"""

from __future__ import annotations

from collections.abc import Callable

from feedbackctl.authority.snapshot import open_repo
from feedbackctl.clock import now_or
from feedbackctl.commands.options import (
    Claim,
    DryRun,
    Field,
    Now,
    Output,
    OutputOpt,
    Reason,
    Ref,
    RemoteOpt,
    Repo,
    exit_code,
)
from feedbackctl.core.results import Report

# (repo, ref, claim, field, now, *, reason, dry_run, remote) -> what the act did
Act = Callable[..., Report]


def field_act(act: Act, show: Callable[[Report, Output], None]) -> Callable[..., int]:
    """The typer command for ``act``: its options, the act, the report shown, the exit code."""

    def command(
        claim: Claim,
        field: Field,
        repo: Repo = ".",
        ref: Ref = None,
        now: Now = None,
        reason: Reason = "",
        output: OutputOpt = Output.table,
        dry_run: DryRun = False,
        remote: RemoteOpt = None,
    ) -> int:
        report = act(
            open_repo(repo), ref, claim, field, now_or(now), reason=reason, dry_run=dry_run, remote=remote
        )
        show(report, output)
        return exit_code(report, False)

    return command
