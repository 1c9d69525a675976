"""The last ``analyze`` answer, kept in the git dir for a re-run on the same inputs.

A decision is a pure function of the claim, the policy, the series, the
history and ``now`` (docs/performance.md), so an answer can be reused exactly
when none of them changed: the same commit (claims, settings and history all
hang off it), the same ``--now`` and shard, the same code and shipped policies,
and every metric file the run reads with the same size, mtime, ctime and inode
(git's own test for an unchanged work-tree file). Only fixture directories
qualify: a CloudWatch answer is never reused.

The file is a JSON head line, then the packed decisions' compressed chunks as
``patterns/packed.py`` holds them (a decision a line: its report JSON, a tab,
the rest; 1 MB at 10k claims where the lines are 17 MB), read a chunk at a time
and validated entry by entry; anything that does not validate means no cache. A file touched
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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from feedbackctl.authority import shapes
from feedbackctl.core.models import Decision, Evidence, Note, Outcome
from feedbackctl.patterns.inputs import Problem
from feedbackctl.patterns.packed import PackedDecisions, packed_line
from feedbackctl.sources.base import MetricsCost

VERSION = 2  # 2: a decision's line is its report text and the rest (patterns/packed.py)
RACY_SECONDS = 2.0
MAX_LINE_BYTES = 1024 * 1024  # the head line
# A chunk's lines (1,000 decisions, about 1 MB): a larger one is not this version's, and a
# file that would inflate past it is no cache rather than a run's memory.
MAX_CHUNK_BYTES = 64 * 1024 * 1024
_PACKAGE = Path(__file__).resolve().parents[1]


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
    stat = os.stat
    with _opened(root) as fd:
        # Relative to the root's descriptor, or (none) by the whole path: lstat either way.
        at = "" if fd is not None else os.path.join(root, "")
        for claim in claims:
            try:
                st = stat(at + claim, dir_fd=fd, follow_symlinks=False)
            except OSError:
                out.append(f"{claim}\0-\0")
                continue
            out.append(f"{claim}\0d{st.st_mode}\0")
            for file in files:
                try:
                    st = stat(at + claim + file, dir_fd=fd, follow_symlinks=False)
                except OSError:
                    out.append("-\0")
                    continue
                mtime, ctime = st.st_mtime_ns, st.st_ctime_ns
                out.append(f"{st.st_mode}:{st.st_size}:{mtime}:{ctime}:{st.st_ino}\0")
                newest = max(newest, mtime, ctime)
    h.update("".join(out).encode())
    return Key(h.hexdigest(), newest >= time.time_ns() - int(RACY_SECONDS * 1e9))


@contextlib.contextmanager
def _opened(root: str) -> Iterator[int | None]:
    if os.stat not in os.supports_dir_fd:
        yield None
        return
    try:
        fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        yield None  # stat by path: each fails as the root does
        return
    try:
        yield fd
    finally:
        os.close(fd)


def _file(git_dir: Path) -> Path:
    return git_dir / "feedbackctl" / f"analyze-v{VERSION}.packed"


def load(git_dir: Path, key: Key) -> Answer | None:
    try:
        with _file(git_dir).open("rb") as fh:
            head = _head(fh.readline(MAX_LINE_BYTES))
            if head.get("key") != key.digest:
                return None
            decisions = PackedDecisions()
            for data, lines in _chunks(fh, _list(head.get("chunks")), _int(head.get("decisions"))):
                for line in lines:
                    _valid(line)  # every entry validates, or there is no cache
                decisions.add_chunk(data, len(lines))
    except (OSError, ValueError, _Invalid, TypeError, KeyError, zlib.error):
        return None
    cost = _dict(head.get("metricsCost"))
    return Answer(
        decisions,
        [Problem(_str(w), _str(m)) for w, m in (_pair(p) for p in _list(head.get("problems")))],
        [_str(w) for w in _list(head.get("warnings"))],
        MetricsCost(_int(cost["apiCalls"]), _int(cost["metricsRequested"]), float(cost["estimatedUSD"])),
    )


def save(git_dir: Path, key: Key, answer: Answer) -> None:
    decisions = answer.decisions
    packed = decisions if isinstance(decisions, PackedDecisions) else PackedDecisions(decisions)
    if key.racy or not packed.all_json:
        return
    chunks = list(packed.compressed())
    head = {
        "version": VERSION,
        "key": key.digest,
        "decisions": len(packed),
        "chunks": [[len(data), lines] for data, lines in chunks],
        "problems": [[p.where, p.message] for p in answer.problems],
        "warnings": answer.warnings,
        "metricsCost": answer.metrics_cost.json() | {"estimatedUSD": answer.metrics_cost.estimated_usd},
    }

    def write(fh: TextIO) -> None:
        fh.write(json.dumps(head) + "\n")
        fh.flush()  # the chunks go to the bytes underneath, after the head
        for data, _ in chunks:
            fh.buffer.write(data)

    shapes.write_atomically(_file(git_dir), ".analyze-", write)


def _chunks(fh: Any, sizes: list[Any], n: int) -> Iterator[tuple[bytes, list[str]]]:
    """Each chunk as it is stored and its lines, decompressed no further than ``MAX_CHUNK_BYTES``."""
    total = 0
    for size in sizes:
        nbytes, lines = (_int(v) for v in _list(size, 2))
        data = fh.read(nbytes)
        unpack = zlib.decompressobj()
        text = unpack.decompress(data, MAX_CHUNK_BYTES)
        if len(data) != nbytes or not unpack.eof or unpack.unconsumed_tail or unpack.unused_data:
            raise _Invalid
        chunk = text.decode().split("\n")
        if len(chunk) != lines or lines == 0:
            raise _Invalid
        total += lines
        yield data, chunk
    if total != n or fh.read(1):
        raise _Invalid


_SCALARS = (str, int, float, bool, type(None))
_DIRECTIONS = ("increase", "decrease", None)
_EFFECTS = ("fired", "shaped", "blocked", "info")


def _valid(line: str) -> str:
    """A cached line, once it is what this version writes for the decision it holds."""
    text, rest = line.split("\t")
    d = _decision(_dict(json.loads(text)), _list(json.loads(rest), 3))
    # Its report text and the rest, written again from the decision they make, must be
    # the line itself: the derived parts (reason, blockedBy, summaries) cannot disagree.
    if packed_line(d) != line:
        raise _Invalid
    return line


def _decision(doc: dict[str, Any], rest: list[Any]) -> Decision:
    if list(doc) != _KEYS:
        raise _Invalid
    current, recommended, uncapped = doc["current"], doc["recommended"], doc["uncapped"]
    if not all(isinstance(v, _SCALARS) for v in (current, recommended, uncapped)):
        raise _Invalid
    direction, confidence = doc["direction"], doc["confidence"]
    if direction not in _DIRECTIONS or isinstance(confidence, bool):
        raise _Invalid
    if not isinstance(confidence, int | float):
        raise _Invalid
    field_name = _str(doc["field"])
    if not field_name.startswith("spec."):
        raise _Invalid
    units, validated_in, acknowledged = rest
    evidence = list(zip(_list(doc["evidence"]), _list(units), strict=True))
    return Decision(
        _str(doc["claim"]),
        field_name[len("spec.") :],
        current,
        Outcome(_str(doc["outcome"])),
        recommended=recommended,
        uncapped=uncapped,
        direction=direction,
        confidence=confidence,
        rule=_opt(doc["rule"]),
        source=_opt(doc["source"]),
        risk=_opt(doc["risk"]),
        evidence=tuple(_evidence(_dict(e), u) for e, u in evidence),
        notes=tuple(_note(_dict(n)) for n in _list(doc["notes"])),
        validated_in=_opt(validated_in),
        acknowledged=_opt(acknowledged),
    )


_KEYS = ["claim", "field", "current", "recommended", "uncapped", "outcome", "direction", "confidence", "risk"]
_KEYS += ["rule", "source", "reason", "blockedBy", "evidence", "notes"]


def _evidence(raw: dict[str, Any], unit: Any) -> Evidence:
    value, threshold = raw["value"], raw["threshold"]
    if not isinstance(value, int | float) or not (threshold is None or isinstance(threshold, int | float)):
        raise _Invalid
    return Evidence(
        _str(raw["metric"]), _str(raw["statistic"]), _int(raw["windowMinutes"]), _int(raw["points"]), value,
        threshold, _str(unit),
    )  # fmt: skip


def _note(raw: dict[str, Any]) -> Note:
    effect = raw["effect"]
    if effect not in _EFFECTS:
        raise _Invalid
    return Note(_str(raw["rule"]), effect, _str(raw["detail"]))


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
