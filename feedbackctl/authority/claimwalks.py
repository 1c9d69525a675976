"""Where a claim's history lies: the value scan over a window, and walks that follow a claim.

``Coverage`` says from when a claim's changes by value are known; older
history is read along ``Segment``s (a file, a name, a tip), following the
claim across moves and renames (authority/identity.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from feedbackctl.authority import logcache
from feedbackctl.authority.claimvalues import ValueMemo
from feedbackctl.authority.commits import Commit as Commit
from feedbackctl.authority.commits import read_commits
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.identity import Origin
from feedbackctl.authority.valuechanges import (
    _blobs_of,
    _group,
    _value_events,
    _with_trailers,
    read_log,
    read_raw_log,
)
from feedbackctl.core import flap
from feedbackctl.core.models import (
    Claim,
    FieldChange,
    FieldHistory,
    FleetHistory,
)
from feedbackctl.core.policy import Policy


def claim_files(claims: Sequence[Claim]) -> dict[str, set[str]]:
    """Every file that sets a value of a claim -> the claims it sets."""
    files: dict[str, set[str]] = defaultdict(set)
    for c in claims:
        files[c.path].add(c.name)
        for loc in c.locations.values():
            files[loc.path].add(c.name)
    return files


@dataclass(frozen=True)
class Coverage:
    """Where one claim's changes by value are complete.

    Every value change of its files at or after ``since`` is known; older
    ones are found by walking its files' history from ``resume`` (the tip the
    scan started at) filtered to the commits dated before ``since``. The walk
    follows every parent, so "where a walk stopped" is a date, not a commit.
    """

    since: datetime
    resume: str | None
    # Where its history older than ``since`` lies when a move or a rename since
    # then brought it to its files (None: its files now, under its name, from
    # ``resume``); and the names it had before such renames, with their dates.
    segments: tuple[Segment, ...] | None = None
    aliases: tuple[tuple[str, datetime], ...] = ()


@dataclass(frozen=True)
class Segment:
    """A stretch of one claim's history: in file ``path``, named ``name``, reachable from ``tip``."""

    path: str
    name: str
    tip: str


def segments_of(claim: Claim, cov: Coverage | None, tip: str) -> tuple[Segment, ...]:
    """Where to read a claim's history older than its coverage (all of it without one)."""
    if cov is not None and cov.segments is not None:
        return cov.segments
    start = cov.resume if cov is not None and cov.resume else tip
    return tuple(Segment(p, claim.name, start) for p in sorted(claim_files([claim])))


def _entries(
    walked: Sequence[tuple[Sequence[Commit], Mapping[str, Collection[str]]]], memo: ValueMemo
) -> dict[tuple[str, str], Origin]:
    """(path, name) -> the newest commit on these walks that brought that claim into that file."""
    found: dict[tuple[str, str], Origin] = {}
    for commits, files in walked:
        for c in commits:
            for path in c.paths:
                for name in files.get(path, ()):
                    o = memo.entries.get((c.sha, path, name))
                    if o is not None and ((path, name) not in found or found[(path, name)].at < o.at):
                        found[(path, name)] = o
    return found


def _follow(
    repo: GitRepo,
    since: datetime,
    upto: Mapping[str, datetime | None],
    opened: Sequence[tuple[str, Segment]],
    fields: Sequence[str],
    memo: ValueMemo,
    marked: Mapping[str, Commit],
) -> tuple[list[tuple[str, str, FieldChange]], dict[str, tuple[list[Segment], list[tuple[str, datetime]]]]]:
    """Value changes back to ``since`` along each (claim, segment), following moves and renames.

    Returns the events (under the claim's name now) and, per claim, the
    segments where its older history lies and the names it had before.
    """
    events: list[tuple[str, str, FieldChange]] = []
    out: dict[str, tuple[list[Segment], list[tuple[str, datetime]]]] = {}
    todo = list(opened)
    seen: set[tuple[str, Segment]] = set()
    while todo:
        claim, seg = todo.pop(0)
        if (claim, seg) in seen:
            continue
        seen.add((claim, seg))
        leaves, aliases = out.setdefault(claim, ([], []))
        commits = read_raw_log(repo, seg.tip, since=since, until=_before(upto.get(claim)), paths=[seg.path])
        ordered = [_with_trailers(c, marked) for c in reversed(commits)]
        files = {seg.path: {seg.name}}
        events += [(claim, f, ch) for _, f, ch in _value_events(repo, ordered, files, fields, memo)]
        entry = _entries([(ordered, files)], memo).get((seg.path, seg.name))
        if entry is None:
            leaves.append(seg)
            continue
        if entry.name != seg.name:
            aliases.append((entry.name, entry.at))
        todo.append((claim, Segment(entry.path, entry.name, entry.tip)))
    return events, out


def aliased(
    events: Sequence[tuple[str, str, FieldChange]], aliases: Mapping[str, Sequence[tuple[str, datetime]]]
) -> list[tuple[str, str, FieldChange]]:
    """The events of names a claim had before a rename, under its name now (older than the rename)."""
    out = []
    for claim, former in aliases.items():
        for name, at in former:
            out += [(claim, f, ch) for n, f, ch in events if n == name and ch.at < at]
    return out


def _renamed_frozen(
    repo: GitRepo,
    tip: str,
    events: Sequence[tuple[str, str, FieldChange]],
    known: Collection[str],
    now: datetime,
    policy: Policy,
    memo: ValueMemo,
) -> list[tuple[str, str, datetime]]:
    """(former name, the name it has now, when renamed) for renamed claims whose fields are frozen.

    The value scan meets only renames inside its window, and a flap freeze
    never expires; so a name that is no claim now and whose trailers freeze
    a field is followed forward from its newest trailer to what it became.
    """
    per = _group([e for e in events if e[0] not in known])
    out = []
    for name, changes in sorted(per.items()):
        if all(flap.flapping(chs, now, policy.limits) is None for chs in changes.values()):
            continue
        newest = max((ch for chs in changes.values() for ch in chs), key=lambda ch: ch.at)
        found = _successor(repo, tip, name, newest.commit, memo)
        if found is not None:
            out.append((name, *found))
    return out


def _successor(repo: GitRepo, tip: str, name: str, sha: str, memo: ValueMemo) -> tuple[str, datetime] | None:
    """What claim ``name`` as of commit ``sha`` is called at ``tip``, and when it was first renamed."""
    found = read_commits(repo, sha, max_count=1)
    if not found:
        return None
    c = found[0]
    memo.load(repo, [new for _, new in c.blobs.values() if new], list(c.blobs))
    path = next((p for p, (_, new) in sorted(c.blobs.items()) if name in memo.values(p, new)), None)
    current, renamed, since = name, None, c.at
    seen: set[str] = set()
    while path is not None:
        left = None
        for d in reversed(read_raw_log(repo, tip, since=since, paths=[path])):  # oldest first
            old, new = d.blobs.get(path, (None, None))
            memo.load(repo, [b for b in (old, new) if b], [path])
            gone = current in memo.values(path, old) and current not in memo.values(path, new)
            if gone and d.sha not in seen:
                left = d
                break
        if left is None or left.parent is None:
            break
        seen.add(left.sha)
        went = memo.origins.successor(repo, left.parent, left.sha, current)
        if went is None:
            return None  # deleted
        path, now_called = went
        if now_called != current:
            renamed = renamed or left.at
            current = now_called
        since = left.at
    return (current, renamed) if renamed is not None and current != name and path is not None else None


@dataclass(frozen=True)
class Histories:
    fields: dict[str, dict[str, FieldHistory]]  # claim -> field -> history
    fleet: FleetHistory
    coverage: Mapping[str, Coverage] = field(default_factory=dict)  # missing: nothing by value
    window_since: datetime | None = None  # trailers are known from here on
    memo: ValueMemo | None = field(default=None, compare=False, repr=False)

    def for_claim(self, claim: str) -> dict[str, FieldHistory]:
        return self.fields.get(claim, {})


# Past this many files, one unfiltered pass over a time range beats one
# path-limited pass per file (git 2.39 uses Bloom filters for one path only).
PER_FILE_PASSES = 8


def _before(t: datetime | None) -> datetime | None:
    """The newest date not yet covered by a scan down to ``t`` (git compares whole seconds)."""
    return None if t is None else datetime.fromtimestamp(int(t.timestamp()) - 1, UTC)


def _unknown(
    events: list[tuple[str, str, FieldChange]], upto: Mapping[str, datetime | None]
) -> list[tuple[str, str, FieldChange]]:
    """Drop the events of a claim already covered (at or after its ``upto``)."""
    if not any(upto.values()):
        return events  # nothing covered yet: a first scan (every run's, over the whole fleet)
    out = []
    for e in events:
        u = _before(upto.get(e[0]))
        if u is None or e[2].at <= u:
            out.append(e)
    return out


def _scan(
    repo: GitRepo,
    tip: str,
    since: datetime,
    claims: Sequence[Claim],
    fields: Sequence[str],
    memo: ValueMemo,
    marked: Mapping[str, Commit],
    known: Mapping[str, Coverage] | None = None,
) -> tuple[list[tuple[str, str, FieldChange]], dict[str, Coverage]]:
    """Value changes of ``claims`` back to ``since``, and their coverage afterwards.

    ``known`` is each claim's current coverage: only older commits are read
    for it. Many files take one unfiltered pass; otherwise each file takes a
    path-limited one.
    """
    upto = {c.name: (known[c.name].since if known and c.name in known else None) for c in claims}
    # A claim whose older history lies elsewhere (moved, renamed) is read there.
    moved = {n: cov for n, cov in (known or {}).items() if n in upto and cov.segments is not None}
    files = claim_files([c for c in claims if c.name not in moved])
    coverage = dict.fromkeys((c.name for c in claims), Coverage(since, tip))  # frozen: one serves all
    walked: list[tuple[Sequence[Commit], Mapping[str, Collection[str]]]] = []
    events: list[tuple[str, str, FieldChange]] = []
    if len(files) > PER_FILE_PASSES:
        until = _newest_date(upto[n] for names in files.values() for n in names)
        commits = read_raw_log(repo, tip, since=since, until=_before(until), only=files)
        ordered = [_with_trailers(c, marked) for c in reversed(commits) if c.paths]
        events += _value_events(repo, ordered, files, fields, memo)
        walked.append((ordered, files))
    else:
        for path, names in sorted(files.items()):
            until = _newest_date(upto[n] for n in names)
            commits = read_raw_log(repo, tip, since=since, until=_before(until), paths=[path])
            ordered = [_with_trailers(c, marked) for c in reversed(commits)]
            events += _value_events(repo, ordered, {path: names}, fields, memo)
            walked.append((ordered, {path: names}))
    entered = _entries(walked, memo)
    opened = [(name, seg) for name, cov in moved.items() for seg in cov.segments or ()]
    walked_here: dict[str, list[Segment]] = {}  # files read above that the claim did not enter
    renamed: dict[str, list[tuple[str, datetime]]] = {}
    arrived = {name for _, name in entered}  # most claims entered none of their files in the window
    for c in claims:
        if c.name in moved or c.name not in arrived:
            continue
        paths = sorted(claim_files([c]))
        if not any((p, c.name) in entered for p in paths):
            continue
        for p in paths:
            o = entered.get((p, c.name))
            if o is None:
                walked_here.setdefault(c.name, []).append(Segment(p, c.name, tip))
                continue
            opened.append((c.name, Segment(o.path, o.name, o.tip)))
            if o.name != c.name:
                renamed.setdefault(c.name, []).append((o.name, o.at))
    for name, cov in moved.items():
        coverage[name] = Coverage(since, tip, (), cov.aliases)  # nothing older, unless followed below
    if opened:
        more, found = _follow(repo, since, upto, opened, fields, memo, marked)
        events += more
        for name, (leaves, aliases) in found.items():
            old = moved[name].aliases if name in moved else ()
            segments = (*walked_here.get(name, ()), *leaves)
            coverage[name] = Coverage(since, tip, segments, (*old, *renamed.get(name, ()), *aliases))
    return _unknown(events, upto), coverage


def _newest_date(dates: Iterable[datetime | None]) -> datetime | None:
    """Of several coverage bounds, the newest (None if any is None: read from the tip)."""
    bounds = list(dates)
    return None if not bounds or any(d is None for d in bounds) else max(d for d in bounds if d is not None)


def _batch(sizes: Sequence[int], n: int) -> int:
    """The n-th batch of a walk back: the listed sizes, then doubling (a walk costs O(commits))."""
    return sizes[n] if n < len(sizes) else sizes[-1] * 2 ** (n - len(sizes) + 1)


READ_AHEAD = 160  # about the commits of a walk back's first three batches


def _read_ahead(
    repo: GitRepo, tip: str, path: str, first: int, since: datetime | None, until: datetime | None
) -> list[str]:
    """The blobs a walk back over ``path`` from ``tip`` will likely read, to read them all at once.

    What is remembered of the walk (authority/logcache.py), else its first
    batch (``first`` commits between the dates): one ``cat-file`` instead of
    one per batch and file.
    """
    commits = logcache.known(repo, tip, path, READ_AHEAD) or read_log(
        repo, tip, since=since, until=until, paths=[path], max_count=first
    )
    return [b for c in commits for b in _blobs_of(c, path) if b is not None]


def has_bloom_filters(repo: GitRepo) -> bool:
    """Whether the repo's commit-graph carries changed-path Bloom filters (git uses them for one path)."""
    info = Path(
        repo.git("rev-parse", "--path-format=absolute", "--git-path", "objects/info").decode().strip()
    )
    chain = info / "commit-graphs" / "commit-graph-chain"
    try:
        if chain.exists():
            layers = [info / "commit-graphs" / f"graph-{h}.graph" for h in chain.read_text().split()]
        else:
            layers = [info / "commit-graph"]
        return bool(layers) and all(_graph_has_bloom(layer) for layer in layers)
    except OSError:
        return False


def _graph_has_bloom(graph: Path) -> bool:
    with graph.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8 or head[:4] != b"CGPH":
            return False
        table = fh.read(12 * (head[6] + 1))
    ids = {table[i : i + 4] for i in range(0, len(table), 12)}
    return b"BIDX" in ids and b"BDAT" in ids
