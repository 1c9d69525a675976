"""The last ``analyze`` answer, kept in the git dir for a re-run on the same inputs.

A decision is a pure function of the claim, the policy, the series, the
history and ``now`` (docs/performance.md), so an answer can be reused exactly
when none of them changed: the same commit (claims, settings and history all
hang off it), the same ``--now`` and shard, the same code and shipped policies,
and every metric file the run reads with the same size, mtime, ctime and inode
(git's own test for an unchanged work-tree file). Only fixture directories
qualify: a CloudWatch answer is never reused.

The file is JSON lines (one decision a line, read one at a time), validated
entry by entry; anything that does not validate means no cache. A file touched
in the last ``RACY_SECONDS`` could still change within the same timestamp, so a
run that read one does not write the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, overload

from feedbackctl.authority import shapes
from feedbackctl.core.models import Decision, Evidence, Note, Outcome
from feedbackctl.patterns.inputs import Problem
from feedbackctl.sources.base import MetricsCost

VERSION = 1
RACY_SECONDS = 2.0
MAX_LINE_BYTES = 1024 * 1024
_PACKAGE = Path(__file__).resolve().parents[1]


class PackedDecisions(Sequence[Decision]):
    """A run's decisions, kept as compressed JSON lines (the cache's own encoding).

    A fleet's decisions with their notes and evidence are most of a run's
    memory once its series are gone (100,000 of them: about 150 MB as objects,
    a few MB packed). Packed a chunk at a time as batches are decided, they are
    decoded a chunk at a time where they are read (the report writer slices by
    ``CHUNK``, the cache writes the lines as they are). Read-only.
    """

    CHUNK = 1000  # the report's JSON slice: one chunk decoded per slice written

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
            try:
                line = json.dumps(plain_decision(d))
            except (TypeError, ValueError):
                self._kept[self._len] = d
                line = "null"
            self.add_line(line)

    def _seal(self) -> None:
        if self._pending:
            self._chunks.append(zlib.compress("\n".join(self._pending).encode(), 1))
            self._sizes.append(len(self._pending))
            self._pending = []

    def add_line(self, line: str) -> None:
        """A decision already in its JSON line (the cache's, validated by its reader)."""
        self._pending.append(line)
        self._len += 1
        if len(self._pending) == self.CHUNK:
            self._seal()

    @property
    def all_json(self) -> bool:
        return not self._kept

    def lines(self) -> Iterator[str]:
        """Each decision's JSON line (no newline), in order ("null" for one JSON cannot hold)."""
        for chunk in self._chunks:
            yield from zlib.decompress(chunk).decode().split("\n")
        yield from self._pending

    def _raw(self, k: int) -> list[Any]:
        """Chunk ``k``'s plain lists (``plain_decision``; None for a decision kept as it is)."""
        sealed = k < len(self._chunks)
        raw = zlib.decompress(self._chunks[k]).decode().split("\n") if sealed else self._pending
        # Lines this process wrote, or the cache's after its reader validated them: one
        # JSON array, so a chunk is one call into the C decoder rather than one a line.
        return list(json.loads("[" + ",".join(raw) + "]"))

    def _chunk(self, k: int) -> list[Decision]:
        first = sum(self._sizes[:k])
        raw = self._raw(k)
        return [self._kept[first + i] if plain is None else _unpacked(plain) for i, plain in enumerate(raw)]

    def plain(self, start: int, stop: int) -> list[list[Any]] | None:
        """Decisions ``start:stop`` as plain lists (``plain_decision``), unbuilt; None if one is kept."""
        if self._kept:
            return None
        out: list[list[Any]] = []
        first = 0
        for k, size in enumerate([*self._sizes, len(self._pending)]):
            if first < stop and start < first + size:
                out += self._raw(k)[max(0, start - first) : stop - first]
            first += size
        return out

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
        first = 0
        for k, size in enumerate([*self._sizes, len(self._pending)]):
            if first < stop and start < first + size:
                part = self._chunk(k)
                out += part[max(0, start - first) : stop - first]
            first += size
        return out


@dataclass
class Answer:
    decisions: Sequence[Decision]
    problems: list[Problem]
    warnings: list[str]
    metrics_cost: MetricsCost


_Invalid = shapes.Invalid


def _code_digest() -> str:
    """The tool's own code and shipped policies: an upgrade answers anew."""
    from feedbackctl.resources import data_dir

    h = hashlib.sha256()
    roots = [_PACKAGE]
    with contextlib.suppress(FileNotFoundError):
        roots.append(data_dir("policies"))
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.suffix in (".py", ".yaml", ".yml", ".json") and path.is_file():
                st = path.stat()
                h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class Key:
    digest: str
    racy: bool  # a file changed too recently for its stat to vouch for its content


def key_of(parts: Sequence[str], root: str, claims: Sequence[str], metrics: Sequence[str]) -> Key:
    """The inputs' fingerprint: ``parts`` (commit, now, shard, ...) and every metric file's stat."""
    h = hashlib.sha256()
    h.update(f"v{VERSION}\0{_code_digest()}\0".encode())
    for p in parts:
        h.update(p.encode() + b"\0")
    # One update of the joined text hashes as the updates one by one would; the stats go
    # relative to the root's descriptor (no path walked again: a warm run is mostly these).
    out: list[str] = []
    newest = 0
    files = [f"/{metric}.csv" for metric in metrics]
    with _opened(root) as fd:
        for claim in claims:
            try:
                st = _lstat(root, claim, fd)
                out.append(f"{claim}\0d{st.st_mode}\0")
            except OSError:
                out.append(f"{claim}\0-\0")
                continue
            for file in files:
                try:
                    st = _lstat(root, claim + file, fd)
                except OSError:
                    out.append("-\0")
                    continue
                out.append(f"{st.st_mode}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}\0")
                newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
    h.update("".join(out).encode())
    return Key(h.hexdigest(), newest >= time.time_ns() - int(RACY_SECONDS * 1e9))


@contextlib.contextmanager
def _opened(root: str) -> Iterator[int | None]:
    try:
        fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        yield None  # stat by path: each fails as the root does
        return
    try:
        yield fd
    finally:
        os.close(fd)


def _lstat(root: str, rel: str, fd: int | None) -> os.stat_result:
    if fd is None or os.stat not in os.supports_dir_fd:
        return os.lstat(os.path.join(root, rel))
    return os.stat(rel, dir_fd=fd, follow_symlinks=False)


def _file(git_dir: Path) -> Path:
    return git_dir / "feedbackctl" / f"analyze-v{VERSION}.jsonl"


def load(git_dir: Path, key: Key) -> Answer | None:
    try:
        with _file(git_dir).open("rb") as fh:
            head = _head(fh.readline(MAX_LINE_BYTES))
            if head.get("key") != key.digest:
                return None
            decisions = PackedDecisions()
            for line in _lines(fh, _int(head.get("decisions"))):
                _decision(json.loads(line))  # every entry validates, or there is no cache
                decisions.add_line(line.decode().rstrip("\n"))
    except (OSError, ValueError, _Invalid, TypeError, KeyError):
        return None
    cost = _dict(head.get("metricsCost"))
    return Answer(
        decisions,
        [Problem(_str(w), _str(m)) for w, m in (_pair(p) for p in _list(head.get("problems")))],
        [_str(w) for w in _list(head.get("warnings"))],
        MetricsCost(_int(cost["apiCalls"]), _int(cost["metricsRequested"]), float(cost["estimatedUSD"])),
    )


def save(git_dir: Path, key: Key, answer: Answer) -> None:
    packed = answer.decisions if isinstance(answer.decisions, PackedDecisions) else None
    if key.racy or (packed is not None and not packed.all_json):
        return
    head = {
        "version": VERSION,
        "key": key.digest,
        "decisions": len(answer.decisions),
        "problems": [[p.where, p.message] for p in answer.problems],
        "warnings": answer.warnings,
        "metricsCost": answer.metrics_cost.json() | {"estimatedUSD": answer.metrics_cost.estimated_usd},
    }

    def write(fh: TextIO) -> None:
        fh.write(json.dumps(head) + "\n")
        if packed is not None:
            for line in packed.lines():
                fh.write(line + "\n")
            return
        for d in answer.decisions:
            fh.write(json.dumps(plain_decision(d)) + "\n")

    shapes.write_atomically(_file(git_dir), ".analyze-", write)


def _lines(fh: Any, n: int) -> Iterator[bytes]:
    for _ in range(n):
        line = fh.readline(MAX_LINE_BYTES)
        if not line.endswith(b"\n"):
            raise _Invalid
        yield line
    if fh.readline(1):
        raise _Invalid


def plain_decision(d: Decision) -> list[Any]:
    """A decision as the plain list the cache and the packed decisions hold (render.py reads it too)."""
    return [
        d.claim, d.field, d.current, d.outcome.value, d.recommended, d.uncapped, d.direction,
        d.confidence, d.rule, d.source, d.risk,
        [[e.metric, e.statistic, e.window_minutes, e.points, e.value, e.threshold, e.unit]
         for e in d.evidence],
        [[n.rule, n.effect, n.detail] for n in d.notes],
        d.validated_in, d.acknowledged,
    ]  # fmt: skip


# Outcome(value) goes through the enum's lookup machinery; a report decodes every decision.
_OUTCOMES = {o.value: o for o in Outcome}


def _unpacked(raw: list[Any]) -> Decision:
    """``plain_decision`` undone, for lines known to be valid."""
    (claim, field_name, current, outcome, recommended, uncapped, direction, confidence, rule, source, risk,
     evidence, notes, validated_in, acknowledged) = raw  # fmt: skip
    return Decision(
        claim, field_name, current, _OUTCOMES[outcome], recommended, uncapped, direction, confidence, rule,
        source, risk, tuple(Evidence(*e) for e in evidence), tuple(Note(*n) for n in notes), validated_in,
        acknowledged,
    )  # fmt: skip


_SCALARS = (str, int, float, bool, type(None))
_DIRECTIONS = ("increase", "decrease", None)
_EFFECTS = ("fired", "shaped", "blocked", "info")


def _decision(raw: Any) -> Decision:
    (claim, field_name, current, outcome, recommended, uncapped, direction, confidence, rule, source, risk,
     evidence, notes, validated_in, acknowledged) = _list(raw, 15)  # fmt: skip
    if not all(isinstance(v, _SCALARS) for v in (current, recommended, uncapped)):
        raise _Invalid
    if direction not in _DIRECTIONS or isinstance(confidence, bool):
        raise _Invalid
    if not isinstance(confidence, int | float):
        raise _Invalid
    return Decision(
        _str(claim),
        _str(field_name),
        current,
        Outcome(_str(outcome)),
        recommended=recommended,
        uncapped=uncapped,
        direction=direction,
        confidence=confidence,
        rule=_opt(rule),
        source=_opt(source),
        risk=_opt(risk),
        evidence=tuple(_evidence(e) for e in _list(evidence)),
        notes=tuple(_note(n) for n in _list(notes)),
        validated_in=_opt(validated_in),
        acknowledged=_opt(acknowledged),
    )


def _evidence(raw: Any) -> Evidence:
    metric, statistic, window, points, value, threshold, unit = _list(raw, 7)
    if not isinstance(value, int | float) or not (threshold is None or isinstance(threshold, int | float)):
        raise _Invalid
    return Evidence(_str(metric), _str(statistic), _int(window), _int(points), value, threshold, _str(unit))


def _note(raw: Any) -> Note:
    rule, effect, detail = _list(raw, 3)
    if effect not in _EFFECTS:
        raise _Invalid
    return Note(_str(rule), effect, _str(detail))


def _head(line: bytes) -> dict[str, Any]:
    head = _dict(json.loads(line))
    if head.get("version") != VERSION:
        raise _Invalid
    return head


def _pair(v: Any) -> tuple[Any, Any]:
    a, b = _list(v, 2)
    return a, b


_dict, _list, _str = shapes.mapping, shapes.items, shapes.text


def _opt(v: Any) -> str | None:
    return None if v is None else _str(v)


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _Invalid
    return v
