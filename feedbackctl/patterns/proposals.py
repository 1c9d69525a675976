"""Proposal branches as git holds them, and their lifecycle (``feedbackctl proposals``).

There is no database: a proposal is a branch ``<prefix><claim>/<field>`` whose
first commit on top of the authority branch (``Feedback-Kind: proposal``)
holds the claim edit and the ``ConfigurationProposal`` record. Anyone who can
push branches can write one, so nothing on it grants authority: the human
acts (ack, reject, approve) are commits on the authority branch that name the
proposal (see ``feedbackctl.authority.acts``). The only later commit
feedbackctl puts on a proposal branch is an informational ``expire`` marker.
Any other commit on it, whatever its trailers say, is someone's hand edit:
from then on the branch is handed off and feedbackctl never rewrites it.

A proposal's status is derived, never stored alone: from the record, from
whether the branch is merged into the authority branch, and from the claim's
value there now (a field that changed since the proposal makes it stale).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from feedbackctl.authority import acts
from feedbackctl.authority.fastimport import NewCommit, RefUpdate, read_objects, update_refs, write_commits
from feedbackctl.authority.gitrepo import DEFAULT_IDENTITY, GitRepo, check_ref_name
from feedbackctl.authority.snapshot import Snapshot, branch_of, load_snapshot
from feedbackctl.authority.trailers import parse_trailers
from feedbackctl.authority.writer import Plan, Staging, trailer, write
from feedbackctl.core import proposal as record
from feedbackctl.core.models import Acknowledgement, Claim, Scalar
from feedbackctl.core.proposal import Proposal, ProposalError, State
from feedbackctl.core.results import ProposalShown, ProposalsResult, Report
from feedbackctl.core.risk import Change, SchemaCheck, assess
from feedbackctl.core.schema import schema_check
from feedbackctl.core.tuning import parse_autotune
from feedbackctl.errors import ClaimError, ConflictError, FeedbackError, UsageError
from feedbackctl.patterns.staging import approval_tags

DEFAULT_RECORD_DIR = "proposals"
CAS_ATTEMPTS = 5
# Commits feedbackctl puts on a proposal branch after the proposal itself: they close
# a proposal at most, so a copied one grants nothing.
MARKER_KINDS = frozenset({"expire"})
_MAX_CHAIN = 16
_UNSAFE = re.compile(r"[\x00-\x20\x7f~^:?*\[\\/]")


class Status(StrEnum):
    PENDING = "pending"  # open, waiting for a human
    STALE = "stale"  # the field changed on the authority branch since: must not be applied
    APPLIED = "applied"  # the authority branch already holds the proposed value
    MERGED = "merged"  # the branch is merged into the authority branch
    REJECTED = "rejected"
    EXPIRED = "expired"  # 7 days without a decision
    HANDED_OFF = "handed-off"  # a human committed on the branch: theirs now
    INVALID = "invalid"  # not readable as a proposal: left alone


# Proposals that still wait for a human (the max-open limit counts them).
OPEN = frozenset({Status.PENDING, Status.STALE, Status.HANDED_OFF, Status.INVALID})


@dataclass(frozen=True)
class ProposalConfig:
    prefix: str = "feedback/"
    record_dir: str = DEFAULT_RECORD_DIR
    max_open: int = 10
    max_new_per_hour: int = 2
    remote: str | None = None  # when set, the remote's branches are the truth (--push)


def proposal_config(snapshot: Snapshot, remote: str | None = None) -> ProposalConfig:
    cfg = snapshot.settings.config
    raw = cfg.extra.get("proposals") if isinstance(cfg.extra, Mapping) else None
    folder = raw.get("dir") if isinstance(raw, Mapping) else None
    record_dir = (
        str(folder).strip("/") if isinstance(folder, str) and folder.strip("/") else DEFAULT_RECORD_DIR
    )
    try:
        check_ref_name(f"refs/heads/{cfg.proposal_prefix}x")
    except UsageError:
        raise UsageError(
            f".feedbackctl.yaml: proposals.prefix '{cfg.proposal_prefix}' cannot start a git branch name; "
            "use letters, digits, '-', '.' and '/' (default feedback/)"
        ) from None
    return ProposalConfig(
        prefix=cfg.proposal_prefix,
        record_dir=record_dir,
        max_open=cfg.max_open_proposals,
        max_new_per_hour=cfg.max_new_proposals_per_hour,
        remote=remote,
    )


# --- names -----------------------------------------------------------------------------


def safe_component(text: str) -> str:
    """One path component git accepts in a ref name; changed names get a hash so they stay unique."""
    out = _UNSAFE.sub("-", text)
    out = re.sub(r"\.{2,}", ".", out).replace("@{", "-{").lstrip(".")
    if out.endswith(".lock"):
        out = out[: -len(".lock")] + "-lock"
    out = out.rstrip(".") or "x"
    if out != text:
        out += "-" + hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return out


def branch_name(cfg: ProposalConfig, claim: str, field_name: str) -> str:
    """Deterministic: ``<prefix><claim>/<field>``, made safe for git."""
    name = f"{cfg.prefix}{safe_component(claim)}/{safe_component(field_name)}"
    check_ref_name(f"refs/heads/{name}")
    return name


def record_path(cfg: ProposalConfig, claim: str, field_name: str) -> str:
    return f"{cfg.record_dir}/{safe_component(claim)}/{safe_component(field_name)}.yaml"


# --- reading branches ------------------------------------------------------------------


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    parents: tuple[str, ...]
    author: str
    changes: tuple[dict[str, str], ...]

    @property
    def kind(self) -> str | None:
        return self.changes[0].get("Feedback-Kind") if self.changes else None


def _parse_commit(sha: str, raw: bytes) -> CommitInfo:
    text = raw.decode("utf-8", "replace")
    head, _, message = text.partition("\n\n")
    parents, author = [], ""
    for line in head.splitlines():
        if line.startswith("parent "):
            parents.append(line[7:].strip())
        elif line.startswith("author "):
            author = line[7:].rsplit(" ", 2)[0]
    return CommitInfo(sha, tuple(parents), author, tuple(parse_trailers(message)))


def read_commits(repo: GitRepo, shas: Sequence[str]) -> dict[str, CommitInfo]:
    """Commit objects in one ``cat-file --batch``."""
    raw = read_objects(repo, shas)
    return {sha: _parse_commit(sha, data) for sha, data in raw.items() if data is not None}


@dataclass
class BranchState:
    """One proposal branch as read from git (local and, with a remote, its tracking ref)."""

    name: str
    tip: str  # the remote's tip when a remote is in use and has the branch
    local: str | None = None
    remote: str | None = None
    merged: bool = False
    proposal: Proposal | None = None
    proposal_commit: str | None = None
    base: str | None = None
    handoff: str | None = None  # newest commit on the branch that feedbackctl did not write
    handoff_author: str | None = None
    tampered: str | None = None  # the Feedback-Kind a hand-made commit on the branch copied
    problem: str | None = None
    chain: list[CommitInfo] = field(default_factory=list)  # tip first, down to the proposal commit

    @property
    def ref(self) -> str:
        return f"refs/heads/{self.name}"


def _list(repo: GitRepo, cfg: ProposalConfig) -> tuple[dict[str, str], dict[str, str]]:
    local = {r.removeprefix("refs/heads/"): s for r, s in repo.list_refs(f"refs/heads/{cfg.prefix}").items()}
    remote: dict[str, str] = {}
    if cfg.remote:
        scope = f"refs/remotes/{cfg.remote}/"
        remote = {r.removeprefix(scope): s for r, s in repo.list_refs(f"{scope}{cfg.prefix}").items()}
    return local, remote


def _merged(repo: GitRepo, cfg: ProposalConfig, authority: str) -> set[str]:
    scopes = [f"refs/heads/{cfg.prefix}".rpartition("/")[0]]
    if cfg.remote:
        scopes.append(f"refs/remotes/{cfg.remote}/{cfg.prefix}".rpartition("/")[0])
    out = repo.git("for-each-ref", f"--merged={authority}", "--format=%(objectname)", *scopes)
    return set(out.decode().split())


def load_branches(repo: GitRepo, cfg: ProposalConfig, authority: str) -> dict[str, BranchState]:
    """Every proposal branch, its chain of commits and its record, in a handful of git calls."""
    local, remote = _list(repo, cfg)
    names = sorted(set(local) | set(remote))
    if not names:
        return {}
    merged = _merged(repo, cfg, authority)
    states: dict[str, BranchState] = {}
    for name in names:
        tip = remote.get(name) or local[name]
        states[name] = BranchState(name, tip, local.get(name), remote.get(name), merged=tip in merged)
    # Walk each chain down to its proposal commit, one batch of commits per level.
    cursor = {name: s.tip for name, s in states.items()}
    known: dict[str, CommitInfo] = {}
    for _ in range(_MAX_CHAIN):
        if not cursor:
            break
        known.update(read_commits(repo, [sha for sha in set(cursor.values()) if sha not in known]))
        following: dict[str, str] = {}
        for name, sha in cursor.items():
            s = states[name]
            info = known.get(sha)
            if info is None:
                s.problem = f"commit {sha[:10]} is missing; run `git fsck`"
                continue
            s.chain.append(info)
            if info.kind == "proposal":
                s.proposal_commit = info.sha
                s.base = info.parents[0] if info.parents else None
                continue
            # Not feedbackctl's; trailers copied onto it (an "ack") make it tampered, not valid.
            if info.kind not in MARKER_KINDS and s.handoff is None:
                s.handoff, s.handoff_author = info.sha, info.author
                s.tampered = info.kind
            if not info.parents:
                s.problem = "no proposal commit on this branch"
                continue
            following[name] = info.parents[0]
        cursor = following
    for name in cursor:
        states[name].problem = f"no proposal commit within {_MAX_CHAIN} commits of the tip"
    _read_records(repo, cfg, states)
    # What humans decided is read from the authority branch, never from these branches.
    apply_acts(states, acts.read_acts(repo, authority))
    return states


def _read_records(repo: GitRepo, cfg: ProposalConfig, states: Mapping[str, BranchState]) -> None:
    specs: dict[str, list[str]] = {}
    for name, s in states.items():
        if s.proposal_commit is None:
            continue
        g = next(c for c in s.chain if c.sha == s.proposal_commit).changes[0]
        claim, field_name = g.get("Feedback-Claim", ""), g.get("Feedback-Field", "").removeprefix("spec.")
        path = record_path(cfg, claim, field_name)
        # The tip's record is the latest; a human may have removed it, so fall back.
        specs[name] = [f"{s.tip}:{path}", f"{s.proposal_commit}:{path}"]
    blobs = read_objects(repo, [spec for pair in specs.values() for spec in pair])
    for name, (at_tip, at_proposal) in specs.items():
        s = states[name]
        # The proposal commit's record is the one that goes with its claim edit; a marker
        # after it may only close the proposal, so nothing else is taken from a later record.
        text = blobs.get(at_proposal)
        if text is None:
            s.problem = s.problem or f"no record {at_proposal.partition(':')[2]} on the branch"
            continue
        try:
            s.proposal = record.parse(text, f"{name}:{at_proposal.partition(':')[2]}")
        except ProposalError as e:
            s.problem = s.problem or str(e)
            continue
        tip_text = blobs.get(at_tip) if s.handoff is None and at_tip != at_proposal else None
        if tip_text is not None:
            try:
                later = record.parse(tip_text, f"{name}:{at_tip.partition(':')[2]}")
            except ProposalError:
                continue
            if later.state == State.EXPIRED:
                by, at = later.closed_by or "feedbackctl", later.closed_at or later.expires_at
                s.proposal = record.close(s.proposal, State.EXPIRED, by, at, later.close_reason)


def status_of(s: BranchState, claims: Mapping[str, Claim], now: datetime) -> tuple[Status, str]:
    """(status, one line why) of a branch against the authority branch's claims at ``now``."""
    p = s.proposal
    if s.handoff is not None:
        who = f" by {s.handoff_author}" if s.handoff_author else ""
        if s.tampered:
            return Status.HANDED_OFF, (
                f"tampered: commit {s.handoff[:10]}{who} carries Feedback-Kind: {s.tampered} on the "
                "proposal branch; acts count only on the authority branch, so it grants nothing"
            )
        return Status.HANDED_OFF, f"commit {s.handoff[:10]}{who} is not feedbackctl's; the branch is theirs"
    if p is None:
        return Status.INVALID, s.problem or "not a proposal branch"
    if s.merged:
        return Status.MERGED, "merged into the authority branch"
    if p.state == State.REJECTED:
        return Status.REJECTED, f"rejected by {p.closed_by} at {record.iso(p.closed_at)}"
    if p.state == State.EXPIRED:
        return Status.EXPIRED, f"expired at {record.iso(p.closed_at)}"
    claim = claims.get(p.claim)
    if claim is None:
        return Status.STALE, f"claim {p.claim} no longer exists on the authority branch"
    now_value = claim.value(p.field)
    if now_value == p.new and p.old != p.new:
        return Status.APPLIED, f"spec.{p.field} is already {p.new}"
    if now_value != p.old:
        return Status.STALE, f"spec.{p.field} is {now_value} now, not {p.old} as proposed"
    if now >= p.expires_at:
        return Status.EXPIRED, f"no decision since {record.iso(p.created_at)} (7 days)"
    level, _ = record.effective_risk(p, now)
    if level != p.risk:
        return Status.PENDING, f"{p.risk} unacknowledged for 8h: escalated to {level}"
    if p.acknowledged_at is not None:
        return Status.PENDING, f"acknowledged by {p.acknowledged_by}; autotune may apply it inside the bounds"
    return Status.PENDING, "waiting for review"


def fetch_branches(repo: GitRepo, cfg: ProposalConfig) -> None:
    """Bring the remote's proposal branches into ``refs/remotes/<remote>/`` (pruning deleted ones)."""
    remote = cfg.remote
    assert remote is not None
    if remote not in repo.git("remote").decode().split():
        raise UsageError(f"no remote named '{remote}' in {repo.display}; add one with git remote add")
    spec = f"+refs/heads/{cfg.prefix}*:refs/remotes/{remote}/{cfg.prefix}*"
    repo.git("fetch", "--prune", "--no-tags", "--quiet", "--end-of-options", remote, spec)


def mark_local_work(repo: GitRepo, branches: Mapping[str, BranchState]) -> None:
    """A local branch with commits the remote lacks is someone's work: treat it as handed off."""
    for s in branches.values():
        if s.local and s.remote and s.local != s.remote and not repo.is_ancestor(s.local, s.remote):
            s.handoff = s.handoff or s.local
            s.handoff_author = s.handoff_author or "a local commit not on the remote"


def worktree_branches(repo: GitRepo) -> set[str]:
    """Branches checked out in any work tree: proposal branches there are never moved."""
    out = repo.git("worktree", "list", "--porcelain").decode("utf-8", "surrogateescape")
    return {line[7:] for line in out.splitlines() if line.startswith("branch ")}


# --- who acts --------------------------------------------------------------------------


def human_identity(repo: GitRepo) -> tuple[str, str]:
    """The person running the command, from git's identity (GIT_AUTHOR_*, then git config)."""
    who = repo._identity("AUTHOR")
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
class _Context:
    snapshot: Snapshot
    cfg: ProposalConfig
    branches: dict[str, BranchState]
    claims: dict[str, Claim]


def _context(repo: GitRepo, ref: str | None, remote: str | None = None, *, fetch: bool = True) -> _Context:
    """The authority branch and the proposal branches; with a remote, its branches fetched first."""
    snapshot = load_snapshot(repo, ref)
    cfg = proposal_config(snapshot, remote)
    if remote and fetch:
        fetch_branches(repo, cfg)
    branches = load_branches(repo, cfg, snapshot.commit)
    if remote:
        mark_local_work(repo, branches)
    return _Context(snapshot, cfg, branches, {c.name: c for c in snapshot.claims})


def _same_change(a: acts.Act, name: str, p: Proposal) -> bool:
    return (
        a.proposal_branch == name
        and (a.claim, a.field) == (p.claim, p.field)
        and (a.old, a.new) == (acts.text(p.old), acts.text(p.new))
        and a.at >= p.created_at
    )


def apply_acts(branches: Mapping[str, BranchState], found: Sequence[acts.Act]) -> None:
    """What the authority branch says about each proposal replaces what its record says.

    The record's own ``acknowledgedBy`` and ``state: rejected`` are whatever
    was pushed to the branch; only an act on the authority branch for this
    branch and this change (made after the value was proposed, so a reopened
    proposal starts fresh) counts.
    """
    for name, s in branches.items():
        p = s.proposal
        if p is None:
            continue
        state = State.PENDING if p.state == State.REJECTED else p.state
        p = replace(p, state=state, acknowledged_by=None, acknowledged_at=None)
        if p.state == State.PENDING:
            mine = [a for a in found if _same_change(a, name, p)]  # newest first
            ack = next((a for a in mine if a.kind == "ack"), None)
            rejected = next((a for a in mine if a.kind == "reject"), None)
            if ack is not None:
                p = record.acknowledge(p, ack.author, ack.at)
            if rejected is not None:
                p = record.close(p, State.REJECTED, rejected.author, rejected.at, f"act {rejected.sha[:10]}")
        s.proposal = p


def list_proposals(repo: GitRepo, ref: str | None, now: datetime, *, remote: str | None = None) -> Report:
    ctx = _context(repo, ref, remote)
    report = Report("proposals list", now, ctx.snapshot.branch, ctx.snapshot.commit)
    report.result = ProposalsResult(
        [entry(s, *status_of(s, ctx.claims, now), now) for _, s in sorted(ctx.branches.items())]
    )
    return report


def _find(ctx: _Context, claim: str, field_name: str) -> BranchState:
    name = branch_name(ctx.cfg, claim, field_name.removeprefix("spec."))
    s = ctx.branches.get(name)
    if s is None:
        raise UsageError(
            f"no proposal branch {name} for {claim} spec.{field_name}; see feedbackctl proposals list"
        )
    return s


def show_proposal(
    repo: GitRepo, ref: str | None, claim: str, field_name: str, now: datetime, *, remote: str | None = None
) -> Report:
    ctx = _context(repo, ref, remote)
    s = _find(ctx, claim, field_name)
    report = Report("proposals show", now, ctx.snapshot.branch, ctx.snapshot.commit)
    report.result = ProposalShown(
        entry(s, *status_of(s, ctx.claims, now), now),
        record.to_document(s.proposal) if s.proposal else None,
        [{"sha": c.sha, "kind": c.kind or "human", "author": c.author} for c in s.chain],
    )
    return report


# --- lifecycle -------------------------------------------------------------------------


def _retry(action: str) -> FeedbackError:
    return FeedbackError(f"the branches kept moving during {CAS_ATTEMPTS} attempts to {action}; rerun later")


def _marker(
    ctx: _Context,
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
        trailers=[
            trailer(kind, p.claim, p.field, old=p.old, new=p.new, source=p.source, rule=p.rule, risk=p.risk)
        ],
    )
    return NewCommit(s.tip, {path: record.render(updated).encode()}, plan.message, now, author)


def _write_markers(
    repo: GitRepo,
    ctx: _Context,
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


Step = Callable[[_Context, BranchState, Status, str, Report], None]


def _act(
    repo: GitRepo,
    ctx: _Context,
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
            {
                **trailer(kind, p.claim, p.field, old=p.old, new=p.new, source=p.source, rule=p.rule,
                          risk=p.risk),
                acts.PROPOSAL_KEY: acts.proposal_ref(s.name, s.proposal_commit),
            }
        ],  # fmt: skip
    )
    authority = ctx.snapshot.branch
    if dry_run:
        report.commits.append(acts.commit_entry("(dry-run)", authority, plan))
        return
    tip = acts.remote_tip(repo, ctx.cfg.remote, authority) if ctx.cfg.remote else None
    sha, pushed = acts.record(repo, authority, ctx.snapshot.commit, plan, now, who, tip)
    report.commits.append(acts.commit_entry(sha, authority, plan, pushed))


def _delete_remote(repo: GitRepo, remote: str, ref: str, expected: str) -> bool:
    """Delete ``ref`` on ``remote`` only if it is still at ``expected`` (explicit-SHA lease)."""
    args = [
        "push",
        "--porcelain",
        f"--force-with-lease={ref}:{expected}",
        "--end-of-options",
        remote,
        f":{ref}",
    ]
    return repo._run(args, check=False).returncode == 0


def _one(
    repo: GitRepo,
    ref: str | None,
    target: tuple[str, str],
    now: datetime,
    command: str,
    step: Step,
    dry_run: bool,
    remote: str | None,
) -> Report:
    for _ in range(CAS_ATTEMPTS):
        ctx = _context(repo, ref, remote, fetch=not dry_run)
        s = _find(ctx, *target)
        status, detail = status_of(s, ctx.claims, now)
        report = Report(
            f"proposals {command}", now, ctx.snapshot.branch, ctx.snapshot.commit, dry_run=dry_run
        )
        try:
            step(ctx, s, status, detail, report)
        except ConflictError:
            continue
        return report
    raise _retry(command)


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

    def step(ctx: _Context, s: BranchState, status: Status, detail: str, report: Report) -> None:
        if status == Status.REJECTED:
            report.events.append({"message": f"{s.name} is already rejected ({detail})"})
            return
        if status not in (Status.PENDING, Status.STALE, Status.EXPIRED):
            raise FeedbackError(f"{s.name} is {status.value} ({detail}); there is nothing to reject")
        assert s.proposal is not None
        p = s.proposal
        subject = f"feedbackctl: reject {p.claim} spec.{p.field} {p.old} -> {p.new}"
        body = f"Rejected by {ident_text(who)}: proposal {s.name} ({(s.proposal_commit or '')[:12]})." + (
            f"\n\n{reason}" if reason else ""
        )
        _act(repo, ctx, s, report, "reject", subject, body, now, who, dry_run=dry_run)

    remote = acts.act_remote(repo, branch_of(repo, ref), remote, "rejection")
    return _one(repo, ref, (claim, field_name), now, "reject", step, dry_run, remote)


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

    def step(ctx: _Context, s: BranchState, status: Status, detail: str, report: Report) -> None:
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
        subject = f"feedbackctl: ack {p.claim} spec.{p.field} {p.old} -> {p.new}"
        body = (
            f"Acknowledged by {ident_text(who)}: proposal {s.name} ({(s.proposal_commit or '')[:12]}). "
            "It lifts the risk ceiling for this change only; every other guard still applies."
        )
        _act(repo, ctx, s, report, "ack", subject, body, now, who, dry_run=dry_run)

    remote = acts.act_remote(repo, branch_of(repo, ref), remote, "acknowledgment")
    return _one(repo, ref, (claim, field_name), now, "ack", step, dry_run, remote)


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

    def step(ctx: _Context, s: BranchState, status: Status, detail: str, report: Report) -> None:
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
            subject=f"feedbackctl: approve {p.claim} spec.{p.field} {p.old} -> {value}",
            body=f"Approved by {ident_text(who)} from proposal {s.name} ({s.tip[:12]})."
            + (f"\n\n{reason}" if reason else "")
            + beyond,
            trailers=[
                {
                    **trailer(
                        "approve",
                        p.claim,
                        p.field,
                        old=p.old,
                        new=value,
                        source=p.source,
                        rule=p.rule,
                        risk=level,
                        evidence=p.evidence_line or None,
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
                if _delete_remote(repo, remote, s.ref, s.remote):
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

    return _one(repo, ref, (claim, field_name), now, "approve", step, dry_run, remote)


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


def expire(
    repo: GitRepo, ref: str | None, now: datetime, *, dry_run: bool = False, remote: str | None = None
) -> Report:
    """Close every pending proposal older than 7 days (an ``expire`` commit on each branch)."""
    for _ in range(CAS_ATTEMPTS):
        ctx = _context(repo, ref, remote, fetch=not dry_run)
        report = Report("proposals expire", now, ctx.snapshot.branch, ctx.snapshot.commit, dry_run=dry_run)
        todo = []
        for _, s in sorted(ctx.branches.items()):
            status, _ = status_of(s, ctx.claims, now)
            p = s.proposal
            if status != Status.EXPIRED or p is None or p.state != State.PENDING:
                continue
            closed = record.close(p, State.EXPIRED, "feedbackctl", now, "no decision within 7 days")
            subject = f"feedbackctl: expire {p.claim} spec.{p.field} {p.old} -> {p.new}"
            body = f"Proposed {record.iso(p.created_at)}; no decision within 7 days."
            todo.append((s, _marker(ctx, s, closed, "expire", subject, body, now, None)))
        try:
            _write_markers(repo, ctx, report, todo, dry_run=dry_run)
        except ConflictError:
            continue
        return report
    raise _retry("expire proposals")


# --- for the auto-tuner ----------------------------------------------------------------


def acknowledgements(repo: GitRepo, commit: str, now: datetime) -> dict[tuple[str, str], Acknowledgement]:
    """The live acks on the authority branch at ``commit``, by (claim, field).

    They are inputs of the core decision (the risk-ceiling guard), nothing
    more: bounds, step, change cap and the time gates still decide.
    """
    return acts.live_acknowledgements(acts.read_acts(repo, commit), now)
