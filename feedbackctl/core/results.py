"""What a command did, as typed values: built by the patterns, shown by render.py.

A ``Report`` carries what every command has (decisions, problems, commits,
events); what only one command has is its typed ``result`` (``ResetResult``,
``AutotuneResult``, ...). Each result writes its own JSON keys, in the order
the report's JSON has always had them (docs/cli.md: the JSON schema is a
contract), so ``render.report_json`` stays one function for every command.
Nothing here prints or reads git.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from feedbackctl.core.models import Claim, Decision
from feedbackctl.errors import ClaimError, FeedbackError

# The version of every JSON document the commands print (README, "Commands").
JSON_SCHEMA_VERSION = 1


@dataclass
class Problem:
    """A claim (or file) that could not be processed; the others still are."""

    where: str
    message: str

    @staticmethod
    def of(error: FeedbackError, claim: Claim | None = None) -> Problem:
        """With the claim, the line starts where the user fixes it: ``path:line: claim: ...``."""
        where = error.claim if isinstance(error, ClaimError) else ""
        return Problem(where, str(error) if claim is None else f"{located(claim, str(error))}: {error}")


_FIELD = re.compile(r"\bspec\.([A-Za-z_][A-Za-z0-9_]*)")


def located(claim: Claim, message: str) -> str:
    """``path:line`` of the field the message names (its own file for a rendered value), or the path."""
    m = _FIELD.search(message)
    loc = claim.locations.get(f"spec.{m.group(1)}") if m else None
    return f"{loc.path}:{loc.line}" if loc is not None else claim.path


class Cost(Protocol):
    """What a run's metric reads cost (``sources.base.MetricsCost``)."""

    def json(self) -> dict[str, int | float]: ...


class Result(Protocol):
    """One command's own part of its report: the JSON keys after the common ones."""

    def json(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=Result)


@dataclass
class Report:
    """What one command did: decisions, problems, commits and events, and its own result."""

    command: str
    now: datetime
    branch: str | None = None
    commit: str | None = None
    decisions: Sequence[Decision] = field(default_factory=list)  # analyze: packed per batch, never whole
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    commits: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    dry_run: bool = False
    metrics_cost: Cost | None = None  # analyze, propose, autotune: the first key after the common ones
    result: Result | None = None

    @property
    def changed(self) -> bool:
        return bool(self.commits) or any(d.changes_value for d in self.decisions)

    def result_as(self, kind: type[R]) -> R:
        """The command's result, of the type its command makes (a programming error otherwise)."""
        if not isinstance(self.result, kind):
            raise TypeError(f"{self.command}: expected a {kind.__name__}, got {type(self.result).__name__}")
        return self.result

    def extra_json(self) -> dict[str, Any]:
        """The keys that follow the common ones in the report's JSON."""
        out: dict[str, Any] = {}
        if self.metrics_cost is not None:
            out["metricsCost"] = self.metrics_cost.json()
        if self.result is not None:
            out |= self.result.json()
        return out


def _present(pairs: dict[str, Any]) -> dict[str, Any]:
    """Keys a command set in this run (an unset one is absent from the JSON, as it always was)."""
    return {k: v for k, v in pairs.items() if v is not None}


@dataclass
class ProposalsResult:
    """propose, proposals list/approve/reject/ack/expire: one entry per proposal branch touched."""

    proposals: list[dict[str, Any]] | None = None
    passed_over: list[dict[str, Any]] | None = None  # propose: changes left to autotune or held

    def json(self) -> dict[str, Any]:
        return _present({"proposals": self.proposals, "passedOver": self.passed_over})


@dataclass
class ProposalShown:
    """proposals show: the entry, its ConfigurationProposal record and the branch's commits."""

    proposal: dict[str, Any]
    record: dict[str, Any] | None
    chain: list[dict[str, Any]]

    def json(self) -> dict[str, Any]:
        # "commits" takes the common key's place: the branch's commits are what show lists.
        return {"proposal": self.proposal, "record": self.record, "commits": self.chain}


@dataclass
class AutotuneResult:
    attempts: int | None = None  # compare-and-swap attempts the run took
    remote: str | None = None  # --push: the remote written to
    summary: dict[str, int] | None = None  # decisions per status

    def json(self) -> dict[str, Any]:
        return _present({"attempts": self.attempts, "remote": self.remote, "summary": self.summary})


@dataclass
class ResetResult:
    resets: list[dict[str, Any]]

    def json(self) -> dict[str, Any]:
        return {"resets": self.resets}


@dataclass
class ObserveResult:
    observations: int

    def json(self) -> dict[str, Any]:
        return {"observations": self.observations}


@dataclass
class ReviewResult:
    reviewed_by: str | None = None  # the review that already closed the capture
    reviews: str | None = None  # the capture this review closed

    def json(self) -> dict[str, Any]:
        return _present({"reviewedBy": self.reviewed_by, "reviews": self.reviews})


@dataclass
class FlapResult:
    """unfreeze: the field's flap status when the command ran."""

    claim: str
    field: str
    flapping: bool
    percent_state_change: float
    reversals: int

    def json(self) -> dict[str, Any]:
        return {
            "flap": {
                "claim": self.claim,
                "field": f"spec.{self.field}",
                "flapping": self.flapping,
                "percentStateChange": round(self.percent_state_change, 2),
                "reversals": self.reversals,
            }
        }
