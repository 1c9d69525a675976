"""The ``Feedback-*`` audit trailers (docs/contracts.md): format and parse.

A commit carries one block of ``Key: value`` lines at the end of its message,
found the way ``git interpret-trailers`` finds it.
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
    # After the documented keys, so each of them keeps its place: the run (cron
    # slot) an automated change belongs to, which audit groups per-run limits by.
    "Feedback-Run",
)
KIND_KEY = "Feedback-Kind"
RUN_KEY = "Feedback-Run"
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


# Trailers git itself writes: a block holding one of them may mix in other lines.
_GIT_PREFIXES = ("signed-off-by:", "(cherry picked from commit ")


def _paragraphs(text: str) -> list[list[str]]:
    """The message's paragraphs, comment lines left out, as ``git log`` reads them (no divider)."""
    lines = text.replace("\r\n", "\n").split("\n")
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if line.startswith("#"):
            continue
        if not line.strip():
            if paragraphs[-1]:
                paragraphs.append([])
            continue
        paragraphs[-1].append(line)
    return [p for p in paragraphs if p]


def _is_block(paragraph: Sequence[str]) -> bool:
    """git's rule: all trailers, or at least 25 % trailers with one git-generated among them."""
    trailers = others = 0
    recognised = False
    for i, line in enumerate(paragraph):
        if line[:1] in (" ", "\t") and i > 0:
            continue  # a folded continuation of the line above
        if line.lower().startswith(_GIT_PREFIXES):
            recognised = True
            trailers += 1
        elif _LINE.fullmatch(line):
            trailers += 1
        else:
            others += 1
    return trailers > 0 and (others == 0 or (recognised and trailers * 3 >= others))


def _body(text: str) -> list[list[str]]:
    """The paragraphs after the title, found as git finds the title.

    The title runs to the first blank line, comment lines skipped (so a title
    made only of comment lines still ends there), and is never trailers.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    end = next((i for i, line in enumerate(lines) if not line.startswith("#") and not line.strip()), None)
    return [] if end is None else _paragraphs("\n".join(lines[end + 1 :]))


def _block(text: str) -> list[str]:
    """The final trailer block of a message."""
    paragraphs = _body(text)
    if not paragraphs or not _is_block(paragraphs[-1]):
        return []
    return paragraphs[-1]


def _pairs(lines: Sequence[str]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    after_trailer = False
    for line in lines:
        if line[:1] in (" ", "\t"):
            if after_trailer and pairs:
                key, value = pairs[-1]
                pairs[-1] = (key, one_line(f"{value} {line}"))
            continue
        match = _LINE.fullmatch(line)
        after_trailer = match is not None
        if match:
            pairs.append((canonical_key(match[1]), one_line(match[2])))
    return pairs


def trailer_pairs(text: str) -> list[tuple[str, str]]:
    """The (key, value) lines of the message's final trailer block, unfolded.

    The block is found as ``git interpret-trailers`` finds it: the last
    paragraph (not the subject), when every line is a trailer, or at least a
    quarter are and one of them is git-generated (``Signed-off-by``); other
    lines in such a block are skipped. So ``git log
    --format='%(trailers:key=Feedback-Claim)'`` and this agree.
    """
    return _pairs(_block(text))


def stray_kinds(text: str) -> list[str]:
    """``Feedback-Kind`` values written outside the final trailer block.

    git does not read them as trailers, yet a commit that says it is an
    automated change must not pass for a human's edit: readers treat such a
    commit as automated, and the audit flags it.
    """
    block = set(_block(text))
    paragraphs = _body(text)
    return [
        value
        for key, value in _pairs([line for p in paragraphs for line in p if line not in block])
        if key == KIND_KEY
    ]


def parse_trailers(text: str) -> list[dict[str, str]]:
    """Per-change dicts from a commit message (or just its trailer block)."""
    return group_changes(trailer_pairs(text))
