"""The ``Feedback-*`` audit trailers (SPEC section 5): format and parse.

A commit carries one block of ``Key: value`` lines at the end of its message.
A batch commit repeats the per-change keys in order, each change starting with
``Feedback-Kind``; parsing groups them back into one dict per change. Pure:
no git, no IO.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

TRAILER_KEYS: tuple[str, ...] = (
    "Feedback-Kind",
    "Feedback-Claim",
    "Feedback-Field",
    "Feedback-From",
    "Feedback-To",
    "Feedback-Source",
    "Feedback-Rule",
    "Feedback-Risk",
    "Feedback-Evidence",
    "Feedback-Tags",
)
KIND_KEY = "Feedback-Kind"
PREFIX = "Feedback-"

_CANONICAL = {key.lower(): key for key in TRAILER_KEYS}
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_LINE = re.compile(r"([A-Za-z0-9][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)")


def one_line(value: str) -> str:
    """Collapse newlines and runs of whitespace: a trailer value is one line."""
    return " ".join(value.split())


def canonical_key(key: str) -> str:
    """Git matches trailer keys case-insensitively; we spell known keys one way."""
    return _CANONICAL.get(key.lower(), key)


def _ordered(change: Mapping[str, str]) -> list[tuple[str, str]]:
    by_key: dict[str, str] = {}
    for key, value in change.items():
        if not _KEY.fullmatch(key):
            raise ValueError(f"trailer key {key!r} must be letters, digits and dashes")
        by_key[canonical_key(key)] = one_line(value)
    known = [key for key in TRAILER_KEYS if key in by_key]
    extra = [key for key in by_key if key not in TRAILER_KEYS]
    # An empty value would make git stop treating the block as trailers in
    # some versions, and says nothing: leave the key out instead.
    return [(key, by_key[key]) for key in known + extra if by_key[key]]


def format_message(subject: str, body: str, trailers: Sequence[Mapping[str, str]]) -> str:
    """Subject, optional body, then one trailer block (several changes repeat the keys)."""
    head = one_line(subject)
    if not head:
        raise ValueError("a commit message needs a subject")
    if len(trailers) > 1 and any(KIND_KEY not in map(canonical_key, t) for t in trailers):
        raise ValueError(f"each change in a batch needs {KIND_KEY} to start its group")
    parts = [head]
    text = "\n".join(line.rstrip() for line in body.strip("\n").splitlines()).strip("\n")
    if text.strip():
        parts.append(text)
    block = [f"{key}: {value}" for change in trailers for key, value in _ordered(change)]
    if block:
        parts.append("\n".join(block))
    return "\n\n".join(parts) + "\n"


def group_changes(pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    """Group ordered ``Feedback-*`` (key, value) pairs into one dict per change.

    A key that repeats inside the current group (normally ``Feedback-Kind``)
    starts the next change. Other trailers (``Signed-off-by``) are ignored.
    """
    groups: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for raw_key, value in pairs:
        key = canonical_key(raw_key)
        if not key.startswith(PREFIX):
            continue
        if current is None or key in current:
            current = {}
            groups.append(current)
        current[key] = value
    return groups


def trailer_pairs(text: str) -> list[tuple[str, str]]:
    """The (key, value) lines of the last paragraph of a message, unfolded."""
    lines = text.replace("\r\n", "\n").strip("\n").split("\n")
    start = 0
    for i, line in enumerate(lines):
        if not line.strip():
            start = i + 1
    pairs: list[tuple[str, str]] = []
    for line in lines[start:]:
        if line[:1] in (" ", "\t") and pairs:
            key, value = pairs[-1]
            pairs[-1] = (key, one_line(f"{value} {line}"))
            continue
        match = _LINE.fullmatch(line)
        if match:
            pairs.append((canonical_key(match[1]), one_line(match[2])))
    return pairs


def parse_trailers(text: str) -> list[dict[str, str]]:
    """Per-change dicts from a commit message (or just its trailer block)."""
    return group_changes(trailer_pairs(text))
