"""Parsed claims cached by (path, blob id): a blob's content never changes, so
the cache is always valid. It lives in the repo's git dir; a cache that
cannot be read or written is simply not used.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Collection
from pathlib import Path

from feedbackctl.authority.claims import parse_file
from feedbackctl.core.models import Claim
from feedbackctl.errors import FeedbackError

CACHE_VERSION = 1
Entry = tuple[tuple[Claim, int], ...]
Key = tuple[str, str, tuple[str, ...]]


class ClaimCache:
    def __init__(self, git_dir: Path) -> None:
        self.file = git_dir / "feedbackctl" / f"claims-v{CACHE_VERSION}.pickle"
        self.entries: dict[Key, Entry] = {}
        self.used: set[Key] = set()
        self.dirty = False
        try:
            with self.file.open("rb") as fh:
                loaded = pickle.load(fh)  # noqa: S301 - our own file in the repo's git dir
            if isinstance(loaded, dict):
                self.entries = loaded
        except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError):
            self.entries = {}

    @staticmethod
    def key(path: str, blob: str, kinds: Collection[str] | None) -> Key:
        return (path, blob, tuple(sorted(kinds or ())))

    def has(self, path: str, blob: str, kinds: Collection[str] | None) -> bool:
        return self.key(path, blob, kinds) in self.entries

    def parse(
        self, path: str, blob: str, content: bytes, kinds: Collection[str] | None
    ) -> tuple[list[tuple[Claim, int]], list[FeedbackError]]:
        key = self.key(path, blob, kinds)
        self.used.add(key)
        if key in self.entries:
            return list(self.entries[key]), []
        found, errors = parse_file(path, blob, content, kinds)
        if not errors:  # files with errors are parsed again, so the error shows every run
            self.entries[key] = tuple(found)
            self.dirty = True
        return found, errors

    def save(self) -> None:
        """Keep what this run used (old blobs fall out), atomically."""
        if not self.dirty and len(self.used) == len(self.entries):
            return
        keep = {k: v for k, v in self.entries.items() if k in self.used}
        try:
            self.file.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.file.parent, prefix=".claims-")
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(keep, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self.file)
        except OSError:
            pass
