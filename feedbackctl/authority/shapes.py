"""Checking the shape of JSON the tool wrote itself (caches in the git dir), as it is read back.

Anyone who can write the git dir can write these files, so nothing is trusted
until it has the shape this version writes; a mismatch raises ``Invalid`` and
the caller drops the whole file (it is only a cache).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO


class Invalid(Exception):
    """A cache file (or entry) that is not what this version writes."""


def mapping(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise Invalid
    return v


def items(v: Any, length: int | None = None) -> list[Any]:
    if not isinstance(v, list) or (length is not None and len(v) != length):
        raise Invalid
    return v


def text(v: Any) -> str:
    if not isinstance(v, str):
        raise Invalid
    return v


def write_atomically(file: Path, prefix: str, write: Callable[[TextIO], object]) -> bool:
    """Write a cache file through a temp file and a rename; False when it could not be.

    A failed write leaves neither a half file nor the temp file behind: a cache
    that cannot be written is simply not used.
    """
    tmp: str | None = None
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=prefix)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            write(fh)
        os.replace(tmp, file)
        return True
    except (OSError, TypeError, ValueError):
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return False
