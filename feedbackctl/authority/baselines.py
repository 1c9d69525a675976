"""Baselines: the value a human last set, found walking back per file to the first human act."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from feedbackctl.authority.claimvalues import ValueMemo, ValueReader, parse_scalar, reader_for
from feedbackctl.authority.claimwalks import (
    PER_FILE_PASSES,
    Coverage,
    Histories,
    Segment,
    _batch,
    _before,
    _newest_date,
    _read_ahead,
    _scan,
    claim_files,
    has_bloom_filters,
    segments_of,
)
from feedbackctl.authority.commits import Commit as Commit
from feedbackctl.authority.commits import bulk
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.valuechanges import _blobs_of, _own_changes, read_log
from feedbackctl.core.models import (
    HUMAN_KINDS,
    Claim,
    FieldChange,
    Scalar,
)


def _known_baseline(changes: Sequence[FieldChange], cov: Coverage | None) -> Scalar:
    """The newest human-set value, where every change since it is known."""
    if cov is None:
        return None
    humans = [ch for ch in changes if ch.kind in HUMAN_KINDS and ch.old != ch.new and ch.at >= cov.since]
    return humans[-1].new if humans else None


def annotated_baseline(claim: Claim, field: str) -> Scalar:
    """An explicit baseline: annotation ``feedbackctl.io/baseline.<field>``."""
    raw = claim.annotations.get(f"feedbackctl.io/baseline.{field}")
    return parse_scalar(raw) if raw is not None else None


@bulk()  # builds tens of thousands of commits and changes, none in a cycle
def fill_baselines(
    repo: GitRepo,
    commit: str,
    claims: Sequence[Claim],
    histories: Histories,
    *,
    reader: ValueReader | None = None,
    wanted: Collection[tuple[str, str]] | None = None,
) -> Histories:
    """Find the human-set value of each claim field that has no baseline yet.

    ``wanted`` limits the work to those (claim, field) pairs. Where a claim's
    changes by value are known only over the value window, one pass first
    widens that to the trailer window; fields still without a human change
    are then traced per file, walking back in growing batches that stop at
    the first human act (an edit without trailers for the field, or a
    human-kind trailer); automated changes on the way are skipped.
    """
    fields = {name: dict(per) for name, per in histories.fields.items()}
    memo = histories.memo or ValueMemo(reader or reader_for(claims), claims)
    coverage = dict(histories.coverage)
    todo: list[tuple[Claim, str]] = []
    for c in claims:
        for f, h in fields.get(c.name, {}).items():
            if h.baseline is not None or (wanted is not None and (c.name, f) not in wanted):
                continue
            explicit = annotated_baseline(c, f)
            if explicit is not None:
                fields[c.name][f] = replace(h, baseline=explicit)
            elif c.value(f) is not None:
                todo.append((c, f))
    window = histories.window_since
    narrow = [
        c
        for c in {c.name: c for c, _ in todo}.values()
        if window is not None and c.name in coverage and coverage[c.name].since > window
    ]
    if window is not None and len(claim_files(narrow)) > PER_FILE_PASSES and not has_bloom_filters(repo):
        more, extended = _scan(repo, commit, window, narrow, sorted({f for _, f in todo}), memo, {}, coverage)
        coverage.update(extended)
        for claim, f, change in more:
            h = fields[claim][f]
            fields[claim][f] = replace(h, changes=tuple(sorted((*h.changes, change), key=lambda x: x.at)))
    pending: dict[tuple[str, str], Scalar] = {}
    starts: dict[str, datetime | None] = {}  # claim -> where its known changes begin (None: nothing known)
    segments: dict[str, tuple[Segment, ...]] = {}
    for c, f in todo:
        h = fields[c.name][f]
        cov = coverage.get(c.name)
        known = _known_baseline(h.changes, cov)
        if known is not None:
            fields[c.name][f] = replace(h, baseline=known)
            continue
        starts[c.name] = cov.since if cov is not None else None
        segments[c.name] = segments_of(c, cov, commit)
        pending[(c.name, f)] = c.value(f)
    found = _walk_back(repo, pending, starts, segments, memo)
    for (claim, f), value in found.items():
        fields[claim][f] = replace(fields[claim][f], baseline=value)
    memo.save()
    return replace(histories, fields=fields, coverage=coverage)


BASELINE_BATCHES = (2, 16, 128, 1024)


def _walk_back(
    repo: GitRepo,
    pending: Mapping[tuple[str, str], Scalar],
    starts: Mapping[str, datetime | None],
    segments: Mapping[str, Sequence[Segment]],
    memo: ValueMemo,
) -> dict[tuple[str, str], Scalar]:
    """Per file, walk its commits older than its start back to each field's last human act.

    A claim set by several files (a Kustomize base and overlay) takes the
    newest act found in any of them; a field no file ever changed keeps its
    value (the first commit, a human's, wrote it). Where a commit brought the
    claim into the file (a move, a rename) the walk goes on where it came from.
    """
    acts: dict[tuple[str, str], tuple[datetime, Scalar]] = {}
    walks: dict[tuple[str, str], dict[tuple[str, str], tuple[str, str]]] = defaultdict(dict)
    begin: dict[tuple[str, str], datetime | None] = {}  # (path, tip) -> its start (the newest of its claims')

    def add(seg: Segment, key: tuple[str, str]) -> None:
        w = (seg.path, seg.tip)
        walks[w][(seg.name, key[1])] = key  # (name in the file, field) -> (claim, field)
        start = starts[key[0]]
        begin[w] = _newest_date([begin[w], start]) if w in begin else start

    for key in pending:
        for seg in segments[key[0]]:
            add(seg, key)
    ahead = []
    for (path, tip), start in sorted(begin.items()):
        ahead += _read_ahead(repo, tip, path, BASELINE_BATCHES[0], None, _before(start))
    memo.load(repo, ahead, [])
    done: set[tuple[str, str]] = set()
    while walks:
        path, tip = w = min(walks)
        back, start = walks.pop(w), begin.pop(w)
        done.add(w)
        todo = set(back)
        offset, batch = 0, 0
        while todo:
            size = _batch(BASELINE_BATCHES, batch)
            batch += 1
            commits = read_log(repo, tip, until=_before(start), paths=[path], max_count=size, skip=offset)
            # One blob read per batch, not one per commit.
            memo.load(repo, [b for c in commits for b in _blobs_of(c, path) if b is not None], [path])
            for c in commits:  # newest first
                for k, value in _settle(repo, c, path, todo, memo).items():
                    key = back[k]
                    if key not in acts or acts[key][0] < c.at:
                        acts[key] = (c.at, value)
                for k in sorted(todo):
                    o = memo.entries.get((c.sha, path, k[0]))
                    if o is not None:
                        todo.discard(k)
                        if (o.path, o.tip) not in done:
                            add(Segment(o.path, o.name, o.tip), back[k])
                if not todo:
                    break
            if len(commits) < size:
                break
            offset += size
    return {key: acts[key][1] if key in acts else value for key, value in pending.items()}


def _settle(
    repo: GitRepo, c: Commit, path: str, todo: set[tuple[str, str]], memo: ValueMemo
) -> dict[tuple[str, str], Scalar]:
    """The fields this commit set by a human act (taken off ``todo``); automated ones are passed over."""
    memo.load(repo, [b for b in _blobs_of(c, path) if b is not None], [path])
    own = {
        (claim, f): new
        for claim, f, _, new in _own_changes(
            c, path, {k[0] for k in todo}, sorted({k[1] for k in todo}), memo, repo
        )
    }
    found: dict[tuple[str, str], Scalar] = {}
    for claim, f in sorted(todo):
        g = c.trailer_for(claim, f)
        if g is not None:
            if g.get("Feedback-Kind") in HUMAN_KINDS:
                found[(claim, f)] = parse_scalar(g.get("Feedback-To"))
            continue
        if (claim, f) in own:
            found[(claim, f)] = own[(claim, f)]
    todo.difference_update(found)
    return found
