"""Ref locks a killed git left behind.

git moves a ref by creating ``<ref>.lock``, writing it and renaming it over
the ref; a ``git update-ref`` killed in between (kill -9 of a cron job's whole
process group, an OOM kill) leaves the ``.lock`` file, and every later update
of that ref fails until someone removes it. A ref lock is held for
milliseconds, so one older than ``STALE_SECONDS`` belongs to a dead process:
the next run removes it and carries on (the ref itself is intact: git only
renames a complete lock file over it). A younger one may be a live writer and
is left alone. ``index.lock`` is never touched: a human's ``git commit`` holds
it for as long as their editor is open.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from feedbackctl.authority.gitrepo import GitRepo

STALE_SECONDS = 120


def _age(path: Path, now: float | None = None) -> float | None:
    try:
        return (time.time() if now is None else now) - path.stat().st_mtime
    except OSError:
        return None


def is_fresh(path: Path) -> bool:
    """Whether ``path`` changed within STALE_SECONDS: it may belong to a live writer."""
    age = _age(path)
    return age is not None and age <= STALE_SECONDS


def stale_locks(repo: GitRepo, refs: Sequence[str], now: float | None = None) -> list[Path]:
    """The ``.lock`` files of ``refs`` (and of packed-refs) older than STALE_SECONDS."""
    common = repo.common_dir
    locks = [common / f"{ref}.lock" for ref in refs if ref.startswith("refs/")]
    return [lock for lock in [*locks, common / "packed-refs.lock"] if (_age(lock, now) or 0) > STALE_SECONDS]


def stale_locks_under(repo: GitRepo, namespace: str) -> list[Path]:
    """Stale ``.lock`` files anywhere under a ref namespace (``refs/feedbackctl/import/``)."""
    root = repo.common_dir / namespace
    if not root.is_dir():
        return []
    return [lock for lock in root.rglob("*.lock") if (_age(lock) or 0) > STALE_SECONDS]


def clear_stale(repo: GitRepo, refs: Sequence[str]) -> list[Path]:
    """Remove the stale locks of ``refs``; the ones removed (empty: retrying will not help)."""
    removed = []
    for lock in stale_locks(repo, refs):
        try:
            lock.unlink()
        except FileNotFoundError:
            continue  # another run cleared it first
        removed.append(lock)
    return removed
