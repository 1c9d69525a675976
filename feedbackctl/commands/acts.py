"""One command body for the acts on one claim field that take the same options.

``proposals reject`` and ``unfreeze`` read the same options (a claim, a field,
the repo, ``--reason``, ``--dry-run``, ``--remote``) and differ only in the act
and how its report is shown.
"""

from __future__ import annotations

from collections.abc import Callable

from feedbackctl.commands.options import Common, Output, command
from feedbackctl.core.results import Report

# (repo, ref, claim, field, now, *, reason, dry_run, remote) -> what the act did
Act = Callable[..., Report]


def field_act(act: Act, show: Callable[[Report, Output], None]) -> Callable[..., int]:
    """The typer command for ``act``: its options, the act, the report shown, the exit code."""

    @command("claim field repo ref now reason output dry_run remote")
    def act_command(c: Common) -> int:
        report = act(
            c.open(), c.ref, c.claim, c.field, c.at(), reason=c.reason, dry_run=c.dry_run, remote=c.remote
        )
        show(report, c.output)
        return c.exit(report)

    return act_command
