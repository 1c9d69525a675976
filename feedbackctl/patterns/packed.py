"""A run's decisions, packed as the text the JSON report prints (and the answer cache keeps).

A fleet's decisions with their notes and evidence are most of a run's memory
once its series are gone (100,000 of them: about 150 MB as objects, a few MB
packed). So each batch's decisions become lines as they are decided, a
decision a line: its JSON exactly as ``render.decision_json`` gives it and
``json.dumps`` writes it, a tab, then what that JSON leaves out
(``[[unit, ...], validated_in, acknowledged]``; neither part can hold a raw tab
or newline). The lines are compressed 1,000 at a time. The report then writes
a decision's text as it is: no decision is decoded, built into a dict and
encoded again (docs/performance.md), and the answer cache keeps the compressed
chunks as they are (``patterns/analyzecache.py``).

The text is built here rather than by ``json.dumps`` of the dict (most of a
report's cost); ``tests/test_analyzecache_packed.py`` pins it to
``json.dumps(render.decision_json(d))`` for every shape of decision.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator, Sequence
from json.encoder import encode_basestring_ascii as _quoted
from typing import Any, overload

from feedbackctl.core.models import Decision, Evidence, Note, Outcome

# The C encoder json.dumps uses, without ``default``: a value JSON has no name for raises.
_strict = json.JSONEncoder().encode
_INFINITY = float("inf")
_LITERALS: dict[Any, str] = {None: "null", True: "true", False: "false"}


def _value(v: Any) -> str:
    """``json.dumps(v)`` (the same text), quicker for the scalars that make up most decisions."""
    kind = type(v)
    if kind is str:
        return _quoted(v)
    if kind is float:
        if v != v:
            return "NaN"
        if v == _INFINITY or v == -_INFINITY:
            return "Infinity" if v > 0 else "-Infinity"
        return float.__repr__(v)
    if kind is int:
        return int.__repr__(v)
    if v is None or kind is bool:
        return _LITERALS[v]
    return _strict(v)


def _as_json_reads_it(d: Decision) -> bool:
    """Whether the strings and numbers a decision's derived text is made of are of the types
    JSON reads back (its reason, summaries and field name come out the same after a round trip)."""
    if type(d.field) is not str:
        return False
    for n in d.notes:
        if type(n.rule) is not str or type(n.effect) is not str or type(n.detail) is not str:
            return False
    for e in d.evidence:
        if not (type(e.metric) is str and type(e.statistic) is str and type(e.unit) is str):
            return False
        numbers = (type(e.window_minutes), type(e.points), type(e.value), type(e.threshold))
        if not _NUMBERS.issuperset(numbers):
            return False
    return True


_NUMBERS = frozenset((int, float, bool, type(None)))


def decision_text(d: Decision) -> str | None:
    """``json.dumps(render.decision_json(d))``; None where ``d`` holds a value of another type
    than JSON reads back (a subclass, a container, an object JSON has no name for)."""
    if not _as_json_reads_it(d):
        return None
    try:
        return _text(d)
    except (TypeError, ValueError):
        return None


def _text(d: Decision) -> str:
    evidence = ", ".join(
        [
            f'{{"metric": {_quoted(e.metric)}, "statistic": {_quoted(e.statistic)}, '
            f'"windowMinutes": {_value(e.window_minutes)}, "points": {_value(e.points)}, '
            f'"value": {_value(e.value)}, "threshold": {_value(e.threshold)}, '
            f'"summary": {_quoted(e.summary)}}}'
            for e in d.evidence
        ]
    )
    notes = ", ".join(
        [
            f'{{"rule": {_quoted(n.rule)}, "effect": {_quoted(n.effect)}, "detail": {_quoted(n.detail)}}}'
            for n in d.notes
        ]
    )
    return (
        f'{{"claim": {_value(d.claim)}, "field": {_quoted(f"spec.{d.field}")}, '
        f'"current": {_value(d.current)}, '
        f'"recommended": {_value(d.recommended)}, "uncapped": {_value(d.uncapped)}, '
        f'"outcome": {_value(d.outcome.value)}, "direction": {_value(d.direction)}, '
        f'"confidence": {_value(d.confidence)}, "risk": {_value(d.risk)}, "rule": {_value(d.rule)}, '
        f'"source": {_value(d.source)}, "reason": {_quoted(d.reason)}, '
        f'"blockedBy": [{", ".join([_quoted(r) for r in d.blocked_by])}], '
        f'"evidence": [{evidence}], "notes": [{notes}]}}'
    )


def packed_line(d: Decision) -> str | None:
    """A decision's line (its report text, a tab, the rest); None as for ``decision_text``."""
    text = decision_text(d)
    if text is None:
        return None
    units = ", ".join([_quoted(e.unit) for e in d.evidence])
    try:
        return f"{text}\t[[{units}], {_value(d.validated_in)}, {_value(d.acknowledged)}]"
    except (TypeError, ValueError):
        return None


def plain_decision(d: Decision) -> list[Any]:
    """A decision as a plain list of what JSON can hold: what a round trip through JSON gives back."""
    return [
        d.claim, d.field, d.current, d.outcome.value, d.recommended, d.uncapped, d.direction,
        d.confidence, d.rule, d.source, d.risk,
        [[e.metric, e.statistic, e.window_minutes, e.points, e.value, e.threshold, e.unit]
         for e in d.evidence],
        [[n.rule, n.effect, n.detail] for n in d.notes],
        d.validated_in, d.acknowledged,
    ]  # fmt: skip


def _round_trip(d: Decision) -> Decision:
    """``d`` as JSON gives it back (TypeError or ValueError if JSON cannot hold it)."""
    (claim, field_name, current, outcome, recommended, uncapped, direction, confidence, rule, source, risk,
     evidence, notes, validated_in, acknowledged) = json.loads(json.dumps(plain_decision(d)))  # fmt: skip
    return Decision(
        claim, field_name, current, _OUTCOMES[outcome], recommended, uncapped, direction, confidence, rule,
        source, risk, tuple(Evidence(*e) for e in evidence), tuple(Note(*n) for n in notes), validated_in,
        acknowledged,
    )  # fmt: skip


# Outcome(value) goes through the enum's lookup machinery; a fleet's decisions are read back.
_OUTCOMES = {o.value: o for o in Outcome}


def unpacked(doc: dict[str, Any], rest: list[Any]) -> Decision:
    """The decision of a line's two parts, decoded (known to be well formed)."""
    units, validated_in, acknowledged = rest
    return Decision(
        doc["claim"],
        doc["field"][len("spec.") :],
        doc["current"],
        _OUTCOMES[doc["outcome"]],
        doc["recommended"],
        doc["uncapped"],
        doc["direction"],
        doc["confidence"],
        doc["rule"],
        doc["source"],
        doc["risk"],
        tuple(
            Evidence(
                e["metric"], e["statistic"], e["windowMinutes"], e["points"], e["value"], e["threshold"], u
            )
            for e, u in zip(doc["evidence"], units, strict=True)
        ),
        tuple(Note(n["rule"], n["effect"], n["detail"]) for n in doc["notes"]),
        validated_in,
        acknowledged,
    )


class PackedDecisions(Sequence[Decision]):
    """A run's decisions as compressed lines (``packed_line``), a chunk at a time. Read-only."""

    CHUNK = 1000  # lines per compressed chunk: the report writes a chunk's texts at once

    def __init__(self, decisions: Iterable[Decision] = ()) -> None:
        self._chunks: list[bytes] = []
        self._sizes: list[int] = []
        self._pending: list[str] = []
        self._len = 0
        # Decisions JSON cannot hold (a value of a type it has no name for): kept as they are.
        self._kept: dict[int, Decision] = {}
        self.extend(decisions)

    def extend(self, decisions: Iterable[Decision]) -> None:
        for d in decisions:
            line = packed_line(d)
            if line is None:
                # A value of another type than JSON reads back: packed as the round trip gives it.
                try:
                    line = packed_line(_round_trip(d))
                except (TypeError, ValueError):
                    line = None
            if line is None:
                self._kept[self._len] = d
                line = ""
            self.add_line(line)

    def _seal(self) -> None:
        if self._pending:
            self._chunks.append(zlib.compress("\n".join(self._pending).encode(), 1))
            self._sizes.append(len(self._pending))
            self._pending = []

    def add_line(self, line: str) -> None:
        """A decision already in its line (``packed_line``)."""
        self._pending.append(line)
        self._len += 1
        if len(self._pending) == self.CHUNK:
            self._seal()

    @property
    def all_json(self) -> bool:
        return not self._kept

    def _lines(self, k: int) -> list[str]:
        if k == len(self._chunks):
            return self._pending
        return zlib.decompress(self._chunks[k]).decode().split("\n")

    def lines(self) -> Iterator[str]:
        """Each decision's line (no newline), in order ("" for one JSON cannot hold)."""
        for k in range(len(self._chunks) + 1):
            yield from self._lines(k)

    def compressed(self) -> Iterator[tuple[bytes, int]]:
        """Each chunk compressed, with its number of lines (the answer cache stores them so)."""
        yield from zip(self._chunks, self._sizes, strict=True)
        if self._pending:
            yield zlib.compress("\n".join(self._pending).encode(), 1), len(self._pending)

    def add_chunk(self, data: bytes, lines: int) -> None:
        """A chunk of ``lines`` lines as ``compressed`` gave it (the cache reader validated it)."""
        assert not self._pending, "chunks go before any line added one by one"
        self._chunks.append(data)
        self._sizes.append(lines)
        self._len += lines

    def _spans(self, start: int, stop: int) -> Iterator[tuple[int, int, int]]:
        """(chunk, first, stop) within each chunk that decisions ``start:stop`` touch."""
        first = 0
        for k, size in enumerate([*self._sizes, len(self._pending)]):
            if first < stop and start < first + size:
                yield k, max(0, start - first), stop - first
            first += size

    def texts(self, start: int, stop: int) -> list[str] | None:
        """Decisions ``start:stop`` as the report's JSON texts; None if one of them is kept."""
        if self._kept:
            return None
        out: list[str] = []
        for k, lo, hi in self._spans(start, stop):
            out += [line.partition("\t")[0] for line in self._lines(k)[lo:hi]]
        return out

    def _chunk(self, k: int) -> list[Decision]:
        lines = self._lines(k)
        first = sum(self._sizes[:k])
        # One JSON array of the chunk's parts: one call into the C decoder, not two a line.
        parts = json.loads("[" + ",".join([line.replace("\t", ",") or "null,null" for line in lines]) + "]")
        return [
            self._kept[first + i] if parts[2 * i] is None else unpacked(parts[2 * i], parts[2 * i + 1])
            for i in range(len(lines))
        ]

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[Decision]:
        for k in range(len(self._chunks) + 1):
            yield from self._chunk(k)

    @overload
    def __getitem__(self, index: int) -> Decision: ...
    @overload
    def __getitem__(self, index: slice) -> list[Decision]: ...
    def __getitem__(self, index: int | slice) -> Decision | list[Decision]:
        if isinstance(index, int):
            i = index + self._len if index < 0 else index
            if not 0 <= i < self._len:
                raise IndexError(index)
            return self[i : i + 1][0]
        start, stop, step = index.indices(self._len)
        if step != 1:
            return list(self)[index]
        out: list[Decision] = []
        for k, lo, hi in self._spans(start, stop):
            out += self._chunk(k)[lo:hi]
        return out
