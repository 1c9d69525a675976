"""Planning proposals: each candidate's branch, action, record and commit, before anything is written.

The proposal branches are the state (docs/propose.md): the record on a branch
says whether the same change is open, was rejected within the quiet period,
or was handed off to a human, and the limits on open and new proposals are
counted from them. A plan builds every commit in memory; patterns/propose.py
writes it in one fast-import stream and one ref transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from feedbackctl.authority.fastimport import NewCommit, read_objects
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.proposal_branches import (
    OPEN,
    BranchState,
    ProposalConfig,
    Status,
    branch_name,
    load_branches,
    mark_local_work,
    proposal_config,
    record_path,
    status_of,
    worktree_branches,
)
from feedbackctl.authority.shard import ALL, Shard
from feedbackctl.authority.snapshot import Snapshot
from feedbackctl.authority.writer import Plan, Staging, change_subject, proposal_trailer
from feedbackctl.core import guards
from feedbackctl.core import proposal as record
from feedbackctl.core.candidates import Candidate
from feedbackctl.core.models import Claim, Decision, Note, Outcome
from feedbackctl.core.policy import RISK_LEVELS, Policy
from feedbackctl.core.proposal import REVIEW_REASONS, Proposal
from feedbackctl.core.results import ProposalsResult, Report
from feedbackctl.core.risk import RiskAssessment, SchemaCheck, assess, claim_changes
from feedbackctl.core.rules import RuleId
from feedbackctl.core.schema import schema_check
from feedbackctl.errors import ClaimError
from feedbackctl.patterns import staging
from feedbackctl.patterns.inputs import Problem

NEW_WINDOW = timedelta(hours=1)


class Action(StrEnum):
    CREATED = "created"  # a new branch
    REOPENED = "reopened"  # a closed proposal's branch (merged, applied, rejected, expired) reused
    UPDATED = "updated"  # a new value, or a stale proposal replaced, on the same branch
    REBASED = "rebased"  # the same change regenerated on the moved authority branch
    UNCHANGED = "unchanged"  # the same proposal again: no commit
    HELD_BACK = "held-back"  # a limit on open or new proposals
    SUPPRESSED = "suppressed"  # rejected within 7 days
    HANDED_OFF = "handed-off"  # a human committed on the branch: never rewritten
    BLOCKED = "blocked"  # a policy (schema) check: never proposed
    SKIPPED = "skipped"  # the branch is checked out, or the claim cannot be edited


NEW = frozenset({Action.CREATED, Action.REOPENED})
WRITES = NEW | {Action.UPDATED, Action.REBASED}


@dataclass
class Item:
    """One candidate's way through planning and writing."""

    candidate: Candidate
    claim: Claim
    branch: str
    risk: RiskAssessment
    existing: BranchState | None = None
    status: Status | None = None
    action: Action = Action.CREATED
    detail: str = ""
    proposal: Proposal | None = None
    commit: NewCommit | None = None
    sha: str | None = None
    pushed: bool | None = None

    @property
    def decision(self) -> Decision:
        return self.candidate.decision

    def json(self) -> dict[str, Any]:
        d = self.decision
        return {
            "claim": d.claim,
            "field": f"spec.{d.field}",
            "branch": self.branch,
            "action": self.action.value,
            "detail": self.detail,
            "from": d.current,
            "to": d.recommended,
            "reviewReason": self.candidate.reason,
            "risk": None if self.risk.blocked else self.risk.level,
            "riskRationale": None if self.risk.blocked else self.risk.rationale,
            "policyResult": self.risk.policy_result,
            "previousStatus": self.status.value if self.status else None,
            "commit": self.sha
            or (self.existing.tip if self.existing and self.action == Action.UNCHANGED else None),
            "pushed": self.pushed,
        }


# --- planning ----------------------------------------------------------------------------


def _tolerance(policy: Policy, field_name: str) -> float:
    fp = policy.fields.get(field_name)
    return fp.step if fp is not None else 0.0


def _classify(item: Item, policy: Policy, now: datetime, snapshot: Snapshot, checked_out: set[str]) -> None:
    d, s = item.decision, item.existing
    if item.risk.blocked:
        item.action, item.detail = Action.BLOCKED, item.risk.policy_result
        return
    if f"refs/heads/{item.branch}" in checked_out:
        item.action, item.detail = (
            Action.SKIPPED,
            "checked out in a work tree; proposal branches are never moved",
        )
        return
    if s is None:
        item.action = Action.CREATED
        return
    assert item.status is not None
    status, why = item.status, item.detail
    p = s.proposal
    if status in (Status.HANDED_OFF, Status.INVALID) or p is None:
        item.action = Action.HANDED_OFF
        return
    if status == Status.REJECTED:
        tolerance = _tolerance(policy, d.field)
        if record.silenced_by(p, d.current, d.recommended, now, tolerance):
            until = record.iso(p.closed_at + record.REJECTION_QUIET) if p.closed_at else "?"
            item.action = Action.SUPPRESSED
            item.detail = (
                f"{why}; the same change stays silent until {until} unless the value moves "
                f"by more than {tolerance:g}"
            )
            return
        item.action, item.detail = Action.REOPENED, f"previous proposal {p.old} -> {p.new} {status.value}"
        return
    if status in (Status.MERGED, Status.APPLIED, Status.EXPIRED):
        item.action, item.detail = Action.REOPENED, f"previous proposal {p.old} -> {p.new} {status.value}"
        return
    if p.old == d.current and p.new == d.recommended:
        if s.base == snapshot.commit:
            item.action, item.detail = Action.UNCHANGED, "the same proposal is open"
        else:
            item.action, item.detail = Action.REBASED, "the authority branch moved; the field did not"
        return
    item.action = Action.UPDATED
    item.detail = f"stale proposal replaced ({why})" if status == Status.STALE else f"was {p.old} -> {p.new}"


def _apply_limits(
    items: Sequence[Item],
    branches: Mapping[str, BranchState],
    statuses: Mapping[str, tuple[Status, str]],
    cfg: ProposalConfig,
    now: datetime,
) -> None:
    """At most ``max_open`` open and ``max_new_per_hour`` new proposals, counted from the branches."""
    open_now = sum(1 for status, _ in statuses.values() if status in OPEN)
    since = now - NEW_WINDOW
    new_recent = sum(1 for s in branches.values() if s.proposal is not None and s.proposal.opened_at > since)
    order = sorted(
        (i for i in items if i.action in NEW),
        key=lambda i: (-RISK_LEVELS.index(i.risk.level), i.decision.claim, i.decision.field),
    )
    held = guards.proposal_limit(len(order), open_now, new_recent, cfg.max_open, cfg.max_new_per_hour)
    for item, why in zip(order, held, strict=True):
        if why is not None:
            item.action = Action.HELD_BACK
            item.detail = why


def _summary(d: Decision, reason: str) -> str:
    fired = next((f"{n.rule}: {n.detail}" for n in d.notes if n.effect == "fired"), "")
    if reason == "requested":
        return staging.with_validation_rationale(fired, d)
    if reason == RuleId.OPT_IN:
        summary = "; ".join(x for x in (fired, f"needs review: {REVIEW_REASONS[reason]}") if x)
        return staging.with_validation_rationale(summary, d)
    summary = f"{fired}; needs review: {d.reason}" if fired else f"needs review: {d.reason}"
    return staging.with_validation_rationale(summary, d)


def _proposal(item: Item, snapshot: Snapshot, now: datetime, path: str) -> Proposal:
    """The record; ``path`` is the file the claim edit lands in (an overlay, for a shared base)."""
    d, c, risk = item.decision, item.claim, item.risk
    previous = item.existing.proposal if item.existing else None
    # Where the edit lands and how risky it is: set afresh on a kept record as on a new one.
    placed: dict[str, Any] = {
        "base_commit": snapshot.commit,
        "target_path": path,
        "target_kind": c.kind,
        "target_api_version": c.api_version,
        "target_namespace": c.namespace,
        "risk": risk.level,
        "risk_rationale": risk.rationale,
        "policy_result": risk.policy_result,
    }
    if previous is not None and item.action in (Action.UNCHANGED, Action.REBASED):
        # The same change: keep what the reviewer has seen (evidence, times, acknowledgment).
        return replace(previous, **placed)
    fresh = Proposal(
        claim=d.claim,
        field=d.field,
        old=d.current,
        new=d.recommended,
        **placed,
        opened_at=now,
        created_at=now,
        rule=d.rule,
        source=d.source,
        reason=item.candidate.reason,
        summary=_summary(d, item.candidate.reason),
        evidence=d.evidence,
        proposer_type=item.candidate.proposer_type,
        proposer_id=item.candidate.proposer_id or f"feedbackctl/{d.source or 'unknown'}",
        confidence=d.confidence,
    )
    if previous is not None and item.action == Action.UPDATED:
        return replace(fresh, opened_at=previous.opened_at)
    return fresh


def _message(p: Proposal, item: Item, path: str) -> str:
    body = [
        f"Needs review: {REVIEW_REASONS.get(p.reason, p.reason)}.",
        f"Risk: {p.risk} ({p.risk_rationale}). Policy: {p.policy_result}.",
    ]
    if p.summary:
        body.append(p.summary)
    body.append(f"Record: {path}")
    body.append(f"Decide: feedbackctl proposals approve|reject {p.claim} {p.field}")
    plan = Plan(
        subject=change_subject("propose", p.claim, p.field, p.old, p.new),
        body="\n".join(body),
        trailers=[proposal_trailer("proposal", p, evidence=True, tags=(p.reason,))],
    )
    return plan.message


def _claim_texts(repo: GitRepo, snapshot: Snapshot, items: Iterable[Item]) -> dict[str, str]:
    """Text of every file the edits touch, at the authority commit, in two batched reads."""
    by_blob: dict[str, str] = {}
    by_spec: dict[str, str] = {}
    for item in items:
        loc = item.claim.locations.get(f"spec.{item.decision.field}")
        if loc is None:
            continue
        if loc.path == item.claim.path and item.claim.blob:
            by_blob[loc.path] = item.claim.blob
        else:
            by_spec[loc.path] = f"{snapshot.commit}:{loc.path}"
    blobs = repo.read_blobs(sorted(set(by_blob.values())))
    texts = {path: blobs[blob].decode("utf-8") for path, blob in by_blob.items()}
    found = read_objects(repo, sorted(by_spec.values()))
    for path, spec in by_spec.items():
        raw = found.get(spec)
        if raw is not None:
            texts[path] = raw.decode("utf-8")
    return texts


def _build(repo: GitRepo, snapshot: Snapshot, cfg: ProposalConfig, items: Sequence[Item], now: datetime,
           problems: list[Problem]) -> None:  # fmt: skip
    todo = [i for i in items if i.action in WRITES or i.action == Action.UNCHANGED]
    texts = _claim_texts(repo, snapshot, todo)
    for item in todo:
        d = item.decision
        staging = Staging(repo, snapshot.commit)
        loc = item.claim.locations.get(f"spec.{d.field}")
        if loc is not None and loc.path in texts:
            staging.texts[loc.path] = texts[loc.path]
        try:
            # A value shared through a Kustomize base: the proposal overrides it in this claim's overlay.
            path = staging.set_value(item.claim, d.field, d.recommended, override=True)
        except ClaimError as e:
            problems.append(Problem.of(e))
            item.action, item.detail = Action.SKIPPED, str(e)
            continue
        p = _proposal(item, snapshot, now, path)
        item.proposal = p
        rpath = record_path(cfg, d.claim, d.field)
        edits: dict[str, bytes | None] = {
            path: staging.texts[path].encode("utf-8"),
            rpath: record.render(p).encode("utf-8"),
        }
        item.commit = NewCommit(snapshot.commit, edits, _message(p, item, rpath), now)
    _confirm_unchanged(repo, [i for i in todo if i.action == Action.UNCHANGED and i.commit is not None])


def _confirm_unchanged(repo: GitRepo, items: Sequence[Item]) -> None:
    """Compare trees: same base and the same bytes at the two paths a proposal writes."""
    specs = []
    for item in items:
        assert item.existing is not None and item.commit is not None
        specs += [f"{item.existing.tip}:{path}" for path in item.commit.edits]
    found = read_objects(repo, specs)
    for item in items:
        assert item.existing is not None and item.commit is not None
        tip = item.existing.tip
        same = all(found.get(f"{tip}:{path}") == content for path, content in item.commit.edits.items())
        if not same:
            item.action, item.detail = Action.UPDATED, "record refreshed (risk or policy changed)"


def _attention(
    branches: Mapping[str, BranchState],
    statuses: Mapping[str, tuple[Status, str]],
    touched: set[str],
    now: datetime,
    shard: Shard,
) -> list[dict[str, Any]]:
    """Open proposals this run did not touch that a human should look at (this shard's claims)."""
    out = []
    for name, s in sorted(branches.items()):
        owner = s.proposal.claim if s.proposal is not None else None
        if name in touched or (owner not in shard if owner else shard.index != 0):
            continue
        status, why = statuses[name]
        escalated = s.proposal is not None and status == Status.PENDING and record.escalated(s.proposal, now)
        if status in (Status.STALE, Status.HANDED_OFF, Status.EXPIRED, Status.INVALID) or escalated:
            if (
                status == Status.EXPIRED
                and s.proposal is not None
                and s.proposal.state != record.State.PENDING
            ):
                continue
            message = f"{name}: {status.value}: {why}"
            out.append({"branch": name, "status": status.value, "detail": why, "message": message})
    return out


def _decisions(items: Sequence[Item]) -> list[Decision]:
    out = []
    for item in items:
        d = item.decision
        if item.risk.blocked:
            notes = d.notes + tuple(Note(v.rule, "blocked", v.detail) for v in item.risk.violations)
            out.append(replace(d, outcome=Outcome.BLOCKED, notes=notes, risk=None))
        else:
            out.append(replace(d, outcome=Outcome.PROPOSE, risk=item.risk.level))
    return out


@dataclass
class ProposalPlan:
    """What one attempt will write: items with their commits built, not yet written."""

    snapshot: Snapshot
    cfg: ProposalConfig
    items: list[Item]
    report: Report


def plan_candidates(
    repo: GitRepo,
    snapshot: Snapshot,
    candidates: Sequence[Candidate],
    now: datetime,
    *,
    remote: str | None = None,
    checks: Sequence[SchemaCheck] = (),
    report: Report | None = None,
    shard: Shard = ALL,
) -> ProposalPlan:
    """Read the proposal branches, decide each candidate's action, build its commit (objects not yet)."""
    cfg = proposal_config(snapshot, remote)
    policy = snapshot.settings.policy
    checks = (*checks, schema_check(snapshot.claims))  # the repo's XRDs
    report = report or Report("propose", now, snapshot.branch, snapshot.commit)
    branches = load_branches(repo, cfg, snapshot.commit)
    if remote:
        mark_local_work(repo, branches)
    checked_out = worktree_branches(repo)
    claims = {c.name: c for c in snapshot.claims}
    statuses = {name: status_of(s, claims, now) for name, s in branches.items()}
    items: list[Item] = []
    for cand in sorted(candidates, key=lambda c: (c.decision.claim, c.decision.field)):
        d = cand.decision
        claim = claims.get(d.claim)
        if claim is None:
            report.problems.append(Problem(d.claim, f"{d.claim}: not found at {snapshot.branch}"))
            continue
        # The same changes analyze and autotune classify (a shared value is a batch): one risk.
        changes = [replace(c, value=d.recommended) for c in claim_changes(claim, d.field)]
        risk = assess(changes, policy.risk, policy.fields, checks)
        risk = replace(risk, rationale=staging.with_validation_rationale(risk.rationale, d))
        name = branch_name(cfg, d.claim, d.field)
        item = Item(cand, claim, name, risk, existing=branches.get(name))
        if item.existing is not None:
            item.status, item.detail = statuses[name]
        _classify(item, policy, now, snapshot, checked_out)
        items.append(item)
    _apply_limits(items, branches, statuses, cfg, now)
    _build(repo, snapshot, cfg, items, now, report.problems)
    report.decisions = _decisions(items)
    proposals_of(report).proposals = [i.json() for i in items]
    report.events = _attention(branches, statuses, {i.branch for i in items}, now, shard)
    return ProposalPlan(snapshot, cfg, items, report)


def proposals_of(report: Report) -> ProposalsResult:
    if report.result is None:
        report.result = ProposalsResult()
    return report.result_as(ProposalsResult)
