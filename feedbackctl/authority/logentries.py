"""How a remembered walk is written in the git dir and read back (authority/logcache.py).

Plain JSON, one list per commit; read back, every part of an entry is
checked (shas, dates, texts, trailer groups, blobs), and an entry with any
of them wrong raises ``_Invalid``, so it is not used.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from feedbackctl.authority.claimcache import _Invalid, _list, _map
from feedbackctl.authority.commits import Commit, bulk

CACHE_VERSION = 2  # 2: trailer groups as objects


@dataclass
class Walk:
    """What ``git log`` printed from ``tip``: all of it, or its newest part (``complete`` false)."""

    tip: str
    complete: bool
    commits: list[Commit]


def encode(walk: Walk, key: str, view: str) -> dict[str, Any]:
    return {
        "version": CACHE_VERSION,
        "key": key,
        "view": view,
        "tip": walk.tip,
        "complete": walk.complete,
        "commits": [
            [
                c.sha,
                list(c.parents),
                int(c.at.timestamp()),
                [c.author, c.author_email, c.subject, *c.stray],
                [dict(g) for g in c.changes],
                [[p, *c.blobs[p]] for p in c.paths],
                [[p, new, *olds] for p, (olds, new) in c.merged.items()],
            ]
            for c in walk.commits
        ],
    }


# A trailer walk holds thousands of commits, read on every run: the checks are inline, and the
# ones that apply to many values (every sha's shape, every text being a string) run once per
# entry, over all of them at once at C speed.
def decode(raw: Any, key: str, view: str) -> Walk:
    doc = _map(raw)
    if doc.get("version") != CACHE_VERSION or doc.get("key") != key or doc.get("view") != view:
        raise _Invalid
    tip, complete = checked_sha(doc.get("tip")), doc.get("complete")
    if not isinstance(complete, bool):
        raise _Invalid
    shas: list[Any] = []
    texts: list[Any] = []
    try:
        with bulk():
            out = [_commit(item, shas, texts) for item in _list(doc.get("commits"))]
        "".join(texts)  # a TypeError unless every one is a string
        ids = "".join(shas)
    except (TypeError, OverflowError) as e:  # also an unhashable trailer key, a date out of range
        raise _Invalid from e
    if ids.strip("0123456789abcdef") or not set(map(len, shas)) <= {40, 64}:
        raise _Invalid
    return Walk(tip, complete, out)


def _commit(item: Any, shas: list[Any], texts: list[Any]) -> Commit:
    """One remembered commit, its shape checked; its shas and texts go to ``shas`` and ``texts``,
    for ``_decode`` to check all at once."""
    if type(item) is not list or len(item) != 7:
        raise _Invalid
    sha, parents, ct, strings, groups, blobs, merged = item
    if type(parents) is not list or type(ct) is not int or type(strings) is not list or len(strings) < 3:
        raise _Invalid
    if type(groups) is not list or type(blobs) is not list or type(merged) is not list:
        raise _Invalid
    shas.append(sha)
    shas += parents
    texts += strings
    for g in groups:
        if type(g) is not dict:
            raise _Invalid
        texts += g.values()
    blob_map: dict[str, tuple[str | None, str | None]] = {}
    for entry in blobs:
        if type(entry) is not list or len(entry) != 3 or type(entry[0]) is not str:
            raise _Invalid
        shas += [b for b in entry[1:] if b is not None]
        blob_map[sys.intern(entry[0])] = (entry[1], entry[2])
    merged_map = {}
    for entry in merged:
        if type(entry) is not list or len(entry) < 4 or type(entry[0]) is not str:
            raise _Invalid
        shas += [b for b in entry[1:] if b is not None]
        merged_map[sys.intern(entry[0])] = (tuple(entry[2:]), entry[1])
    return Commit.build(
        sha=sha,
        parent=parents[0] if parents else None,
        at=datetime.fromtimestamp(ct, UTC),
        changes=tuple(groups),
        paths=tuple(blob_map),
        blobs=blob_map,
        parents=tuple(parents),
        author=strings[0],
        author_email=strings[1],
        subject=strings[2],
        merged=merged_map,
        stray=tuple(strings[3:]),
    )


def _is_sha(v: Any) -> bool:
    return type(v) is str and len(v) in (40, 64) and not v.strip("0123456789abcdef")


def checked_sha(v: Any) -> str:
    """``v`` when it is a full hex object id (of either hash); _Invalid otherwise."""
    if not _is_sha(v):
        raise _Invalid
    return str(v)
