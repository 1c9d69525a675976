"""Checking the shape of JSON the tool wrote itself (caches in the git dir), as it is read back.

Anyone who can write the git dir can write these files, so nothing is trusted
until it has the shape this version writes; a mismatch raises ``Invalid`` and
the caller drops the whole file (it is only a cache).
"""

from __future__ import annotations

from typing import Any


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
