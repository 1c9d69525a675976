"""The shell around staging validation: pairings, evidence and the audit check.

Reads what the pure core (``core/validation.py``) judges: which claim
validates which, the validating claim's history and metrics as gathered for
the run, and the commit a trailer names. See docs/validation.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.history import Histories, load_histories
from feedbackctl.authority.snapshot import Snapshot, load_snapshot
from feedbackctl.core.decide import ClaimInputs
from feedbackctl.core.models import Claim, Decision, Note, Scalar, Series
from feedbackctl.core.tuning import parse_autotune
from feedbackctl.core.validation import (
    RULE,
    TRAILER,
    StageEvidence,
    Validation,
    assess,
    pair,
    pairings,
    parse_ref,
    ran_before,
    same,
)
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
    try:
        return repo.first_parent_before(commit, at)
    except FeedbackError:
        return None


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


# --- audit verify -------------------------------------------------------------


def _value_at(repo: GitRepo, branch: str, sha: str, claim: str, field_name: str) -> tuple[bool, Scalar]:
    """(the claim exists at sha, its spec value there)."""
    snap = load_snapshot(repo, branch, at=sha)
    c = snap.claim(claim)
    if c is None:
        return False, None
    v = c.value(field_name)
    return True, v if isinstance(v, int | float | str | bool) else None


def validated_in_problem(
    repo: GitRepo, parent: Snapshot, at: datetime, group: Mapping[str, str]
) -> str | None:
    """What is wrong with an auto-tune's ``Feedback-Validated-In``, from history; None when it holds.

    The trailer must be there when the claim was in a later stage at the
    parent, must name the claim the pairing gives, and that claim must have
    held the ``Feedback-To`` value from the named commit for the soak, before
    the auto-tune. (Guardrail health during the soak needs the metrics of the
    time and is not re-proven here.)
    """
    claim = parent.claim(group.get("Feedback-Claim", ""))
    validation = parent.settings.config.validation
    if claim is None or validation is None:
        return None
    field_name = group.get("Feedback-Field", "").removeprefix("spec.")
    raw = group.get(TRAILER)
    try:
        expected = pair(claim, {c.name: c for c in parent.claims}, validation)
    except ClaimError as e:
        return f"auto-tune of a claim that cannot pair with an earlier stage: {e}"
    if expected is None:
        return f"{TRAILER} on a claim in the first stage" if raw else None
    if raw is None:
        return f"auto-tune in stage {claim.environment} without {TRAILER} (validating claim {expected})"
    ref = parse_ref(raw)
    if ref is None:
        return f"{TRAILER}: '{raw}' is not <claim>@<commit>"
    name, commit = ref
    if name != expected:
        return f"{TRAILER} names {name}, but the validating claim is {expected}"
    try:
        start = repo.resolve(commit)
    except FeedbackError:
        return f"{TRAILER}: commit {commit} does not exist"
    if not repo.is_ancestor(start, parent.commit):
        return f"{TRAILER}: {commit[:10]} is not in the history before the auto-tune"
    want = group.get("Feedback-To", "")
    began = repo.log(start, max_count=1)[0].at
    exists, value = _value_at(repo, parent.branch, start, name, field_name)
    if not exists or not same(value, _scalar(want)):
        return f"{name} did not run {field_name} {want} at {start[:10]} (it ran {value})"
    # The run ends at the first later commit where the value differs.
    files = sorted(_files_of(parent, name))
    ended = at
    for rec in reversed(repo.log(f"{start}..{parent.commit}", paths=files)):
        held, value = _value_at(repo, parent.branch, rec.sha, name, field_name)
        if not held or not same(value, _scalar(want)):
            ended = rec.at
            break
    minutes = (ended - began).total_seconds() / 60
    if minutes < validation.soak_minutes or at - began < timedelta(minutes=validation.soak_minutes):
        return (
            f"{name} held {field_name} {want} for {minutes:.0f}m from {start[:10]}, "
            f"less than the {validation.soak_minutes}m soak"
        )
    return None


def _files_of(snapshot: Snapshot, claim: str) -> set[str]:
    c = snapshot.claim(claim)
    return {c.path, *(loc.path for loc in c.locations.values())} if c is not None else set()


def _scalar(text: str) -> Scalar:
    try:
        f = float(text)
    except ValueError:
        return text
    return int(f) if f.is_integer() else f


# --- propose and approve ---------------------------------------------------------

UNVALIDATED = "not validated in an earlier stage"
UNVALIDATED_TAG = "unvalidated"


def with_validation(
    snapshot: Snapshot, histories: Histories, inputs: Sequence[ClaimInputs], decisions: Sequence[Decision],
    now: datetime,
) -> list[Decision]:
    """Each proposed change of a later stage, with its validation evidence (or its absence) as a note."""
    stages = stages_for(snapshot, now, opted_in_only=False)
    if not stages.pairs:
        return list(decisions)
    series = {i.claim.name: i.series for i in inputs}
    found = evidence(snapshot, stages, histories, series, now)
    policy = snapshot.settings.policy
    out = []
    for d in decisions:
        ev = found.get(d.claim)
        if ev is not None and d.changes_value:
            verdict = assess(ev, d.field, d.recommended, policy, now)
            detail = verdict.detail if verdict.validated else f"{UNVALIDATED}: {verdict.detail}"
            d = replace(d, notes=d.notes + (Note(RULE, "info", detail),), validated_in=verdict.ref)
        out.append(d)
    return out


def validation_line(d: Decision) -> str | None:
    """The staging-validation evidence of a decision, for a proposal's rationale."""
    note = next((n for n in d.notes if n.rule == RULE and n.effect == "info"), None)
    return f"staging validation: {note.detail}" if note is not None else None


def with_validation_rationale(rationale: str, d: Decision) -> str:
    line = validation_line(d)
    if not line:
        return rationale
    return f"{rationale}; {line}" if rationale else line


def approval_tags(summary: str) -> tuple[str, ...]:
    """A human approving a value no earlier stage validated: the approval says so."""
    return (UNVALIDATED_TAG,) if UNVALIDATED in summary else ()


# --- drift ---------------------------------------------------------------------------


def never_ran(
    snapshot: Snapshot, captured: Sequence[tuple[str, str, Scalar]], now: datetime
) -> set[tuple[str, str]]:
    """The ``(claim, field)`` of captures in a later stage whose value its earlier stage never ran.

    Reads the validating claims' histories over the history window only when
    there is such a capture.
    """
    stages = stages_for(snapshot, now, opted_in_only=False)
    later = [(c, f, v) for c, f, v in captured if c in stages.pairs]
    if not later or stages.validation is None:
        return set()
    earlier = [c for c in snapshot.claims if c.name in {stages.pairs[c] for c, _, _ in later}]
    histories = load_histories(snapshot.repo, snapshot.commit, earlier, snapshot.settings.policy, now)
    found = evidence(snapshot, replace(stages, anchor=None), histories, {}, now)
    return {(c, f) for c, f, v in later if c in found and not ran_before(found[c], f, v, now)}
