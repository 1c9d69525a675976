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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from feedbackctl.authority import shapes
from feedbackctl.core.models import Decision, Evidence, Note, Outcome
from feedbackctl.patterns.inputs import Problem
from feedbackctl.sources.base import MetricsCost

VERSION = 1
RACY_SECONDS = 2.0
MAX_LINE_BYTES = 1024 * 1024
_PACKAGE = Path(__file__).resolve().parents[1]


@dataclass
class Answer:
    decisions: list[Decision]
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
    newest = 0
    for claim in claims:
        folder = os.path.join(root, claim)
        try:
            st = os.lstat(folder)
            h.update(f"{claim}\0d{st.st_mode}\0".encode())
        except OSError:
            h.update(f"{claim}\0-\0".encode())
            continue
        for metric in metrics:
            try:
                st = os.lstat(os.path.join(folder, f"{metric}.csv"))
            except OSError:
                h.update(b"-\0")
                continue
            h.update(f"{st.st_mode}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}\0".encode())
            newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
    return Key(h.hexdigest(), newest >= time.time_ns() - int(RACY_SECONDS * 1e9))


def _file(git_dir: Path) -> Path:
    return git_dir / "feedbackctl" / f"analyze-v{VERSION}.jsonl"


def load(git_dir: Path, key: Key) -> Answer | None:
    try:
        with _file(git_dir).open("rb") as fh:
            head = _head(fh.readline(MAX_LINE_BYTES))
            if head.get("key") != key.digest:
                return None
            decisions = [_decision(json.loads(line)) for line in _lines(fh, _int(head.get("decisions")))]
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
    if key.racy:
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
        for d in answer.decisions:
            fh.write(json.dumps(_plain(d)) + "\n")

    shapes.write_atomically(_file(git_dir), ".analyze-", write)


def _lines(fh: Any, n: int) -> Iterator[bytes]:
    for _ in range(n):
        line = fh.readline(MAX_LINE_BYTES)
        if not line.endswith(b"\n"):
            raise _Invalid
        yield line
    if fh.readline(1):
        raise _Invalid


def _plain(d: Decision) -> list[Any]:
    return [
        d.claim, d.field, d.current, d.outcome.value, d.recommended, d.uncapped, d.direction,
        d.confidence, d.rule, d.source, d.risk,
        [[e.metric, e.statistic, e.window_minutes, e.points, e.value, e.threshold, e.unit]
         for e in d.evidence],
        [[n.rule, n.effect, n.detail] for n in d.notes],
        d.validated_in, d.acknowledged,
    ]  # fmt: skip


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
