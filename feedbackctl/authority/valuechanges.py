"""Field changes out of commits: ``Feedback-*`` trailers, and values changed by anyone else.

A value a commit changed without a trailer for it is a human act (a hand
edit, or a merge's own resolution); see ``_own_changes`` for what a merge,
a move and a stray trailer count as.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from feedbackctl.authority.claimvalues import ValueMemo, parse_scalar
from feedbackctl.authority.commits import Commit as Commit
from feedbackctl.authority.commits import read_commits
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.trailers import RUN_KEY
from feedbackctl.core.models import (
    AUTOMATED_KINDS,
    MARKER_KINDS,
    FieldChange,
    Scalar,
)

# Every commit reachable from a rev (any parent), newest first, with trailers and blobs;
# ``only`` keeps just those paths' blobs, ``paths`` limits the walk (see authority/commits.py).
read_log = read_raw_log = read_commits


def read_trailer_log(
    repo: GitRepo, rev: str, *, since: datetime | None = None, until: datetime | None = None
) -> list[Commit]:
    """Commits between ``since`` and ``until`` that carry ``Feedback-*`` trailers, newest first.

    ``--grep`` lets git skip every other message; no diffs are computed.
    """
    commits = read_commits(repo, rev, since=since, until=until, diffs=False, trailers_only=True)
    return [c for c in commits if c.changes or c.stray]


def _value_events(
    repo: GitRepo,
    commits: Sequence[Commit],
    claim_paths: Mapping[str, set[str]],
    fields: Sequence[str],
    memo: ValueMemo,
) -> list[tuple[str, str, FieldChange]]:
    """Value changes made by commits without trailers for them (humans, merges)."""
    todo = [(c, p) for c in commits for p in c.paths if p in claim_paths]
    memo.load(repo, [b for c, p in todo for b in _blobs_of(c, p) if b is not None], [p for _, p in todo])
    events = []
    for c, p in todo:
        for claim, f, old, new in _own_changes(c, p, claim_paths[p], fields, memo, repo):
            if c.trailer_for(claim, f) is None:
                events.append((claim, f, FieldChange(c.sha, c.at, old, new, "human")))
    return events


value_events = _value_events  # the one reading of human changes: guards, ``history``, drift


def _blobs_of(c: Commit, path: str) -> tuple[str | None, ...]:
    if path in c.merged:
        parents, new = c.merged[path]
        return (*parents, new)
    return c.blobs.get(path, (None, None))


def _own_changes(
    c: Commit,
    path: str,
    claims: Collection[str],
    fields: Sequence[str],
    memo: ValueMemo,
    repo: GitRepo | None = None,
) -> list[tuple[str, str, Scalar, Scalar]]:
    """(claim, field, old, new) for the values this commit itself set in one file.

    A merge sets only the values that differ from every parent: one it took
    from a parent is that parent's change, already on the walk. A commit
    whose message calls it automated outside its trailer block sets nothing
    a human can be credited with. A claim new in the file that the commit
    moved or renamed from elsewhere (``repo`` given) is compared with the
    values it had there: moving a claim sets nothing (docs/history.md,
    "Claim identity").
    """
    if any(k in AUTOMATED_KINDS for k in c.stray):
        return []
    if c.is_merge:
        if path not in c.merged:
            return []  # the file is one parent's: nothing of the merge's own
        parent_blobs, new_blob = c.merged[path]
        parents = [memo.values(path, b) for b in parent_blobs]
    else:
        old_blob, new_blob = c.blobs.get(path, (None, None))
        parents = [memo.values(path, old_blob)]
    after = memo.values(path, new_blob)
    out = []
    for claim in sorted(claims):
        now = after.get(claim)
        before = []
        for i, p in enumerate(parents):
            was = p.get(claim)
            if was is None and now is not None and repo is not None:
                origin = memo.origin(repo, c, i, path, claim)
                was = origin.values if origin is not None else None
            before.append(was or {})
        for f in fields:
            new = (now or {}).get(f)
            olds = [b.get(f) for b in before]
            if all(old != new for old in olds):
                out.append((claim, f, olds[0], new))
    return out


def _trailer_events(commits: Sequence[Commit]) -> list[tuple[str, str, FieldChange]]:
    # Read for every trailer of the whole history on every run (a flap freeze never expires):
    # each value text is parsed once.
    events = []
    scalars: dict[str | None, Scalar] = {}
    for c in commits:
        for g in c.changes:
            claim, field = g.get("Feedback-Claim"), g.get("Feedback-Field", "")
            if not claim or not field:
                continue
            kind = g.get("Feedback-Kind", "")
            tags = g.get("Feedback-Tags")
            text_old = g.get("Feedback-From")
            text_new = text_old if kind in MARKER_KINDS else g.get("Feedback-To", text_old)
            for text in (text_old, text_new):
                if text not in scalars:
                    scalars[text] = parse_scalar(text)
            change = FieldChange(
                commit=c.sha,
                at=c.at,
                old=scalars[text_old],
                new=scalars[text_new],
                kind=kind,
                source=g.get("Feedback-Source"),
                rule=g.get("Feedback-Rule"),
                tags=tuple(t.strip() for t in tags.split(",") if t.strip()) if tags else (),
                run=g.get(RUN_KEY),
            )
            events.append((claim, field.removeprefix("spec."), change))
    return events


def _group(events: Sequence[tuple[str, str, FieldChange]]) -> dict[str, dict[str, list[FieldChange]]]:
    per: dict[str, dict[str, list[FieldChange]]] = defaultdict(lambda: defaultdict(list))
    for claim, name, change in sorted(events, key=lambda e: e[2].at):
        per[claim][name].append(change)
    return per


def _with_trailers(c: Commit, marked: Mapping[str, Commit]) -> Commit:
    found = marked.get(c.sha)
    return replace(c, changes=found.changes) if found is not None else c
