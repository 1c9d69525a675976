"""What every proposal lifecycle command shares: who acts, the branches read once, the act commits.

A human act (ack, reject, approve) is an empty or claim-editing commit on the
authority branch that names the proposal branch and its proposal commit; the
only commit written on a proposal branch is the ``expire`` marker. Each command
runs one step on one proposal inside a compare-and-swap retry (``act_on_one``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from feedbackctl.authority import acts, cas
from feedbackctl.authority.fastimport import NewCommit, RefUpdate, update_refs, write_commits
from feedbackctl.authority.gitrepo import DEFAULT_IDENTITY, GitRepo
from feedbackctl.authority.proposal_branches import (
    BranchState,
    ProposalConfig,
    Status,
    branch_name,
    fetch_branches,
    load_branches,
    mark_local_work,
    proposal_config,
    record_path,
    status_of,
)
from feedbackctl.authority.snapshot import Snapshot, load_snapshot
from feedbackctl.authority.writer import Plan, proposal_trailer
from feedbackctl.core import proposal as record
from feedbackctl.core.models import Claim, Scalar
from feedbackctl.core.proposal import Proposal
from feedbackctl.core.results import Report
from feedbackctl.core.risk import Change, SchemaCheck, assess
from feedbackctl.core.schema import schema_check
from feedbackctl.core.tuning import parse_autotune
from feedbackctl.errors import ClaimError, ConflictError, FeedbackError, UsageError

# --- who acts --------------------------------------------------------------------------


def human_identity(repo: GitRepo) -> tuple[str, str]:
    """The person running the command, from git's identity (GIT_AUTHOR_*, then git config)."""
    who = repo.identity("AUTHOR")
    if who == DEFAULT_IDENTITY:
        raise UsageError(
            "who is deciding? set `git config user.name` and `git config user.email`; "
            "approvals and rejections are attributed to a person"
        )
    return who


def ident_text(who: tuple[str, str]) -> str:
    return f"{who[0]} <{who[1]}>"


# --- reports ---------------------------------------------------------------------------


def entry(s: BranchState, status: Status, detail: str, now: datetime) -> dict[str, Any]:
    p = s.proposal
    out: dict[str, Any] = {"branch": s.name, "status": status.value, "detail": detail, "tip": s.tip}
    if p is not None:
        level, rationale = record.effective_risk(p, now)
        out |= {
            "claim": p.claim,
            "field": f"spec.{p.field}",
            "from": p.old,
            "to": p.new,
            "risk": level,
            "riskClass": p.risk,
            "riskRationale": rationale,
            "escalated": level != p.risk,
            "policyResult": p.policy_result,
            "reviewReason": p.reason,
            "acknowledgedBy": p.acknowledged_by,
            "createdAt": record.iso(p.created_at),
            "expiresAt": record.iso(p.expires_at),
            "baseCommit": s.base,
        }
    if s.handoff:
        out["handoff"] = s.handoff
    return out


@dataclass
class Context:
    snapshot: Snapshot
    cfg: ProposalConfig
    branches: dict[str, BranchState]
    claims: dict[str, Claim]


def load_context(repo: GitRepo, ref: str | None, remote: str | None = None, *, fetch: bool = True) -> Context:
    """The authority branch and the proposal branches; with a remote, its branches fetched first."""
    snapshot = load_snapshot(repo, ref)
    cfg = proposal_config(snapshot, remote)
    if remote and fetch:
        fetch_branches(repo, cfg)
    branches = load_branches(repo, cfg, snapshot.commit)
    if remote:
        mark_local_work(repo, branches)
    return Context(snapshot, cfg, branches, {c.name: c for c in snapshot.claims})


def find_branch(ctx: Context, claim: str, field_name: str) -> BranchState:
    name = branch_name(ctx.cfg, claim, field_name.removeprefix("spec."))
    s = ctx.branches.get(name)
    if s is None:
        raise UsageError(
            f"no proposal branch {name} for {claim} spec.{field_name}; see feedbackctl proposals list"
        )
    return s


# --- acts and markers ------------------------------------------------------------------


def marker_commit(
    ctx: Context,
    s: BranchState,
    updated: Proposal,
    kind: str,
    subject: str,
    body: str,
    now: datetime,
    author: tuple[str, str] | None,
) -> NewCommit:
    p = s.proposal
    assert p is not None
    path = record_path(ctx.cfg, p.claim, p.field)
    plan = Plan(
        subject=subject,
        body=body,
        trailers=[proposal_trailer(kind, p)],
    )
    return NewCommit(s.tip, {path: record.render(updated).encode()}, plan.message, now, author)


def write_markers(
    repo: GitRepo,
    ctx: Context,
    report: Report,
    todo: Sequence[tuple[BranchState, NewCommit]],
    *,
    dry_run: bool,
) -> None:
    if dry_run:
        for s, c in todo:
            report.commits.append(
                {"sha": "(dry-run)", "branch": s.name, "subject": c.message.splitlines()[0]}
            )
        return
    shas = write_commits(repo, [c for _, c in todo])
    update_refs(repo, [RefUpdate(s.ref, sha, s.local) for (s, _), sha in zip(todo, shas, strict=True)])
    for (s, c), sha in zip(todo, shas, strict=True):
        entry: dict[str, Any] = {"sha": sha, "branch": s.name, "subject": c.message.splitlines()[0]}
        remote = ctx.cfg.remote
        if remote:
            # The lease names the remote sha this decision was made on.
            if not repo.push(remote, s.name, sha, s.remote):
                raise ConflictError(f"{s.name} moved on {remote}; re-reading it")
            entry["pushed"] = True
        report.commits.append(entry)


Step = Callable[[Context, BranchState, Status, str, Report], None]


def record_act(
    repo: GitRepo,
    ctx: Context,
    s: BranchState,
    report: Report,
    kind: str,
    subject: str,
    body: str,
    now: datetime,
    who: tuple[str, str],
    *,
    dry_run: bool,
) -> None:
    """Record ``kind`` about this exact proposal as an empty commit on the authority branch."""
    p = s.proposal
    assert p is not None and s.proposal_commit is not None
    plan = Plan(
        subject=subject,
        body=body,
        trailers=[
            {**proposal_trailer(kind, p), acts.PROPOSAL_KEY: acts.proposal_ref(s.name, s.proposal_commit)}
        ],
    )
    authority = ctx.snapshot.branch
    if dry_run:
        report.commits.append(acts.commit_entry("(dry-run)", authority, plan))
        return
    tip = acts.remote_tip(repo, ctx.cfg.remote, authority) if ctx.cfg.remote else None
    sha, pushed = acts.record(repo, authority, ctx.snapshot.commit, plan, now, who, tip)
    report.commits.append(acts.commit_entry(sha, authority, plan, pushed))


def act_on_one(
    repo: GitRepo,
    ref: str | None,
    target: tuple[str, str],
    now: datetime,
    command: str,
    step: Step,
    dry_run: bool,
    remote: str | None,
) -> Report:
    """``step`` on the one proposal for ``target`` (claim, field), read afresh on every attempt."""

    def attempt(_: int) -> Report | cas.Moved:
        ctx = load_context(repo, ref, remote, fetch=not dry_run)
        s = find_branch(ctx, *target)
        status, detail = status_of(s, ctx.claims, now)
        report = Report(
            f"proposals {command}", now, ctx.snapshot.branch, ctx.snapshot.commit, dry_run=dry_run
        )
        try:
            step(ctx, s, status, detail, report)
        except ConflictError:
            return cas.MOVED
        return report

    return cas.retry(attempt, cas.kept_moving("the branches", to=command))


# --- a value a human applies -----------------------------------------------------------


def reviewed_value(repo: GitRepo, authority: str, s: BranchState) -> Scalar:
    """The value the branch's claim edit writes: what a reviewer of the diff saw.

    Raises when the record disagrees with the diff (naming both values and
    the commit), so approve never applies a number the diff does not show.
    """
    p = s.proposal
    assert p is not None and s.proposal_commit is not None
    sha = s.proposal_commit
    after = load_snapshot(repo, authority, at=sha).claim(p.claim)
    before = load_snapshot(repo, authority, at=s.base).claim(p.claim) if s.base else None
    new = after.value(p.field) if after is not None else None
    old = before.value(p.field) if before is not None else None
    if (old, new) != (p.old, p.new):
        raise FeedbackError(
            f"{s.name}: the record says spec.{p.field} {p.old} -> {p.new}, the claim edit in commit "
            f"{sha[:10]} says {old} -> {new}; refusing to approve a value the diff does not show "
            "(rerun feedbackctl propose to rewrite the branch)"
        )
    return new


def policy_check(
    snapshot: Snapshot,
    claim: Claim,
    field_name: str,
    value: Scalar,
    what: str,
    checks: Sequence[SchemaCheck] = (),
) -> None:
    """Re-run the policy and the claims' schema for a value a human applies (approve, accept).

    Raises ClaimError naming ``what`` when the policy blocks the value now.
    """
    policy = snapshot.settings.policy
    change = Change(claim.name, field_name, claim.is_production, value=value)
    risk = assess([change], policy.risk, policy.fields, (*checks, schema_check(snapshot.claims)))
    if risk.blocked:
        raise ClaimError(claim.name, f"{what} violates the policy now ({risk.policy_result}); not applied")


def outside_bounds(claim: Claim, field_name: str, value: Scalar) -> str | None:
    """``"min-max"`` when ``value`` lies outside the claim's autoTune bounds for the field."""
    try:
        tuning = parse_autotune(claim)
    except ClaimError:
        return None
    b = tuning.bounds.get(field_name) if tuning.enabled else None
    if b is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if b.min <= value <= b.max else f"{b.min:g}-{b.max:g}"
