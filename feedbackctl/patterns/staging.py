"""The shell around staging validation: pairings, evidence and the audit check.

Reads what the pure core (``core/validation.py``) judges: which claim
validates which, the validating claim's history and metrics as gathered for
the run, and the commit a trailer names. See docs/validation.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.history import Histories
from feedbackctl.authority.snapshot import Snapshot
from feedbackctl.core.models import Claim, Decision, Series
from feedbackctl.core.tuning import parse_autotune
from feedbackctl.core.validation import TRAILER, StageEvidence, Validation, pairings
from feedbackctl.errors import ClaimError, FeedbackError


def _opted_in(claim: Claim) -> bool:
    try:
        return parse_autotune(claim).enabled
    except ClaimError:
        return False  # reported by the run's own claim checks


@dataclass(frozen=True)
class Stages:
    """One run's pairings: later claim -> validating claim, and the claims that cannot pair."""

    validation: Validation | None = None
    pairs: Mapping[str, str] = field(default_factory=dict)
    errors: Mapping[str, ClaimError] = field(default_factory=dict)
    anchor: str | None = None

    @property
    def validators(self) -> set[str]:
        return set(self.pairs.values())


def anchor_commit(repo: GitRepo, commit: str, at: datetime) -> str | None:
    """The newest first-parent commit at or before ``at`` (None: history starts later)."""
    when = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +0000")
    try:
        out = repo.git("rev-list", "-1", "--first-parent", f"--before={when}", commit, "--")
    except FeedbackError:
        return None
    sha = out.decode().strip()
    return sha or None


def stages_for(snapshot: Snapshot, now: datetime, *, opted_in_only: bool = True) -> Stages:
    """Pairings of the snapshot's claims (autotune: only those that opt in can act)."""
    validation = snapshot.settings.config.validation
    if validation is None:
        return Stages()
    only = {c.name for c in snapshot.claims if _opted_in(c)} if opted_in_only else None
    pairs, errors = pairings(snapshot.claims, validation, only=only)
    anchor = None
    if pairs:
        soak_start = now - timedelta(minutes=validation.soak_minutes)
        anchor = anchor_commit(snapshot.repo, snapshot.commit, soak_start)
    return Stages(validation, pairs, errors, anchor)


def evidence(
    snapshot: Snapshot,
    stages: Stages,
    histories: Histories,
    series: Mapping[str, Mapping[str, Series]],
    now: datetime,
) -> dict[str, StageEvidence]:
    """The validating claim's evidence for every paired claim."""
    if stages.validation is None:
        return {}
    out: dict[str, StageEvidence] = {}
    for later, earlier in stages.pairs.items():
        claim = snapshot.claim(earlier)
        if claim is None:
            continue
        cov = histories.coverage.get(earlier)
        tuning = parse_autotune(claim) if _opted_in(claim) else None
        out[later] = StageEvidence(
            claim=earlier,
            spec=claim.spec,
            histories=histories.for_claim(earlier),
            series=series.get(earlier, {}),
            # Nothing read by value for it: no soak is credited.
            known_since=cov.since if cov is not None else now,
            soak_minutes=stages.validation.soak_minutes,
            anchor=stages.anchor,
            opted_in=tuning is not None,
            allows=tuple(tuning.bounds) if tuning is not None else (),
        )
    return out


def validated_trailer(trailer: dict[str, str], d: Decision) -> dict[str, str]:
    """The change's trailers, with the earlier stage that validated its value."""
    if d.validated_in:
        trailer[TRAILER] = d.validated_in
    return trailer
