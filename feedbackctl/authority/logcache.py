"""Whole-history walks remembered by tip sha, so a run reads only the new commits.

Two walks go back to the first commit on every run (docs/history.md): the
``Feedback-*`` trailers (a flap freeze never expires, so old trailers count)
and one claim file's commits (a baseline can lie before every window). On a
long history each costs a walk of every commit. This module keeps, per walk,
what ``git log`` printed from a tip (all of it, or the newest part with
``complete`` false), and answers ``read_commits`` for that walk from it.

Exactly what git would print, never an approximation:

* An entry is keyed by the tip's sha; commits are content-addressed, so a
  rewritten history has other shas and cannot reuse what was derived.
* A newer tip reuses an entry only when the commits between them are a
  chain of single-parent commits ending on the entry's tip: then git's walk
  from the new tip is the chain, then exactly the walk from the old tip (one
  commit in its queue), so the new list is the chain's matching commits
  followed by the old list. A merge, a rewrite or a far-away tip reads
  everything again.
* Replace refs and a shallow clone's grafts change what git walks from the
  same tip, so an entry also records them (``_view``) and is not used once
  they differ.
* Date limits are applied to the list as filters (``--since-as-filter``,
  ``--until`` never stop git's walk either), ``--skip``/``--max-count`` to
  what they keep.

Entries are plain JSON in the git dir (``feedbackctl/logs/``), validated
whole on load like the claim cache (authority/logentries.py); one that does
not validate, or that cannot be read or written, is simply not used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feedbackctl.authority import commits as _commits
from feedbackctl.authority import shapes
from feedbackctl.authority.claimcache import _int, _Invalid, _list, _map, _str
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.logentries import CACHE_VERSION, Walk, checked_sha, decode, encode
from feedbackctl.boundedio import InputFileError, read_regular
from feedbackctl.core.models import Scalar
from feedbackctl.errors import FeedbackError

MAX_CACHE_BYTES = 256 * 1024 * 1024
# Past this many new commits since an entry's tip, the chain check itself costs
# about what a fresh walk does.
MAX_CHAIN = 5000
SHORT_WALK = 16  # a path walk's commits fetched in short batches before the rest
TRAILERS = ""  # the walk of trailer commits (no path)
_HEX = frozenset("0123456789abcdef")


def serves(
    rev: str,
    paths: Sequence[str],
    only: Collection[str] | None,
    diffs: bool,
    trailers_only: bool,
    oldest_first: bool,
) -> bool:
    """Whether ``read_commits`` with these options is one of the remembered walks."""
    if oldest_first or only is not None or len(rev) not in (40, 64) or not set(rev) <= _HEX:
        return False
    if trailers_only:
        return not diffs and not paths
    return diffs and len(paths) == 1 and bool(paths[0])


def query(
    repo: GitRepo,
    tip: str,
    path: str | None,
    *,
    since: datetime | None,
    until: datetime | None,
    skip: int,
    max_count: int | None,
) -> list[_commits.Commit]:
    """What ``git log`` from ``tip`` (limited to ``path``, else trailer commits) prints for these limits."""
    key = path or TRAILERS
    walk, changed = _current(repo, tip, key)
    want = None if max_count is None else skip + max_count
    lo, hi = _seconds(since, datetime.min), _seconds(until, datetime.max)
    while True:
        kept = [c for c in walk.commits if lo <= c.at <= hi]
        if walk.complete or (want is not None and len(kept) >= want):
            break
        # Fetch on: a short first batch, as asked (a recent human act ends most walks back),
        # then the rest at once: past a few batches each one walks the whole history anyway.
        short = want is not None and path is not None and len(walk.commits) < SHORT_WALK
        ask = max(want - len(kept), 2) if short and want is not None else None
        more = _fetch(repo, tip, path, skip=len(walk.commits), max_count=ask)
        walk.commits += more
        walk.complete = ask is None or len(more) < ask
        changed = True
    if changed:
        _save(repo, key, walk)
    end = None if max_count is None else skip + max_count
    return kept[skip:end]


def known(repo: GitRepo, tip: str, path: str, limit: int) -> list[_commits.Commit]:
    """The newest ``limit`` commits remembered of ``path``'s walk from ``tip``; nothing is fetched."""
    walk, changed = _current(repo, tip, path)
    if changed:
        _save(repo, path, walk)
    return walk.commits[:limit]


def _current(repo: GitRepo, tip: str, key: str) -> tuple[Walk, bool]:
    """The walk remembered for ``key`` moved to ``tip`` (else an empty one), and whether that changed it."""
    loaded = _load(repo, key)
    walk = _extended(repo, loaded, tip, key)
    if walk is None:
        return Walk(tip, False, []), True
    return walk, loaded is None or loaded.tip != tip


def _seconds(limit: datetime | None, default: datetime) -> datetime:
    """A date limit cut to whole seconds, as git compares (--since keeps ct >= it, --until ct <= it).

    A commit's date is whole seconds, so comparing it with the cut limit is comparing its ct.
    """
    if limit is None:
        return default.replace(tzinfo=UTC)
    return datetime.fromtimestamp(int(limit.timestamp()), UTC)


def _fetch(
    repo: GitRepo, rev: str, path: str | None, *, skip: int = 0, max_count: int | None = None, base: str = ""
) -> list[_commits.Commit]:
    # path None: the trailer walk; "" (the chain log): every commit with its whole diff.
    args = _commits.log_args(diffs=path is not None, trailers_only=path is None)
    if skip:
        args.append(f"--skip={skip}")
    if max_count is not None:
        args.append(f"--max-count={max_count}")
    args += ["--end-of-options", rev, *([f"^{base}"] if base else []), "--", *([path] if path else [])]
    return _commits.parse_log(repo, repo.git(*args))


_CHAINS: dict[tuple[str, str, str], list[tuple[str, int]] | None] = {}


def _chain(repo: GitRepo, old: str, new: str) -> list[tuple[str, int]] | None:
    """(sha, date) from ``new`` down to ``old``'s child, when there are some and each has one parent."""
    key = (str(repo.git_dir), old, new)
    if key not in _CHAINS:
        listing = repo.git(
            "rev-list", "--timestamp", "--parents", f"--max-count={MAX_CHAIN + 1}",
            "--end-of-options", new, f"^{old}", "--",
        ).decode()  # fmt: skip
        lines = [line.split() for line in listing.splitlines()]
        linked = 0 < len(lines) <= MAX_CHAIN and all(
            len(line) == 3 and line[2] == (lines[i + 1][1] if i + 1 < len(lines) else old)
            for i, line in enumerate(lines)
        )
        _CHAINS[key] = [(line[1], int(line[0])) for line in lines] if linked else None
    return _CHAINS[key]


# --- clock skew -----------------------------------------------------------------------------

SKEW = "\0skew"  # the entry of a tip's clock skew (no path starts with a NUL)


def no_skew_at(repo: GitRepo, tip: str, at: int) -> bool:
    """Whether no commit reachable from ``tip`` dated before ``at`` has an ancestor dated at or after it.

    Then ``git log --since=@at`` from ``tip`` shows every commit dated at or
    after ``at`` (commits.cut_is_exact). Remembered per tip as the intervals
    (a commit's date, its newest ancestor's date]: back-dated commits.
    """
    try:
        skew = _skew(repo, tip)
    except (FeedbackError, ValueError):
        return False
    return not any(lo < at <= hi for lo, hi in skew[1])


def _skew(repo: GitRepo, tip: str) -> tuple[int | None, list[tuple[int, int]]]:
    """(the newest date reachable from ``tip``, the skew intervals), extended or read whole."""
    loaded = _load_doc(repo, SKEW)
    if loaded is not None and loaded[0] == tip:
        return loaded[1], loaded[2]
    chain = _chain(repo, loaded[0], tip) if loaded is not None else None
    if loaded is not None and chain is not None:
        newest, intervals = loaded[1], list(loaded[2])
        for _, ts in reversed(chain):  # parents first
            if newest is not None and newest > ts:
                intervals.append((ts, newest))
            newest = ts if newest is None else max(newest, ts)
    else:
        listing = repo.git(
            "rev-list", "--timestamp", "--parents", "--topo-order", "--reverse", "--end-of-options", tip, "--"
        ).decode()
        newest_of: dict[str, int] = {}
        intervals = []
        for line in listing.splitlines():
            ts_text, sha, *parents = line.split()
            ts = int(ts_text)
            above = max((newest_of[p] for p in parents if p in newest_of), default=None)
            if above is not None and above > ts:
                intervals.append((ts, above))
            newest_of[sha] = ts if above is None else max(above, ts)
        newest = newest_of.get(tip)
    merged = _union(intervals)
    _save_doc(repo, SKEW, {"tip": tip, "newest": newest, "intervals": [list(i) for i in merged]})
    return newest, merged


def _union(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(intervals):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _load_doc(repo: GitRepo, key: str) -> tuple[str, int | None, list[tuple[int, int]]] | None:
    try:
        doc = _map(json.loads(read_regular(_file(repo, key), MAX_CACHE_BYTES, follow_symlinks=False)))
        if doc.get("version") != CACHE_VERSION or doc.get("key") != key or doc.get("view") != _view(repo):
            raise _Invalid
        newest = doc.get("newest")
        pairs = [tuple(_int(x) for x in _list(i, 2)) for i in _list(doc.get("intervals"))]
        tip = checked_sha(doc.get("tip"))
        return tip, None if newest is None else _int(newest), [(lo, hi) for lo, hi in pairs]
    except (OSError, InputFileError, ValueError, _Invalid):
        return None


def _save_doc(repo: GitRepo, key: str, body: dict[str, Any]) -> None:
    _write(_file(repo, key), json.dumps({"version": CACHE_VERSION, "key": key, "view": _view(repo), **body}))


def _extended(repo: GitRepo, walk: Walk | None, tip: str, key: str) -> Walk | None:
    """``walk`` moved to ``tip``, or None when it cannot be (the walk is read again)."""
    if walk is None or walk.tip == tip:
        return walk
    try:
        if _chain(repo, walk.tip, tip) is None:
            return None
        if key:
            new = [c for c in (_limited(c, key) for c in _chain_log(repo, walk.tip, tip)) if c is not None]
        else:
            new = _fetch(repo, tip, None, base=walk.tip)
    except FeedbackError:  # an unknown or pruned tip: read again
        return None
    return Walk(tip, walk.complete, new + walk.commits)


_LOGS: dict[tuple[str, str, str], list[_commits.Commit]] = {}


def _chain_log(repo: GitRepo, old: str, new: str) -> list[_commits.Commit]:
    """Every commit of the chain ``old..new`` with its raw diff: one read for every path walk on it."""
    key = (str(repo.git_dir), old, new)
    if key not in _LOGS:
        _LOGS[key] = _fetch(repo, new, "", base=old)
    return _LOGS[key]


def _limited(c: _commits.Commit, path: str) -> _commits.Commit | None:
    """A chain commit as ``git log --raw -- path`` prints it (None: it does not touch ``path``).

    On a chain of single-parent commits git shows exactly the commits whose
    diff touches the pathspec (the path, or files under it as a directory),
    with just those entries of the diff.
    """
    inside = path + "/"
    kept = {p: b for p, b in c.blobs.items() if p == path or p.startswith(inside)}
    if not kept:
        return None
    return replace(c, paths=tuple(kept), blobs=kept, merged={})


# --- the files ------------------------------------------------------------------------------

# The entries this process read or wrote, while their file is unchanged (or still cannot be
# written): file -> (its stamp, the walk it holds, the tip of the entry it extends or None).
_MEMO: dict[Path, tuple[tuple[int, int] | None, Walk, str | None]] = {}
# Past this many new commits, a walk is written whole again rather than as a tail.
MAX_TAIL = 512


def forget() -> None:
    """Drop what this process remembers (what a new process starts with: only the git dir's files)."""
    _MEMO.clear()
    _CHAINS.clear()
    _LOGS.clear()
    _VIEWS.clear()


def _file(repo: GitRepo, key: str, tail: bool = False) -> Path:
    name = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return repo.git_dir / "feedbackctl" / "logs" / f"v{CACHE_VERSION}-{name}{'-tail' if tail else ''}.json"


_VIEWS: dict[str, str] = {}


def _view(repo: GitRepo) -> str:
    """What besides the commits decides git's walk: replace refs and shallow grafts (once a process)."""
    key = str(repo.git_dir)
    if key not in _VIEWS:
        replaced = repo.git("for-each-ref", "--format=%(refname) %(objectname)", "refs/replace/")
        where = repo.git("rev-parse", "--path-format=absolute", "--git-path", "shallow")
        shallow = Path(where.decode().strip())
        try:
            grafts = read_regular(shallow, MAX_CACHE_BYTES, follow_symlinks=False)
        except FileNotFoundError:
            grafts = b""
        except (OSError, InputFileError):
            grafts = b"unreadable"
        _VIEWS[key] = hashlib.sha256(replaced + b"\0" + grafts).hexdigest()
    return _VIEWS[key]


def _entry(repo: GitRepo, file: Path, key: str) -> tuple[Walk, str | None] | None:
    stamp = _stamp(file)
    if file in _MEMO and _MEMO[file][0] == stamp:
        return _MEMO[file][1], _MEMO[file][2]
    try:
        raw = json.loads(read_regular(file, MAX_CACHE_BYTES, follow_symlinks=False))
        walk = decode(raw, key, _view(repo))
        base = raw.get("base")
        if base is not None:
            base = checked_sha(base)
    except (OSError, InputFileError, ValueError, _Invalid):
        return None
    _MEMO[file] = (stamp, walk, base)
    return walk, base


def _load(repo: GitRepo, key: str) -> Walk | None:
    """The walk remembered for ``key``: its entry, moved on by its tail when the tail extends it.

    A tail holds the commits of a chain from the entry's tip to a newer one,
    so a run that found a few new commits writes just those, not the whole
    walk again (a trailer walk holds thousands).
    """
    main = _entry(repo, _file(repo, key), key)
    if main is None or main[1] is not None:
        return None
    walk = main[0]
    tail = _entry(repo, _file(repo, key, tail=True), key)
    if tail is not None and tail[1] == walk.tip and tail[0].complete == walk.complete:
        return Walk(tail[0].tip, walk.complete, tail[0].commits + walk.commits)
    return _copy(walk)


def _copy(walk: Walk) -> Walk:
    return Walk(walk.tip, walk.complete, list(walk.commits))


def _save(repo: GitRepo, key: str, walk: Walk) -> None:
    file, tail = _file(repo, key), _file(repo, key, tail=True)
    view = _view(repo)
    known = _MEMO.get(file)
    main = known[1] if known is not None and known[0] == _stamp(file) and known[2] is None else None
    new = len(walk.commits) - len(main.commits) if main is not None else -1
    if (
        main is not None
        and main.commits
        and 0 <= new <= MAX_TAIL
        and walk.complete == main.complete
        and all(a is b for a, b in zip(walk.commits[new:], main.commits, strict=True))
    ):
        part = Walk(walk.tip, walk.complete, walk.commits[:new])
        if _write(tail, json.dumps({**encode(part, key, view), "base": main.tip}, separators=(",", ":"))):
            _MEMO[tail] = (_stamp(tail), part, main.tip)
        return
    if _write(file, json.dumps(encode(walk, key, view), separators=(",", ":"))):
        with contextlib.suppress(OSError):
            tail.unlink()
    _MEMO[file] = (_stamp(file), _copy(walk), None)


def _write(file: Path, text: str) -> bool:
    """Atomically; a git dir that cannot be written just remembers nothing."""
    return shapes.write_atomically(file, ".log-", lambda fh: fh.write(text))


def _stamp(file: Path) -> tuple[int, int] | None:
    try:
        st = file.lstat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


# --- values read out of claim files ---------------------------------------------------------

VALUES = "\0values"  # the entry of parsed claim-file versions (no path starts with a NUL)
MAX_VALUES = 20_000  # file versions remembered; past it, only those the last run used
_SCALARS = (str, int, float, bool, type(None))

Values = dict[str, dict[str, Scalar]]  # claim -> field -> scalar


def load_values(repo: GitRepo) -> dict[tuple[str, str], Values]:
    """The claim files' values remembered by (path, blob): a blob never changes, nor do its values.

    Only ever what ``history.claim_values`` returned for that path and blob;
    an entry that does not validate is not used (nothing is).
    """
    try:
        doc = _map(json.loads(read_regular(_file(repo, VALUES), MAX_CACHE_BYTES, follow_symlinks=False)))
        if doc.get("version") != CACHE_VERSION or doc.get("key") != VALUES:
            raise _Invalid
        out: dict[tuple[str, str], Values] = {}
        for item in _list(doc.get("entries")):
            path, blob, claims = _list(item, 3)
            values: Values = {}
            for name, fields in _map(claims).items():
                if type(fields) is not dict or not all(type(v) in _SCALARS for v in fields.values()):
                    raise _Invalid
                values[_str(name)] = fields
            out[(_str(path), checked_sha(blob))] = values
        return out
    except (OSError, InputFileError, ValueError, _Invalid):
        return {}


def save_values(repo: GitRepo, entries: Mapping[tuple[str, str], Mapping[str, Mapping[str, Scalar]]]) -> None:
    items = [
        [path, blob, {n: dict(f) for n, f in claims.items()}] for (path, blob), claims in entries.items()
    ]
    _write(_file(repo, VALUES), json.dumps({"version": CACHE_VERSION, "key": VALUES, "entries": items}))
