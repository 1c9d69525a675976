"""The proposal lifecycle (``feedbackctl proposals``): list, show, reject, ack, approve, expire.

Proposal branches and how their status is derived are in
``feedbackctl.authority.proposal_branches``; what the commands share (who
acts, the act commits, the checks of a value a human applies) is in
``feedbackctl.patterns.proposal_acts``; the acks the auto-tuner reads are in
``feedbackctl.patterns.acknowledgements``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from feedbackctl.authority import acts, cas
from feedbackctl.authority.fastimport import RefUpdate, update_refs
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.proposal_branches import (
    DEFAULT_RECORD_DIR,
    MARKER_KINDS,
    OPEN,
    BranchState,
    CommitInfo,
    ProposalConfig,
    Status,
    apply_acts,
    branch_name,
    fetch_branches,
    load_branches,
    mark_local_work,
    proposal_config,
    read_commits,
    record_path,
    safe_component,
    status_of,
    worktree_branches,
)
from feedbackctl.authority.snapshot import branch_of
from feedbackctl.authority.writer import Plan, Staging, change_subject, proposal_trailer, write
from feedbackctl.core import proposal as record
from feedbackctl.core.proposal import State
from feedbackctl.core.results import ProposalShown, ProposalsResult, Report
from feedbackctl.core.risk import SchemaCheck
from feedbackctl.errors import ConflictError, FeedbackError
from feedbackctl.patterns.acknowledgements import acknowledgements
from feedbackctl.patterns.proposal_acts import (
    Context,
    act_on_one,
    entry,
    find_branch,
    human_identity,
    ident_text,
    load_context,
    marker_commit,
    outside_bounds,
    policy_check,
    record_act,
    reviewed_value,
    write_markers,
)
from feedbackctl.patterns.staging import approval_tags

# Callers and tests reach the branch store and the shared parts through this module too.
__all__ = [
    "DEFAULT_RECORD_DIR",
    "MARKER_KINDS",
    "OPEN",
    "BranchState",
    "CommitInfo",
    "ProposalConfig",
    "Status",
    "acknowledge",
    "acknowledgements",
    "apply_acts",
    "approve",
    "branch_name",
    "entry",
    "expire",
    "fetch_branches",
    "human_identity",
    "ident_text",
    "list_proposals",
    "load_branches",
    "mark_local_work",
    "outside_bounds",
    "policy_check",
    "proposal_config",
    "read_commits",
    "record_path",
    "reject",
    "reviewed_value",
    "safe_component",
    "show_proposal",
    "status_of",
    "worktree_branches",
]


def list_proposals(repo: GitRepo, ref: str | None, now: datetime, *, remote: str | None = None) -> Report:
    ctx = load_context(repo, ref, remote)
    report = Report("proposals list", now, ctx.snapshot.branch, ctx.snapshot.commit)
    report.result = ProposalsResult(
        [entry(s, *status_of(s, ctx.claims, now), now) for _, s in sorted(ctx.branches.items())]
    )
    return report


def show_proposal(
    repo: GitRepo, ref: str | None, claim: str, field_name: str, now: datetime, *, remote: str | None = None
) -> Report:
    ctx = load_context(repo, ref, remote)
    s = find_branch(ctx, claim, field_name)
    report = Report("proposals show", now, ctx.snapshot.branch, ctx.snapshot.commit)
    report.result = ProposalShown(
        entry(s, *status_of(s, ctx.claims, now), now),
        record.to_document(s.proposal) if s.proposal else None,
        [{"sha": c.sha, "kind": c.kind or "human", "author": c.author} for c in s.chain],
    )
    return report


def reject(
    repo: GitRepo,
    ref: str | None,
    claim: str,
    field_name: str,
    now: datetime,
    *,
    reason: str = "",
    dry_run: bool = False,
    remote: str | None = None,
) -> Report:
    """Record the rejection on the branch: the same change is not proposed again for 7 days."""
    who = human_identity(repo)

    def step(ctx: Context, s: BranchState, status: Status, detail: str, report: Report) -> None:
        if status == Status.REJECTED:
            report.events.append({"message": f"{s.name} is already rejected ({detail})"})
            return
        if status not in (Status.PENDING, Status.STALE, Status.EXPIRED):
            raise FeedbackError(f"{s.name} is {status.value} ({detail}); there is nothing to reject")
        assert s.proposal is not None
        p = s.proposal
        subject = change_subject("reject", p.claim, p.field, p.old, p.new)
        body = _decided("Rejected", who, s) + "." + (f"\n\n{reason}" if reason else "")
        record_act(repo, ctx, s, report, "reject", subject, body, now, who, dry_run=dry_run)

    remote = acts.act_remote(repo, branch_of(repo, ref), remote, "rejection")
    return act_on_one(repo, ref, (claim, field_name), now, "reject", step, dry_run, remote)


def _decided(verb: str, who: tuple[str, str], s: BranchState) -> str:
    """``<verb> by <who>: proposal <branch> (<proposal commit>)``: who decided on which proposal."""
    return f"{verb} by {ident_text(who)}: proposal {s.name} ({(s.proposal_commit or '')[:12]})"


def acknowledge(
    repo: GitRepo,
    ref: str | None,
    claim: str,
    field_name: str,
    now: datetime,
    *,
    dry_run: bool = False,
    remote: str | None = None,
) -> Report:
    """Acknowledge a MEDIUM proposal: it does not escalate, and autotune may apply it inside bounds."""
    who = human_identity(repo)

    def step(ctx: Context, s: BranchState, status: Status, detail: str, report: Report) -> None:
        if status != Status.PENDING:
            raise FeedbackError(
                f"{s.name} is {status.value} ({detail}); only a pending proposal can be acknowledged"
            )
        p = s.proposal
        assert p is not None
        if p.acknowledged_at is not None:
            report.events.append({"message": f"{s.name} was acknowledged by {p.acknowledged_by} already"})
            return
        if p.risk != "MEDIUM":
            raise FeedbackError(
                f"{s.name} is {p.risk} risk; acknowledgment is for MEDIUM proposals "
                f"({'approve or reject it' if p.risk == 'HIGH' else 'LOW needs none'})"
            )
        if record.escalated(p, now):
            raise FeedbackError(
                f"{s.name} went unacknowledged for 8h and is HIGH risk now; approve or reject it instead"
            )
        reviewed_value(repo, ctx.snapshot.branch, s)  # the ack names what the diff shows, or nothing
        subject = change_subject("ack", p.claim, p.field, p.old, p.new)
        body = (
            _decided("Acknowledged", who, s)
            + ". It lifts the risk ceiling for this change only; every other guard still applies."
        )
        record_act(repo, ctx, s, report, "ack", subject, body, now, who, dry_run=dry_run)

    remote = acts.act_remote(repo, branch_of(repo, ref), remote, "acknowledgment")
    return act_on_one(repo, ref, (claim, field_name), now, "ack", step, dry_run, remote)


def approve(
    repo: GitRepo,
    ref: str | None,
    claim: str,
    field_name: str,
    now: datetime,
    *,
    reason: str = "",
    dry_run: bool = False,
    checks: Sequence[SchemaCheck] = (),
    remote: str | None = None,
    beyond_bounds: bool = False,
) -> Report:
    """Apply the proposal's claim edit to the authority branch (``Feedback-Kind: approve``).

    The value written is the one in the branch's claim edit, the diff a
    reviewer saw; a record that disagrees with it is refused. Refuses a stale
    proposal (the value it would replace is no longer there), re-runs the
    policy checks, and a value outside the claim's autoTune bounds needs
    ``beyond_bounds``. With a remote, the authority branch must match the
    remote's, and the approval and the branch deletion are pushed with leases.
    """
    who = human_identity(repo)
    remote = acts.act_remote(repo, branch_of(repo, ref), remote, "approval")

    def step(ctx: Context, s: BranchState, status: Status, detail: str, report: Report) -> None:
        if status in (Status.APPLIED, Status.MERGED):
            report.events.append({"message": f"{s.name}: {detail}; nothing to apply"})
            if not dry_run and s.local is not None and not s.merged:
                update_refs(repo, [RefUpdate(s.ref, None, s.local)])
                report.events.append({"message": f"closed {s.name}"})
            return
        if status == Status.STALE:
            raise FeedbackError(
                f"{s.name} is stale: {detail}; it must not be applied — rerun feedbackctl propose"
            )
        if status == Status.HANDED_OFF:
            raise FeedbackError(
                f"{s.name}: {detail}; review and merge it with git "
                "(feedbackctl will not apply a human's edits)"
            )
        if status != Status.PENDING:
            raise FeedbackError(f"{s.name} is {status.value} ({detail}); it cannot be approved")
        p = s.proposal
        target = ctx.claims.get(p.claim) if p else None
        assert p is not None and target is not None
        value = reviewed_value(repo, ctx.snapshot.branch, s)
        outside = outside_bounds(target, p.field, value)
        if outside and not beyond_bounds:
            raise FeedbackError(
                f"{s.name}: {value} is outside the autoTune bounds {outside} of {p.claim} spec.{p.field}; "
                "approving it is a human's explicit choice: rerun with --beyond-bounds"
            )
        policy_check(ctx.snapshot, target, p.field, value, s.name, checks)
        staging = Staging(repo, ctx.snapshot.commit)
        staging.set_value(target, p.field, value, override=True)  # as the proposal branch did
        level, _ = record.effective_risk(p, now)
        beyond = f"\n\nBeyond the autoTune bounds {outside}: approved with --beyond-bounds." * bool(outside)
        assert s.proposal_commit is not None
        plan = Plan(
            subject=change_subject("approve", p.claim, p.field, p.old, value),
            body=f"Approved by {ident_text(who)} from proposal {s.name} ({s.tip[:12]})."
            + (f"\n\n{reason}" if reason else "")
            + beyond,
            trailers=[
                {
                    **proposal_trailer(
                        "approve",
                        p,
                        new=value,
                        risk=level,
                        evidence=True,
                        tags=approval_tags(p.summary) + (("beyond-bounds",) if outside else ()),
                    ),
                    acts.PROPOSAL_KEY: acts.proposal_ref(s.name, s.proposal_commit),
                }
            ],  # fmt: skip
            edits=staging.edits(),
        )
        if dry_run:
            report.commits.append(acts.commit_entry("(dry-run)", ctx.snapshot.branch, plan))
            return
        authority = ctx.snapshot.branch
        if remote:
            there = repo.fetch(remote, authority)
            if there != ctx.snapshot.commit:
                raise FeedbackError(
                    f"{authority} is at {ctx.snapshot.commit[:10]} here but at {(there or 'nothing')[:10]} "
                    f"on {remote}; bring them together (git pull or git push) and rerun — nothing was changed"
                )
        sha = write(repo, authority, ctx.snapshot.commit, plan, now, author=who)
        done = acts.commit_entry(sha, authority, plan)
        report.commits.append(done)
        if remote:
            if not repo.push(remote, authority, sha, ctx.snapshot.commit):
                raise FeedbackError(
                    f"{remote}/{authority} moved while approving; the approval is committed here as "
                    f"{sha[:10]}: run git pull --rebase and git push"
                )
            done["pushed"] = True
            if s.remote is not None:
                if repo.delete_remote_ref(remote, s.ref, s.remote):
                    report.events.append({"message": f"closed {s.name} on {remote}"})
                else:
                    report.events.append({"message": f"{s.name} moved on {remote}; left there"})
        if s.local is not None:
            try:
                update_refs(repo, [RefUpdate(s.ref, None, s.local)])
                report.events.append({"message": f"closed {s.name}"})
            except ConflictError:
                report.events.append(
                    {"message": f"{s.name} moved meanwhile; left in place (it shows as applied)"}
                )

    return act_on_one(repo, ref, (claim, field_name), now, "approve", step, dry_run, remote)


def expire(
    repo: GitRepo, ref: str | None, now: datetime, *, dry_run: bool = False, remote: str | None = None
) -> Report:
    """Close every pending proposal older than 7 days (an ``expire`` commit on each branch)."""

    def attempt(_attempt: int) -> Report | cas.Moved:
        ctx = load_context(repo, ref, remote, fetch=not dry_run)
        report = Report("proposals expire", now, ctx.snapshot.branch, ctx.snapshot.commit, dry_run=dry_run)
        todo = []
        for _, s in sorted(ctx.branches.items()):
            status, _ = status_of(s, ctx.claims, now)
            p = s.proposal
            if status != Status.EXPIRED or p is None or p.state != State.PENDING:
                continue
            closed = record.close(p, State.EXPIRED, "feedbackctl", now, "no decision within 7 days")
            subject = change_subject("expire", p.claim, p.field, p.old, p.new)
            body = f"Proposed {record.iso(p.created_at)}; no decision within 7 days."
            todo.append((s, marker_commit(ctx, s, closed, "expire", subject, body, now, None)))
        try:
            write_markers(repo, ctx, report, todo, dry_run=dry_run)
        except ConflictError:
            return cas.MOVED
        return report

    return cas.retry(attempt, cas.kept_moving("the branches", to="expire proposals"))
