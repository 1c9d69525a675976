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
* Date limits are applied to the list as filters (``--since-as-filter``,
  ``--until`` never stop git's walk either), ``--skip``/``--max-count`` to
  what they keep.

Entries are plain JSON in the git dir (``feedbackctl/logs/``), validated
whole on load like the claim cache; one that does not validate, or that
cannot be read or written, is simply not used.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feedbackctl.authority import commits as _commits
from feedbackctl.authority.claimcache import _int, _Invalid, _list, _map, _str
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.boundedio import InputFileError, read_regular
from feedbackctl.errors import FeedbackError

CACHE_VERSION = 1
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


@dataclass
class _Walk:
    tip: str
    complete: bool
    commits: list[_commits.Commit]


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
    loaded = _load(repo, key)
    walk = _extended(repo, loaded, tip, key) or _Walk(tip, False, [])
    changed = loaded is None or loaded.tip != tip
    want = None if max_count is None else skip + max_count
    while True:
        kept = [c for c in walk.commits if _within(c.at, since, until)]
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


def _within(at: datetime, since: datetime | None, until: datetime | None) -> bool:
    # git compares whole seconds: --since keeps ct >= since, --until keeps ct <= until.
    ct = int(at.timestamp())
    return (since is None or ct >= int(since.timestamp())) and (until is None or ct <= int(until.timestamp()))


def _fetch(
    repo: GitRepo, rev: str, path: str | None, *, skip: int = 0, max_count: int | None = None, base: str = ""
) -> list[_commits.Commit]:
    args = _commits.log_args(diffs=path is not None, trailers_only=path is None)
    if skip:
        args.append(f"--skip={skip}")
    if max_count is not None:
        args.append(f"--max-count={max_count}")
    args += ["--end-of-options", rev, *([f"^{base}"] if base else []), "--", *([path] if path else [])]
    return _commits.parse_log(repo, repo.git(*args))


_CHAINS: dict[tuple[str, str, str], list[str] | None] = {}


def _chain(repo: GitRepo, old: str, new: str) -> list[str] | None:
    """The commits from ``new`` down to ``old``'s child, when there are some and each has one parent."""
    key = (str(repo.git_dir), old, new)
    if key not in _CHAINS:
        listing = repo.git(
            "rev-list", "--parents", f"--max-count={MAX_CHAIN + 1}", "--end-of-options", new, f"^{old}", "--"
        ).decode()
        lines = [line.split() for line in listing.splitlines()]
        linked = 0 < len(lines) <= MAX_CHAIN and all(
            len(line) == 2 and line[1] == (lines[i + 1][0] if i + 1 < len(lines) else old)
            for i, line in enumerate(lines)
        )
        _CHAINS[key] = [line[0] for line in lines] if linked else None
    return _CHAINS[key]


def _extended(repo: GitRepo, walk: _Walk | None, tip: str, key: str) -> _Walk | None:
    """``walk`` moved to ``tip``, or None when it cannot be (the walk is read again)."""
    if walk is None or walk.tip == tip:
        return walk
    try:
        if _chain(repo, walk.tip, tip) is None:
            return None
        new = _fetch(repo, tip, key or None, base=walk.tip)
    except FeedbackError:  # an unknown or pruned tip: read again
        return None
    return _Walk(tip, walk.complete, new + walk.commits)


# --- the files ------------------------------------------------------------------------------

_MEMO: dict[Path, tuple[tuple[int, int], _Walk]] = {}


def _file(repo: GitRepo, key: str) -> Path:
    name = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return repo.git_dir / "feedbackctl" / "logs" / f"v{CACHE_VERSION}-{name}.json"


def _load(repo: GitRepo, key: str) -> _Walk | None:
    file = _file(repo, key)
    try:
        st = file.lstat()
        stamp = (st.st_mtime_ns, st.st_size)
        if file in _MEMO and _MEMO[file][0] == stamp:
            return _copy(_MEMO[file][1])
        walk = _decode(json.loads(read_regular(file, MAX_CACHE_BYTES, follow_symlinks=False)), key)
    except (OSError, InputFileError, ValueError, _Invalid):
        return None
    _MEMO[file] = (stamp, walk)
    return _copy(walk)


def _copy(walk: _Walk) -> _Walk:
    return _Walk(walk.tip, walk.complete, list(walk.commits))


def _save(repo: GitRepo, key: str, walk: _Walk) -> None:
    file = _file(repo, key)
    text = json.dumps(_encode(walk, key), separators=(",", ":"))
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".log-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, file)
        st = file.lstat()
        _MEMO[file] = ((st.st_mtime_ns, st.st_size), _copy(walk))
    except OSError:
        pass


def _encode(walk: _Walk, key: str) -> dict[str, Any]:
    return {
        "version": CACHE_VERSION,
        "key": key,
        "tip": walk.tip,
        "complete": walk.complete,
        "commits": [
            [
                c.sha,
                list(c.parents),
                int(c.at.timestamp()),
                c.author,
                c.author_email,
                c.subject,
                [list(g.items()) for g in c.changes],
                list(c.stray),
                [[p, *c.blobs[p]] for p in c.paths],
                [[p, list(olds), new] for p, (olds, new) in c.merged.items()],
            ]
            for c in walk.commits
        ],
    }


def _decode(raw: Any, key: str) -> _Walk:
    doc = _map(raw)
    if doc.get("version") != CACHE_VERSION or doc.get("key") != key:
        raise _Invalid
    tip, complete = _sha(doc.get("tip")), doc.get("complete")
    if not isinstance(complete, bool):
        raise _Invalid
    out = []
    for item in _list(doc.get("commits")):
        sha, parents, ct, author, email, subject, groups, stray, blobs, merged = _list(item, 10)
        parent_list = tuple(_sha(p) for p in _list(parents))
        blob_map = {}
        for entry in _list(blobs):
            p, old, new = _list(entry, 3)
            blob_map[_str(p)] = (_blob(old), _blob(new))
        merged_map = {}
        for entry in _list(merged):
            p, olds, new = _list(entry, 3)
            merged_map[_str(p)] = (tuple(_blob(b) for b in _list(olds)), _blob(new))
        out.append(
            _commits.Commit(
                sha=_sha(sha),
                parent=parent_list[0] if parent_list else None,
                at=datetime.fromtimestamp(_int(ct), UTC),
                changes=tuple(_group(g) for g in _list(groups)),
                paths=tuple(blob_map),
                blobs=blob_map,
                parents=parent_list,
                author=_str(author),
                author_email=_str(email),
                subject=_str(subject),
                merged=merged_map,
                stray=tuple(_str(s) for s in _list(stray)),
            )
        )
    return _Walk(tip, complete, out)


def _group(v: Any) -> dict[str, str]:
    return {_str(k): _str(value) for k, value in (_list(pair, 2) for pair in _list(v))}


def _sha(v: Any) -> str:
    s = _str(v)
    if len(s) not in (40, 64) or not set(s) <= _HEX:
        raise _Invalid
    return s


def _blob(v: Any) -> str | None:
    return None if v is None else _sha(v)
