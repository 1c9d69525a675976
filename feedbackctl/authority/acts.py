"""Authority acts (ack, reject, ...): commits on the authority branch.

A proposal branch is a plain branch that anyone who can push branches can
write; the authority branch is where branch protection lives. So a human's
decision about a proposal counts only as a commit on the authority branch
whose trailers name the act, the claim field, the value and the exact
proposal commit (``Feedback-Proposal: <branch>@<sha>``). The commit changes no
file, so history readers that follow claim files never see it; its author is
the person who decided. See docs/propose.md ("Trust model").

``unfreeze``, ``review`` and ``recommendations dismiss|accept`` are acts too and
travel the same way (``record``); the last two also edit files (the
recommendation sidecar, and for accept the claim). See docs/propose.md ("Remotes").
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.trailers import parse_trailers
from feedbackctl.authority.writer import Plan
from feedbackctl.core.models import Acknowledgement, Scalar
from feedbackctl.errors import CommandError, ConflictError, FeedbackError, UsageError

PROPOSAL_KEY = "Feedback-Proposal"
# Acts about proposals that this module reads back.
PROPOSAL_ACTS = ("ack", "reject", "approve")
# An ack authorises a move for as long as a proposal lives.
ACK_VALID = timedelta(days=7)
_SEP, _END = "\x1f", "\x1e"


@dataclass(frozen=True)
class Act:
    sha: str
    kind: str
    author: str
    at: datetime
    claim: str
    field: str
    old: str  # trailer text
    new: str
    proposal_branch: str
    proposal_commit: str

    @property
    def proposal(self) -> str:
        return f"{self.proposal_branch}@{self.proposal_commit}"


def proposal_ref(branch: str, commit: str) -> str:
    return f"{branch}@{commit}"


def _parse(sha: str, author: str, stamp: str, message: str) -> list[Act]:
    out = []
    at = datetime.fromtimestamp(int(stamp), UTC)
    for g in parse_trailers(message):
        kind = g.get("Feedback-Kind", "")
        branch, _, commit = g.get(PROPOSAL_KEY, "").rpartition("@")
        if kind not in PROPOSAL_ACTS or not branch or len(commit) < 40:
            continue
        out.append(
            Act(
                sha=sha,
                kind=kind,
                author=author,
                at=at,
                claim=g.get("Feedback-Claim", ""),
                field=g.get("Feedback-Field", "").removeprefix("spec."),
                old=g.get("Feedback-From", ""),
                new=g.get("Feedback-To", ""),
                proposal_branch=branch,
                proposal_commit=commit.lower(),
            )
        )
    return out


def read_acts(repo: GitRepo, tip: str) -> list[Act]:
    """Every proposal act reachable from ``tip`` (any parent), newest first.

    The walk is never cut by commit dates: a back-dated commit must not hide
    the acts behind it.
    """
    kinds = "|".join(PROPOSAL_ACTS)
    out = repo.git(
        "log",
        f"--format=%H{_SEP}%an <%ae>{_SEP}%ct{_SEP}%B{_END}",
        "-E",
        f"--grep=^{PROPOSAL_KEY}:",
        f"--grep=^Feedback-Kind: *({kinds})",
        "--all-match",
        tip,
        "--",
    ).decode("utf-8", "replace")
    acts: list[Act] = []
    for record in out.split(_END):
        parts = record.strip("\n").split(_SEP, 3)
        if len(parts) == 4:
            acts.extend(_parse(*parts))
    acts.sort(key=lambda a: a.at, reverse=True)
    return acts


def text(v: Scalar) -> str:
    """A value as its trailer spells it (``Feedback-From/To``)."""
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _scalar(text: str) -> Scalar:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def acknowledgement(act: Act) -> Acknowledgement:
    return Acknowledgement(
        commit=act.sha,
        claim=act.claim,
        field=act.field,
        old=_scalar(act.old),
        new=_scalar(act.new),
        by=act.author,
        at=act.at,
    )


def live_acknowledgements(acts: Sequence[Act], now: datetime) -> dict[tuple[str, str], Acknowledgement]:
    """The newest ack per claim field, unless younger acts closed it or it is older than 7 days."""
    out: dict[tuple[str, str], Acknowledgement] = {}
    closed: set[tuple[str, str]] = set()
    for a in acts:  # newest first
        key = (a.claim, a.field)
        if key in closed or key in out:
            continue
        if a.kind != "ack":
            closed.add(key)
        elif a.at <= now < a.at + ACK_VALID:
            out[key] = acknowledgement(a)
    return out


def verify_acknowledgement(
    repo: GitRepo, sha: str, commit: str, claim: str, field: str
) -> Acknowledgement | str:
    """The ack named by an auto-tune ``commit``, or why it does not count.

    It must be an ack act for the same claim field, reachable from the
    auto-tune commit's parent (so recorded on the authority branch before it).
    """
    full = sha.strip().lower()
    try:
        resolved = repo.resolve(f"{full}^{{commit}}") if full else ""
    except UsageError:
        resolved = ""
    if not resolved:
        return f"acknowledgement {full[:10] or '(empty)'} is not a commit in this repository"
    parent = f"{commit}^"
    if not repo.is_ancestor(resolved, parent):
        return f"acknowledgement {resolved[:10]} is not on the authority branch before this commit"
    raw = repo.git("log", "-1", f"--format=%H{_SEP}%an <%ae>{_SEP}%ct{_SEP}%B", resolved, "--")
    parts = raw.decode("utf-8", "replace").split(_SEP, 3)
    for act in _parse(*parts) if len(parts) == 4 else []:
        if act.kind == "ack" and act.claim == claim and act.field == field:
            return acknowledgement(act)
    return f"commit {resolved[:10]} is not an ack of {claim} spec.{field}"


# --- writing --------------------------------------------------------------------------


def upstream(repo: GitRepo, branch: str) -> str | None:
    """The remote ``branch`` tracks (``git config branch.<b>.remote``), if any."""
    try:
        name = repo.branch_remote(branch.removeprefix("refs/heads/"))
    except CommandError:  # an unreadable config counts as no upstream
        name = ""
    return name if name and name != "." else None


def act_remote(repo: GitRepo, branch: str, remote: str | None, what: str) -> str | None:
    """Where an act must go: ``--remote``, else the authority branch's upstream.

    An act recorded only in one clone is lost to every other clone, so a
    repository with remotes but no upstream for the branch needs ``--remote``.
    """
    names = repo.remotes()
    if remote is not None:
        if remote not in names:
            raise UsageError(f"no remote named '{remote}' in {repo.display}; add one with git remote add")
        return remote
    tracked = upstream(repo, branch)
    if tracked is not None:
        return tracked
    if names:
        raise UsageError(
            f"{repo.display} has remote '{names[0]}' and {branch} tracks none: a {what} recorded only "
            f"here is lost to every other clone; rerun with --remote {names[0]}"
        )
    return None


@dataclass(frozen=True)
class Tip:
    """A remote's branch as fetched for one act: built on ``sha``, pushed with it as the lease."""

    remote: str
    sha: str


def remote_tip(repo: GitRepo, remote: str, branch: str) -> Tip:
    """Fetch ``branch`` from ``remote`` once, for an act about to be built on it."""
    there = repo.fetch(remote, branch)
    if there is None:
        raise FeedbackError(f"{remote} has no branch {branch}; push it first (git push {remote} {branch})")
    return Tip(remote, there)


def holding(repo: GitRepo, remote: str | None, branch: str, sha: str) -> Tip | None:
    """``remote``'s tip when its ``branch`` holds ``sha``, else None: an act goes where what it acts on is.

    An act about commits only this clone has (a freeze from unpushed auto-tunes, a
    capture on a local review branch) is recorded here and travels with them.
    """
    if remote is None:
        return None
    there = repo.fetch(remote, branch)
    return Tip(remote, there) if there is not None and repo.is_ancestor(sha, there) else None


def record(
    repo: GitRepo,
    branch: str,
    base: str,
    plan: Plan,
    now: datetime,
    author: tuple[str, str] | None,
    tip: Tip | None,
) -> tuple[str, bool]:
    """Commit the act on the authority branch; (sha, pushed).

    Most acts change no file; those that do (``recommendations accept``) bring
    edits made against the commit they are built on. With a remote ``tip`` the
    act is built on it and pushed with it as the lease, so every clone sees it;
    the local branch follows when it can fast-forward. Raises ConflictError when
    a branch moved: re-read and retry.
    """
    if tip is None:
        sha = repo.write_commit(base, plan.edits, plan.message, now, author=author)
        repo.advance(branch, sha, base)
        return sha, False
    sha = repo.write_commit(tip.sha, plan.edits, plan.message, now, author=author)
    if not repo.push(tip.remote, branch, sha, tip.sha):
        raise ConflictError(f"{tip.remote}/{branch} moved; re-reading it")
    if repo.is_ancestor(base, tip.sha):
        # The act is on the remote either way; when the checkout cannot follow, a pull brings it.
        with contextlib.suppress(FeedbackError):
            repo.advance(branch, sha, base)
    return sha, True


def commit_entry(sha: str, branch: str, plan: Plan, pushed: bool = False) -> dict[str, Any]:
    """An act's line in the report's ``commits`` (``sha`` is ``(dry-run)`` when nothing was written)."""
    done: dict[str, Any] = {"sha": sha, "branch": branch, "subject": plan.subject}
    done["files"] = sorted(plan.edits)
    if pushed:
        done["pushed"] = True
    return done


# --- reviews of drift captures ------------------------------------------------------------

VERDICT_KEY = "Feedback-Review"
VERDICTS = ("keep", "revert")


@dataclass(frozen=True)
class Verdict:
    """A review's decision about a captured value: ``keep`` it as tested, or ``revert`` it."""

    sha: str
    verdict: str
    claim: str
    field: str
    old: str  # the capture's from -> to, as trailer text
    new: str


def review_verdicts(repo: GitRepo, tip: str) -> dict[tuple[str, str], Verdict]:
    """The newest keep/revert review per claim field reachable from ``tip``."""
    grep = f"--grep=^{VERDICT_KEY}: *({'|'.join(VERDICTS)})"
    out = repo.git("log", f"--format=%H{_SEP}%B{_END}", "-E", grep, tip, "--").decode("utf-8", "replace")
    found: dict[tuple[str, str], Verdict] = {}
    for entry in out.split(_END):  # newest first
        sha, _, message = entry.strip("\n").partition(_SEP)
        for g in parse_trailers(message):
            verdict = g.get(VERDICT_KEY, "")
            key = (g.get("Feedback-Claim", ""), g.get("Feedback-Field", "").removeprefix("spec."))
            if g.get("Feedback-Kind") != "review" or verdict not in VERDICTS or key in found:
                continue
            found[key] = Verdict(sha, verdict, *key, g.get("Feedback-From", ""), g.get("Feedback-To", ""))
    return found
