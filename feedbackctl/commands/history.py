"""``feedbackctl history`` (the audit trail from trailers) and ``feedbackctl review``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer
from rich.table import Table

from feedbackctl.commands.options import Common, Output, command, switch
from feedbackctl.core.results import JSON_SCHEMA_VERSION
from feedbackctl.errors import UsageError
from feedbackctl.patterns.history_view import (
    REQUIRES_REVIEW,
    Entry,
    HistoryFilter,
    entry_json,
    parse_when,
    read_history,
    record_review,
)
from feedbackctl.render import print_json, print_report, stdout, terminal_safe


def _value(v: object) -> str:
    return "-" if v is None else str(v)


def history_table(entries: Sequence[Entry], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col in (
        "when (UTC)",
        "commit",
        "kind",
        "claim",
        "field",
        "from → to",
        "source",
        "tags / review",
        "by",
    ):
        table.add_column(col, overflow="fold")
    for e in entries:
        change = f"{_value(e.old)} → {_value(e.new)}" if (e.old, e.new) != (None, None) else ""
        tags = ", ".join(e.effective_tags)
        if e.reviewed_by:
            tags += f" ({e.reviewed_by[:8]})"
        if e.reviews:
            tags = f"reviews {e.reviews[:8]}"
        kind = f"[bold]{e.kind}[/]" if e.kind == "human" else e.kind
        if e.pending_review:
            kind = f"[yellow]{e.kind}[/]"
        table.add_row(
            f"{e.at:%Y-%m-%d %H:%M}",
            e.commit[:8],
            kind,
            *(  # all from commits anyone could have pushed
                terminal_safe(text)
                for text in (
                    e.claim or "-",
                    f"spec.{e.field}" if e.field else "-",
                    change,
                    e.source or "-",
                    tags,
                    e.author,
                )
            ),
        )
    return table


# history's filters; --since and --until take the same forms (parse_when)
_WHEN = "ISO-8601, or 7d / 24h / 90m before --now."
ClaimGlob = Annotated[str | None, typer.Option("--claim", help="Only this claim (glob).")]
FieldGlob = Annotated[str | None, typer.Option("--field", help="Only this field, e.g. lambdaMemory (glob).")]
Kinds = Annotated[
    list[str] | None, typer.Option("--kind", help="Only these kinds (auto-tune, drift-capture, human, ...).")
]
SourceGlob = Annotated[str | None, typer.Option("--source", help="Only this Feedback-Source (glob).")]
Tag = Annotated[str | None, typer.Option("--tag", help="Only changes with this tag, e.g. requires-review.")]
Since = Annotated[str | None, typer.Option("--since", help=_WHEN)]
Until = Annotated[str | None, typer.Option("--until", help=_WHEN)]
PendingReview = Annotated[
    bool, switch("pending-review", "Captures not yet reviewed (= --tag requires-review).")
]


@command("repo ref claim field kind source tag since until pending_review now output")
def history_command(
    c: Common,
    claim: ClaimGlob = None,
    field: FieldGlob = None,
    kind: Kinds = None,
    source: SourceGlob = None,
    tag: Tag = None,
    since: Since = None,
    until: Until = None,
    pending_review: PendingReview = False,
) -> int:
    """Every feedback-driven change (from Feedback-* trailers) and human edits of tuned fields."""
    at = c.at()
    kinds = tuple(k.strip() for raw in kind or () for k in raw.split(",") if k.strip())
    filt = HistoryFilter(
        claim=claim,
        field=field.removeprefix("spec.") if field else None,
        kinds=kinds,
        source=source,
        tag=REQUIRES_REVIEW if pending_review else tag,
        since=parse_when(since, at, "--since") if since else None,
        until=parse_when(until, at, "--until") if until else None,
    )
    history = read_history(c.open(), c.ref, filt)
    pending = sum(1 for e in history.entries if e.pending_review)
    if c.output == Output.json:
        print_json(
            {
                "schemaVersion": JSON_SCHEMA_VERSION,
                "command": "history",
                "branch": history.branch,
                "commit": history.commit,
                "pendingReview": pending,
                "entries": [entry_json(e) for e in history.entries],
            }
        )
        return 0
    out = stdout()
    out.print(history_table(history.entries, f"feedbackctl history @ {history.branch}"))
    out.print(
        f"{len(history.entries)} entr{'y' if len(history.entries) == 1 else 'ies'}; {pending} awaiting review"
    )
    return 0


Commit = Annotated[str, typer.Argument(help="The capture commit (sha) being reviewed.")]
Note = Annotated[str, typer.Option("--note", help="What the review concluded, recorded in the commit.")]
Keep = Annotated[
    bool, typer.Option("--keep", help="Accept the captured values as tested: reset stops undoing them.")
]
Revert = Annotated[
    bool, typer.Option("--revert", help="The captured values go: reset's next run moves them back.")
]
ReviewRemote = Annotated[
    str | None, typer.Option("--remote", help="Record the review there too (default: the branch's upstream).")
]


@command("commit repo ref note now output dry_run keep revert remote")
def review_command(
    c: Common,
    commit: Commit,
    note: Note = "",
    keep: Keep = False,
    revert: Revert = False,
    remote: ReviewRemote = None,
) -> int:
    """Record the post-incident review of a capture (a commit with Feedback-Kind: review)."""
    if keep and revert:
        raise UsageError("--keep and --revert contradict each other; pass one (or neither to only close it)")
    verdict = "keep" if keep else "revert" if revert else None
    report = record_review(
        c.open(), c.ref, commit, note, c.at(), dry_run=c.dry_run, verdict=verdict, remote=remote
    )
    print_report(report, c.output.value, title="review")
    return c.exit(report)


def register(app: typer.Typer) -> None:
    app.command("history")(history_command)
    app.command("review")(review_command)
