"""Patterns a repository supplies, evaluated on RE2 (linear time, Kubernetes' own semantics).

Kustomize patch targets and XRD ``pattern:`` fields are Go regular
expressions: Go's engine is RE2, so ``(a|a)*b`` runs in linear time there,
while Python's backtracking ``re`` takes exponential time on it. Evaluating
them with RE2 (``google-re2``) gives the same answers kubectl and the API
server give, and no pattern a pusher writes can stall a run. Syntax RE2 does
not have (look-around, back-references) is an invalid pattern, as in Go.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.max_mem = 8 << 20  # a huge pattern fails to compile instead of eating memory
_OPTIONS.log_errors = False  # RE2 would print every bad pattern to stderr itself


def _reason(error: Exception) -> str:
    raw = error.args[0] if error.args else "invalid pattern"
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    return re2.compile(pattern, options=_OPTIONS)


def pattern_error(pattern: str) -> str | None:
    """Why ``pattern`` is not a valid RE2 pattern, or None when it is."""
    try:
        _compiled(pattern)
    except re2.error as e:
        return _reason(e)
    return None


def search(pattern: str, value: str) -> bool | None:
    """Does ``pattern`` match anywhere in ``value``? None when the pattern is invalid."""
    try:
        return _compiled(pattern).search(value) is not None
    except re2.error:
        return None


def fullmatch(pattern: str, value: str) -> bool | None:
    """Does ``pattern`` match all of ``value`` (Kustomize's anchored match)? None when invalid."""
    try:
        return _compiled(pattern).fullmatch(value) is not None
    except re2.error:
        return None
