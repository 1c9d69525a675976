"""``history``: every feedback-driven change, read back from git; ``review``: closing a capture.

Git history is the audit trail. One ``git log`` pass over the authority
branch (every parent, see authority/commits.py) yields each commit's ``Feedback-*`` trailer groups (one entry
per change); human edits of tuned fields, which carry no trailers, are found
by value (the claim file at the commit against its parent) and marked
``human``.

A change tagged ``requires-review`` (a drift capture) is pending until a
later commit on the branch records ``Feedback-Kind: review`` with
``Feedback-Reviews: <sha>``; from then on its effective tag is ``reviewed``,
so ``history --tag requires-review`` (alias ``--pending-review``) empties.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from feedbackctl.authority import acts, cas
from feedbackctl.authority.commits import Commit, read_commits
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.history import ValueMemo, claim_files, parse_scalar, reader_for, value_events
from feedbackctl.authority.snapshot import branch_of, load_snapshot
from feedbackctl.authority.trailers import parse_trailers
from feedbackctl.authority.writer import Plan, trailer
from feedbackctl.clock import parse_instant
from feedbackctl.core.models import Claim, Scalar
from feedbackctl.core.results import Report, ReviewResult
from feedbackctl.errors import ConflictError, UsageError
from feedbackctl.patterns.proposal_acts import human_identity

REVIEW_KIND = "review"
REVIEWS_KEY = "Feedback-Reviews"
REQUIRES_REVIEW = "requires-review"
REVIEWED = "reviewed"
HUMAN = "human"

_RELATIVE = re.compile(r"^(\d+)\s*(m|h|d|w)$")
_UNIT = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


@dataclass(frozen=True)
class Entry:
    """One change (or marker) in the audit trail."""

    commit: str
    at: datetime
    author: str
    kind: str
    claim: str | None = None
    field: str | None = None  # bare spec key
    old: Scalar = None
    new: Scalar = None
    source: str | None = None
    rule: str | None = None
    risk: str | None = None
    evidence: str | None = None
    tags: tuple[str, ...] = ()
    reviews: str | None = None  # a review: the commit it reviews
    reviewed_by: str | None = None  # a capture: the review commit that closed it

    @property
    def pending_review(self) -> bool:
        return REQUIRES_REVIEW in self.tags and self.reviewed_by is None

    @property
    def effective_tags(self) -> tuple[str, ...]:
        if REQUIRES_REVIEW in self.tags and self.reviewed_by is not None:
            return tuple(REVIEWED if t == REQUIRES_REVIEW else t for t in self.tags)
        return self.tags


@dataclass(frozen=True)
class HistoryFilter:
    claim: str | None = None  # glob
    field: str | None = None  # glob over the bare key
    kinds: tuple[str, ...] = ()
    source: str | None = None  # glob
    tag: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def wants_humans(self) -> bool:
        return (not self.kinds or HUMAN in self.kinds) and self.tag is None and self.source is None

    def matches(self, e: Entry) -> bool:
        checks = (
            self.claim is None or (e.claim is not None and fnmatch.fnmatchcase(e.claim, self.claim)),
            self.field is None or (e.field is not None and fnmatch.fnmatchcase(e.field, self.field)),
            not self.kinds or e.kind in self.kinds,
            self.source is None or (e.source is not None and fnmatch.fnmatchcase(e.source, self.source)),
            self.tag is None or self.tag in e.effective_tags,
            self.since is None or e.at >= self.since,
            self.until is None or e.at <= self.until,
        )
        return all(checks)


def parse_when(text: str, now: datetime, option: str) -> datetime:
    """ISO-8601, or a duration before ``now`` like ``90m``, ``24h``, ``7d``, ``2w``."""
    match = _RELATIVE.match(text.strip())
    if match:
        return now - int(match.group(1)) * _UNIT[match.group(2)]
    return parse_instant(text, option)


def _tags(group: dict[str, str]) -> tuple[str, ...]:
    return tuple(t.strip() for t in group.get("Feedback-Tags", "").split(",") if t.strip())


def _trailer_entries(logged: Sequence[Commit]) -> list[Entry]:
    out = []
    for c in logged:
        for g in c.changes:
            kind = g.get("Feedback-Kind")
            if not kind:
                continue
            out.append(
                Entry(
                    commit=c.sha,
                    at=c.at,
                    author=c.author,
                    kind=kind,
                    claim=g.get("Feedback-Claim"),
                    field=g["Feedback-Field"].removeprefix("spec.") if g.get("Feedback-Field") else None,
                    old=parse_scalar(g.get("Feedback-From")),
                    new=parse_scalar(g.get("Feedback-To")),
                    source=g.get("Feedback-Source"),
                    rule=g.get("Feedback-Rule"),
                    risk=g.get("Feedback-Risk"),
                    evidence=g.get("Feedback-Evidence"),
                    tags=_tags(g),
                    reviews=g.get(REVIEWS_KEY),
                )
            )
    return out


def _reviewed(entries: list[Entry]) -> list[Entry]:
    """Link each requires-review change to the review that closed it (by sha or sha prefix)."""
    reviews = [(e.reviews.lower(), e.commit) for e in entries if e.kind == REVIEW_KIND and e.reviews]
    if not reviews:
        return entries
    out = []
    for e in entries:
        if REQUIRES_REVIEW in e.tags:
            by = next((sha for ref, sha in reviews if len(ref) >= 7 and e.commit.startswith(ref)), None)
            if by is not None:
                e = replace(e, reviewed_by=by)
        out.append(e)
    return out


def _human_entries(
    repo: GitRepo,
    logged: Sequence[Commit],
    files: Mapping[str, set[str]],
    fields: Sequence[str],
    claims: Sequence[Claim] = (),
) -> list[Entry]:
    """Value changes of tuned fields by commits without trailers for them (humans, merges' own values).

    The same reading the guards use (``history.value_events``): every file
    version is read once, by blob id; a merge shows only what differs from
    every parent. Files that set values of Kustomize-rendered claims (overlays,
    bases) are read the way autotune's settling reads them.
    """
    authors = {c.sha: c.author for c in logged}
    events = value_events(repo, logged, files, fields, ValueMemo(reader_for(claims), claims))
    return [
        Entry(ch.commit, ch.at, authors[ch.commit], HUMAN, claim, f, ch.old, ch.new)
        for claim, f, ch in events
    ]


@dataclass
class History:
    branch: str
    commit: str
    entries: list[Entry] = field(default_factory=list)


def read_history(repo: GitRepo, ref: str | None, filt: HistoryFilter) -> History:
    """Every matching entry on the authority branch, newest first."""
    snapshot = load_snapshot(repo, ref)
    logged = read_commits(repo, snapshot.commit, since=filt.since)
    entries = _trailer_entries(logged)
    if filt.wants_humans():
        fields = [
            f
            for f in snapshot.settings.policy.tuned_fields
            if filt.field is None or fnmatch.fnmatchcase(f, filt.field)
        ]
        claims = [c for c in snapshot.claims if filt.claim is None or fnmatch.fnmatchcase(c.name, filt.claim)]
        entries += _human_entries(repo, logged, claim_files(claims), fields, claims)
    order = {c.sha: i for i, c in enumerate(logged)}
    entries.sort(key=lambda e: (order.get(e.commit, 0), e.claim or "", e.field or ""))
    entries = _reviewed(entries)
    return History(snapshot.branch, snapshot.commit, [e for e in entries if filt.matches(e)])


def entry_json(e: Entry) -> dict[str, object]:
    return {
        "commit": e.commit,
        "at": e.at.isoformat().replace("+00:00", "Z"),
        "author": e.author,
        "kind": e.kind,
        "human": e.kind == HUMAN,
        "claim": e.claim,
        "field": f"spec.{e.field}" if e.field else None,
        "from": e.old,
        "to": e.new,
        "source": e.source,
        "rule": e.rule,
        "risk": e.risk,
        "evidence": e.evidence,
        "tags": list(e.effective_tags),
        "pendingReview": e.pending_review,
        "reviewedBy": e.reviewed_by,
        "reviews": e.reviews,
    }


# --- review -------------------------------------------------------------------------


def _resolve_commit(repo: GitRepo, commit: str) -> str:
    try:
        return repo.resolve(commit)
    except UsageError:
        raise UsageError(
            f"commit '{commit}' not found in {repo.display}; "
            "pass a sha from feedbackctl history --pending-review"
        ) from None


def review_of(repo: GitRepo, sha: str, tip: str) -> str | None:
    """The review commit on the branch (after ``sha``) that already reviews ``sha``."""
    for c in read_commits(repo, f"{sha}..{tip}", diffs=False, trailers_only=True):
        for g in c.changes:
            ref = (g.get(REVIEWS_KEY) or "").lower()
            if g.get("Feedback-Kind") == REVIEW_KIND and len(ref) >= 7 and sha.startswith(ref):
                return c.sha
    return None


def _review_remote(repo: GitRepo, branch: str, sha: str, remote: str | None) -> acts.Tip | None:
    """A review goes where the capture is: to the remote when the remote's branch holds it.

    ``--remote``, else the branch's upstream; a branch tracking none (a local
    ``drift --branch`` review branch) is reviewed here and the review travels with it.
    """
    if remote is None:
        remote = acts.upstream(repo, branch)
    elif remote not in repo.remotes():
        raise UsageError(f"no remote named '{remote}' in {repo.display}; add one with git remote add")
    return acts.holding(repo, remote, branch, sha)


def record_review(
    repo: GitRepo,
    ref: str | None,
    commit: str,
    note: str,
    now: datetime,
    *,
    dry_run: bool,
    verdict: str | None = None,
    remote: str | None = None,
) -> Report:
    """Commit ``Feedback-Kind: review`` for every requires-review change of ``commit``.

    ``verdict`` ``keep`` accepts the captured values as the tested configuration
    (reset stops undoing them), ``revert`` has reset move them back; a later
    verdict replaces an earlier one (see docs/history.md).
    """

    def attempt(_: int) -> Report | cas.Moved:
        branch = branch_of(repo, ref)
        tip = repo.resolve(branch)
        sha = _resolve_commit(repo, commit)
        if not repo.is_ancestor(sha, tip):
            raise UsageError(f"commit {sha[:10]} is not on {branch}; pass --ref the branch that holds it")
        message = repo.message(sha)
        pending = [g for g in parse_trailers(message) if REQUIRES_REVIEW in _tags(g)]
        if not pending:
            raise UsageError(
                f"commit {sha[:10]} carries no change tagged {REQUIRES_REVIEW}; nothing to review "
                "(see feedbackctl history --pending-review)"
            )
        report = Report(f"{REVIEW_KIND}", now, branch, tip, dry_run=dry_run)
        done = review_of(repo, sha, tip)
        if done is not None and verdict is None:
            report.result = ReviewResult(reviewed_by=done)
            report.events.append(
                {"message": f"{sha[:10]} was already reviewed in {done[:10]}; nothing to do"}
            )
            return report
        trailers = []
        for g in pending:
            field_name = (g.get("Feedback-Field") or "").removeprefix("spec.") or None
            group = {**trailer(REVIEW_KIND, g.get("Feedback-Claim", ""), field_name), REVIEWS_KEY: sha}
            if verdict is not None:
                # The captured from -> to travel with the verdict, so reset reads one commit.
                group |= {k: g[k] for k in ("Feedback-From", "Feedback-To") if k in g}
                group[acts.VERDICT_KEY] = verdict
            trailers.append(group)
        first = pending[0]
        what = " ".join(first.get(k, "") for k in ("Feedback-Kind", "Feedback-Claim", "Feedback-Field"))
        more = f" and {len(pending) - 1} more" if len(pending) > 1 else ""
        verb = {"keep": "review (keep)", "revert": "review (revert)"}.get(verdict or "", "review")
        plan = Plan(
            subject=f"feedbackctl: {verb} {' '.join(what.split())}{more} ({sha[:10]})",
            body=note,
            trailers=trailers,
        )
        if dry_run:
            report.commits.append(acts.commit_entry("(dry-run)", branch, plan))
            return report
        try:
            target = _review_remote(repo, branch, sha, remote)
            who = human_identity(repo)  # a person's act
            new, pushed = acts.record(repo, branch, tip, plan, now, who, target)
        except ConflictError:
            return cas.MOVED
        report.result = ReviewResult(reviews=sha)
        report.commits.append(acts.commit_entry(new, branch, plan, pushed))
        return report

    return cas.retry(attempt)
