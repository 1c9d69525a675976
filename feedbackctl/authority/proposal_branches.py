"""Proposal branches as git holds them: names, reading branches and their records, status.

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
The lifecycle commands are in ``feedbackctl.patterns.proposals``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from feedbackctl.authority import acts, proposal_record
from feedbackctl.authority.fastimport import read_objects
from feedbackctl.authority.gitrepo import GitRepo, check_ref_name
from feedbackctl.authority.snapshot import Snapshot
from feedbackctl.authority.trailers import parse_trailers
from feedbackctl.core import proposal as record
from feedbackctl.core.models import Claim
from feedbackctl.core.proposal import Proposal, ProposalError, State
from feedbackctl.errors import UsageError

DEFAULT_RECORD_DIR = "proposals"
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
    return repo.tips_merged_into(authority, scopes)


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
            s.proposal = proposal_record.parse(text, f"{name}:{at_proposal.partition(':')[2]}")
        except ProposalError as e:
            s.problem = s.problem or str(e)
            continue
        tip_text = blobs.get(at_tip) if s.handoff is None and at_tip != at_proposal else None
        if tip_text is not None:
            try:
                later = proposal_record.parse(tip_text, f"{name}:{at_tip.partition(':')[2]}")
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
    if remote not in repo.remotes():
        raise UsageError(f"no remote named '{remote}' in {repo.display}; add one with git remote add")
    spec = f"+refs/heads/{cfg.prefix}*:refs/remotes/{remote}/{cfg.prefix}*"
    repo.fetch_refs(remote, spec)


def mark_local_work(repo: GitRepo, branches: Mapping[str, BranchState]) -> None:
    """A local branch with commits the remote lacks is someone's work: treat it as handed off."""
    for s in branches.values():
        if s.local and s.remote and s.local != s.remote and not repo.is_ancestor(s.local, s.remote):
            s.handoff = s.handoff or s.local
            s.handoff_author = s.handoff_author or "a local commit not on the remote"


def worktree_branches(repo: GitRepo) -> set[str]:
    """Branches checked out in any work tree: proposal branches there are never moved."""
    return repo.checked_out_branches()


# --- what the authority branch decided -------------------------------------------------


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
