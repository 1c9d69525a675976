"""The metric fixture format: one ``<metric>.csv`` file parsed into a ``Series`` (docs/contracts.md).

The header is ``timestamp,value``; timestamps are ISO-8601 (``Z`` or an
offset) or Unix epoch seconds, in any order, duplicates allowed (the last one
in file order wins), gaps allowed. ``fixtures.py`` walks the directory.

Fleets have tens of thousands of files, so rows are parsed in bulk: files whose
timestamps are all epoch numbers go through one ``numpy.loadtxt`` per chunk;
everything else (ISO-8601, and any chunk the fast path rejects) goes through a
vectorised string path that also finds the first bad row of each file.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from feedbackctl.core.models import Series

# Points after the evaluation time are not yet known (a replay with --now over a
# directory that holds later data): they are left out, never an error. Stamps
# beyond this one (year 5138) are not seconds at all, but usually milliseconds.
EPOCH_SECONDS_MAX = 1e11
# Rows per bulk parse: large enough to amortise numpy's per-call cost, small enough
# that a chunk's arrays stay a few MB (they are a batch's peak beside its series).
CHUNK_ROWS = 100_000

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]
Strs = npt.NDArray[np.bytes_]
Mask = npt.NDArray[np.bool_]

# Row problems, in the order a row is checked; a row reports the first that applies.
OK, FIELDS, TIMESTAMP, NO_TIMEZONE, VALUE, NOT_FINITE, NEGATIVE, FUTURE = range(8)

_BOM = b"\xef\xbb\xbf"
_FAST_PATH_HEADER = b"timestamp,value\n"
# The only bytes of an all-epoch file loadtxt can take; anything else (ISO dates,
# signs, quotes, exponents) goes down the string path, which handles or diagnoses it.
_FAST_BYTES = b"0123456789.,\n"
_FAST_PATH_HEADER_LETTERS = _FAST_PATH_HEADER.translate(None, _FAST_BYTES)


@dataclass(frozen=True)
class _File:
    claim: str
    metric: str
    root: str  # the metrics directory as the user typed it, for messages
    data: bytes  # normalised: no BOM, "\n" line ends
    body_start: int  # offset of line 2
    lines: int  # lines after the header, blank ones included
    start: float
    end: float

    @property
    def display(self) -> str:
        return os.path.join(self.root, self.claim, f"{self.metric}.csv")


@dataclass
class _Rows:
    """Parsed rows of several files, in file order then line order."""

    ts: I64
    values: F64
    code: I8
    file: I64  # index into the chunk's file list, non-decreasing
    line: I64  # 1-based line number in its file

def _prepare(claim: str, metric: str, root: str, data: bytes, start: float, end: float) -> _File | str:
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if not data.strip():
        return (
            f"{os.path.join(root, claim, metric)}.csv: file is empty; "
            "add the header 'timestamp,value' and one row per point"
        )
    first_end = data.find(b"\n")
    header = data if first_end < 0 else data[:first_end]
    if header != b"timestamp,value":
        names = [part.strip(b' \t"').lower() for part in header.split(b",")]
        if names != [b"timestamp", b"value"]:
            return (
                f"{os.path.join(root, claim, metric)}.csv:1: header is {_show(header)}, "
                "expected 'timestamp,value'; fix the first line"
            )
    if not data.endswith(b"\n"):
        data += b"\n"
    body_start = data.find(b"\n") + 1
    lines = data.count(b"\n") - 1
    return _File(claim, metric, root, data, body_start, lines, start, end)


def parse_files(files: Sequence[_File], now: float, later: list[int] | None = None) -> list[Series | str]:
    """Parse prepared files in bulk: a Series (windowed) or a one-line problem per file.

    Points after ``now`` are left out; ``later`` (when given) receives each file's count of them.
    """
    results: list[Series | str | None] = [None] * len(files)
    counts = [0] * len(files)
    fast = [i for i, f in enumerate(files) if _fast_eligible(f)]
    fast_set = set(fast)
    slow = [i for i in range(len(files)) if i not in fast_set]
    for chunk in _chunks(fast, files):
        rows = _fast_rows([files[i] for i in chunk])
        if rows is None:
            slow.extend(chunk)
        else:
            _finish([files[i] for i in chunk], chunk, rows, now, results, counts)
    slow.sort()
    for chunk in _chunks(slow, files):
        chunk_files = [files[i] for i in chunk]
        _finish(chunk_files, chunk, _string_rows(chunk_files), now, results, counts)
    assert all(r is not None for r in results)
    if later is not None:
        later[:] = counts
    return [r for r in results if r is not None]


def _fast_eligible(f: _File) -> bool:
    # Blank lines are fine, but loadtxt skips them and rows would shift between files.
    if not f.data.startswith(_FAST_PATH_HEADER) or b"\n\n" in f.data:
        return False
    return f.data.translate(None, _FAST_BYTES) == _FAST_PATH_HEADER_LETTERS


def _chunks(indices: list[int], files: Sequence[_File]) -> Iterator[list[int]]:
    chunk: list[int] = []
    rows = 0
    for i in indices:
        chunk.append(i)
        rows += files[i].lines
        if rows >= CHUNK_ROWS:
            yield chunk
            chunk, rows = [], 0
    if chunk:
        yield chunk


def _fast_rows(files: list[_File]) -> _Rows | None:
    """All-epoch files in one loadtxt call; None when any row needs the string path."""
    counts = np.array([f.lines for f in files], dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return None
    big = b"".join(memoryview(f.data)[f.body_start :] for f in files)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": handled below
            table = np.loadtxt(io.BytesIO(big), delimiter=",", dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        return None
    # loadtxt silently skips empty lines; a count mismatch means rows would shift between files.
    if table.shape != (total, 2):
        return None
    file_of, line_of = _positions(counts)
    stamps = table[:, 0]
    code = np.zeros(total, dtype=np.int8)
    code[~np.isfinite(stamps)] = TIMESTAMP
    ts = _epoch_seconds(np.where(code == OK, stamps, 0.0))
    return _Rows(ts, np.ascontiguousarray(table[:, 1]), code, file_of, line_of)


def _epoch_seconds(numbers: F64) -> I64:
    # Clipping keeps absurd stamps absurd (so the future check names them) instead of
    # letting the int64 cast wrap them around.
    return np.floor(np.clip(numbers, -(2.0**62), 2.0**62)).astype(np.int64)


def _positions(counts: I64) -> tuple[I64, I64]:
    """File index and 1-based line number (data starts on line 2) of each row."""
    total = int(counts.sum())
    file_of = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    first = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    line_of = np.arange(total, dtype=np.int64) - np.repeat(first, counts) + 2
    return file_of, line_of


def _string_rows(files: list[_File]) -> _Rows:
    lines: list[bytes] = []
    counts = np.zeros(len(files), dtype=np.int64)
    for k, f in enumerate(files):
        file_lines = f.data[f.body_start :].split(b"\n")
        counts[k] = len(file_lines)
        lines.extend(file_lines)
    file_of, line_of = _positions(counts)
    raw: Strs = np.array(lines, dtype=np.bytes_)
    cells = np.strings.strip(raw)
    keep = np.strings.str_len(cells) > 0
    cells, file_of, line_of = cells[keep], file_of[keep], line_of[keep]
    n = int(cells.shape[0])
    code = np.zeros(n, dtype=np.int8)
    if n == 0:
        return _Rows(np.zeros(0, np.int64), np.zeros(0, np.float64), code, file_of, line_of)
    raw_ts, comma, raw_value = np.strings.partition(cells, b",")
    code[(comma == b"") | (np.strings.find(raw_value, b",") >= 0)] = FIELDS
    ts, ts_code = _parse_timestamps(np.strings.strip(raw_ts, b' \t"'))
    _flag(code, ts_code != OK, ts_code)
    values, bad_value = _parse_floats(np.strings.strip(raw_value, b' \t"'))
    _flag(code, bad_value, VALUE)
    return _Rows(ts, values, code, file_of, line_of)


def _flag(code: I8, mask: Mask, what: int | I8) -> None:
    """Record a problem for rows that have none yet (earlier checks win)."""
    hit = mask & (code == OK)
    code[hit] = what[hit] if isinstance(what, np.ndarray) else what


def _parse_floats(cells: Strs) -> tuple[F64, Mask]:
    return _bisect_parse(cells, lambda a: a.astype(np.float64), np.float64(0.0))


def _parse_datetimes(cells: Strs) -> tuple[I64, Mask]:
    def parse(a: Strs) -> I64:
        # numpy warns, then guesses, on a second zone inside the text: treat it as bad.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return a.astype("datetime64[s]").astype(np.int64)

    return _bisect_parse(cells, parse, np.int64(0))


def _bisect_parse(cells: Strs, parse: Callable[[Strs], Any], fill: Any) -> tuple[Any, Mask]:
    """Vectorised conversion; on failure, halve until the bad cells are found."""
    try:
        return parse(cells), np.zeros(cells.shape[0], dtype=np.bool_)
    except (ValueError, OverflowError, Warning):
        if cells.shape[0] == 1:
            return np.full(1, fill), np.ones(1, dtype=np.bool_)
    mid = cells.shape[0] // 2
    left, left_bad = _bisect_parse(cells[:mid], parse, fill)
    right, right_bad = _bisect_parse(cells[mid:], parse, fill)
    return np.concatenate((left, right)), np.concatenate((left_bad, right_bad))


def _parse_timestamps(cells: Strs) -> tuple[I64, I8]:
    n = cells.shape[0]
    ts = np.zeros(n, dtype=np.int64)
    code = np.zeros(n, dtype=np.int8)
    if n == 0:
        return ts, code
    chars = _char_matrix(cells)
    length = np.strings.str_len(cells)
    # Every ISO-8601 date has '-' at index 4; epoch numbers never do.
    iso = (length >= 10) & (chars[:, 4] == ord("-")) if chars.shape[1] > 4 else length < 0

    epoch_idx = np.flatnonzero(~iso)
    if epoch_idx.size:
        numbers, bad = _parse_floats(cells[epoch_idx])
        bad |= ~np.isfinite(numbers)
        ts[epoch_idx] = _epoch_seconds(np.where(bad, 0.0, numbers))
        code[epoch_idx[bad]] = TIMESTAMP

    iso_idx = np.flatnonzero(iso)
    if iso_idx.size:
        ts[iso_idx], code[iso_idx] = _parse_iso(cells[iso_idx])
    return ts, code


def _char_matrix(cells: Strs) -> npt.NDArray[np.uint8]:
    """The bytes of fixed-width cells as an (n, width) matrix, NUL-padded."""
    cells = np.ascontiguousarray(cells)
    return cells.view(np.uint8).reshape(cells.shape[0], cells.dtype.itemsize)


def _parse_iso(text: Strs) -> tuple[I64, I8]:
    """ISO-8601 with 'Z' or '+HH:MM' in bulk via datetime64; other spellings one by one."""
    n = text.shape[0]
    chars = _char_matrix(text).copy()
    rows = np.arange(n)
    length = np.strings.str_len(text).astype(np.int64)

    def at(back: int) -> npt.NDArray[np.uint8]:
        return chars[rows, np.maximum(length - back, 0)]

    def digit(c: npt.NDArray[np.uint8]) -> Mask:
        return (c >= ord("0")) & (c <= ord("9"))

    zulu = (at(1) == ord("Z")) | (at(1) == ord("z"))
    sign = at(6)
    h1, h2, m1, m2 = at(5), at(4), at(2), at(1)
    offset = (
        ~zulu
        & (length >= 16)
        & ((sign == ord("+")) | (sign == ord("-")))
        & (at(3) == ord(":"))
        & digit(h1)
        & digit(h2)
        & digit(m1)
        & digit(m2)
    )
    # Cut the zone off in place (NUL ends a fixed-width byte string) and parse once.
    for back, mask in ((1, zulu), (6, offset)):
        idx = np.flatnonzero(mask)
        for k in range(back):
            chars[idx, length[idx] - back + k] = 0
    known = np.flatnonzero(zulu | offset)
    local = chars.view(text.dtype).reshape(n)
    secs, bad = _parse_datetimes(local[known])
    east = np.where(sign == ord("-"), -1, 1)
    shift = east * (
        (h1.astype(np.int64) - 48) * 36000
        + (h2.astype(np.int64) - 48) * 3600
        + (m1.astype(np.int64) - 48) * 600
        + (m2.astype(np.int64) - 48) * 60
    )
    ts = np.zeros(n, dtype=np.int64)
    code = np.zeros(n, dtype=np.int8)
    ts[known] = secs - np.where(offset[known], shift[known], 0)
    code[known[bad]] = TIMESTAMP
    # Other spellings (basic-format offsets, naive times) are rare: parse them one by one.
    for j in np.flatnonzero(~(zulu | offset)):
        ts[j], code[j] = _parse_one_iso(bytes(text[j]))
    return ts, code


def _parse_one_iso(cell: bytes) -> tuple[int, int]:
    try:
        when = datetime.fromisoformat(cell.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return 0, TIMESTAMP
    if when.tzinfo is None:
        return 0, NO_TIMEZONE
    return math.floor(when.timestamp()), OK


def _finish(
    files: list[_File],
    indices: list[int],
    rows: _Rows,
    now: float,
    results: list[Series | str | None],
    later: list[int],
) -> None:
    """Apply the value checks, report each file's first bad row, build windowed series."""
    _flag(rows.code, ~np.isfinite(rows.values), NOT_FINITE)
    _flag(rows.code, rows.values < 0, NEGATIVE)
    _flag(rows.code, rows.ts > EPOCH_SECONDS_MAX, FUTURE)
    # Valid points after now: counted and windowed out (the window ends at now at the latest).
    after = (rows.code == OK) & (rows.ts > now)
    if after.any():
        for k, c in zip(*np.unique(rows.file[after], return_counts=True), strict=True):
            later[indices[int(k)]] += int(c)
    end_cap = min(now, float(EPOCH_SECONDS_MAX))

    bad_rows = np.flatnonzero(rows.code != OK)
    bad_files, first_bad, bad_counts = np.unique(rows.file[bad_rows], return_index=True, return_counts=True)
    problems = {
        int(k): _problem(files[int(k)], int(rows.line[r]), int(rows.code[r]), int(c) - 1, now)
        for k, r, c in zip(bad_files, bad_rows[first_bad], bad_counts, strict=True)
    }
    # Window all files at once; the few files that need sorting are windowed after it.
    step_back = (rows.file[1:] == rows.file[:-1]) & (rows.ts[1:] <= rows.ts[:-1])
    unsorted = set(np.unique(rows.file[1:][step_back]).tolist())
    start = np.array([f.start for f in files], dtype=np.float64)[rows.file]
    end = np.minimum(np.array([f.end for f in files], dtype=np.float64), end_cap)[rows.file]
    keep = (rows.ts >= start) & (rows.ts <= end)
    if unsorted:
        keep |= np.isin(rows.file, list(unsorted))
    kept_file, kept_ts, kept_values = rows.file[keep], rows.ts[keep], rows.values[keep]
    bounds = np.searchsorted(kept_file, np.arange(len(files) + 1))
    for k, f in enumerate(files):
        if k in problems:
            results[indices[k]] = problems[k]
            continue
        ts, values = kept_ts[bounds[k] : bounds[k + 1]], kept_values[bounds[k] : bounds[k + 1]]
        if k in unsorted:
            ts, values = _sorted_unique(ts, values)
            first = int(np.searchsorted(ts, f.start, side="left"))
            last = int(np.searchsorted(ts, min(f.end, end_cap), side="right"))
            ts, values = ts[first:last], values[first:last]
        results[indices[k]] = Series(f.metric, ts, values)


def _sorted_unique(ts: I64, values: F64) -> tuple[I64, F64]:
    order = np.argsort(ts, kind="stable")  # stable: equal stamps keep file order
    ts, values = ts[order], values[order]
    last_of_run = np.append(ts[1:] != ts[:-1], True)
    return ts[last_of_run], values[last_of_run]


def _problem(f: _File, line: int, code: int, more: int, now: float) -> str:
    text = f.data.split(b"\n")[line - 1].strip()
    stamp, _, value = text.partition(b",")
    stamp, value = stamp.strip(b' \t"'), value.strip(b' \t"')
    stamp_s, value_s = _show(stamp), _show(value)
    what, fix = {
        FIELDS: (_fields(text.count(b",") + 1), "fix the row"),
        TIMESTAMP: (f"timestamp {stamp_s} is neither ISO-8601 nor epoch seconds", "fix the row"),
        NO_TIMEZONE: (
            f"timestamp {stamp_s} has no timezone",
            "add 'Z' or an offset such as '+00:00'",
        ),
        VALUE: (f"value {value_s} is not a number", "fix the row"),
        NOT_FINITE: (f"value {value_s} is not a finite number", "fix or drop the row"),
        NEGATIVE: (f"value {value_s} is negative and metrics never are", "fix the row"),
        FUTURE: (_not_seconds(stamp), "fix the row"),
    }[code]
    extra = f" ({more} more bad row{'s' if more != 1 else ''} in this file)" if more else ""
    return f"{f.display}:{line}: {what}; {fix}{extra}"


def _fields(count: int) -> str:
    return f"row has {count} field{'s' if count != 1 else ''}, expected 'timestamp,value'"


def _not_seconds(stamp: bytes) -> str:
    return f"timestamp {_show(stamp)} is after the year 5000 (epoch milliseconds? use seconds)"


def _show(cell: bytes, limit: int = 40) -> str:
    text = cell.decode("utf-8", "replace")
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return repr(text)
