"""Private temporary folders, and the sweep of the ones killed runs left behind.

A run killed with ``kill -9`` never reaches its cleanup, so its folder (an
overlay's files, a fast-import's marks) stays. Each folder is created 0700
(only the cron user can read what it holds) and a later run removes stale
ones: only our own prefixes, only folders owned by this user, only when
untouched for ``STALE_SECONDS``, which is far longer than any subprocess
deadline (a live run's folder is never that old). See docs/security.md.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PREFIXES = ("feedbackctl-kustomize-", "feedbackctl-import-", "feedbackctl-commit-")
STALE_SECONDS = 6 * 3600
_swept: set[str] = set()


def sweep(root: str | None = None, now: float | None = None) -> list[Path]:
    """Remove our stale temporary folders under ``root`` (default: the temp dir); what was removed."""
    base = Path(root or tempfile.gettempdir())
    when = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(PREFIXES):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            continue
        if when - info.st_mtime < STALE_SECONDS:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        if not os.path.lexists(entry.path):
            removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def private_dir(prefix: str) -> Iterator[Path]:
    """A fresh 0700 folder, removed afterwards; the first use per process sweeps stale ones."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown temporary folder prefix {prefix!r}")
    root = tempfile.gettempdir()
    if root not in _swept:
        _swept.add(root)
        sweep(root)
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        os.chmod(name, 0o700)
        yield Path(name)
