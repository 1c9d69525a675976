"""The embedded metric source: a directory of CSV fixtures (docs/contracts.md).

``<dir>/<claim-name>/<metric>.csv``, each file in the format that
``fixture_csv.py`` parses.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from feedbackctl.boundedio import InputFileError, read_regular
from feedbackctl.errors import UsageError
from feedbackctl.sources import readahead
from feedbackctl.sources.base import MetricBatch, MetricRequest, register
from feedbackctl.sources.fixture_csv import _File, _prepare, parse_files

NAME = "metric-fixtures"
# A year of one-minute points is ~15 MB; anything far past that is not a metric export.
MAX_METRIC_FILE_BYTES = 64 * 1024 * 1024


class FixtureSource:
    """Reads metric series from a fixtures directory."""

    name = NAME

    def __init__(self, root: Path, display: str | None = None) -> None:
        self.root = root
        self.display = display if display is not None else str(root)

    @classmethod
    def from_spec(cls, spec: str) -> FixtureSource:
        path = spec.removeprefix("fixtures:")
        root = Path(path).expanduser()
        if not root.exists():
            raise UsageError(
                f"metrics directory '{path}' does not exist; pass --metrics with a directory "
                "of <claim>/<metric>.csv files, or --metrics cloudwatch"
            )
        if not root.is_dir():
            raise UsageError(
                f"metrics path '{path}' is not a directory; pass a directory of <claim>/<metric>.csv files"
            )
        return cls(root, path)

    def fetch(self, requests: Sequence[MetricRequest], now: float) -> MetricBatch:
        return next(self.fetch_batches([requests], now))

    def fetch_batches(self, groups: Sequence[Sequence[MetricRequest]], now: float) -> Iterator[MetricBatch]:
        """One batch per group, read when asked for; the last one carries the run-wide notices.

        With two cores or more, a helper process reads groups ahead while the caller
        decides on the last one (``readahead.py``): the batches are the same.
        """
        wants = [[(r.claim.name, r.metrics, r.start, r.end) for r in g] for g in groups]
        args = (str(self.root), self.display, now)
        helper = {"make": f"{__name__}:group_reader", "args": args} if readahead.wanted(len(wants)) else None
        later = [0, 0]  # points after now, files holding them
        read = readahead.read_groups(wants, group_reader(*args), helper)
        for k, (batch, points, files) in enumerate(read):
            later[0] += points
            later[1] += files
            if k == len(wants) - 1 and later[0]:
                at = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                n, files = later
                batch.warnings.append(
                    f"{self.display}: {n} point{'s' if n != 1 else ''} in {files} "
                    f"file{'s' if files != 1 else ''} after {at} left out (not yet known at that time)"
                )
            yield batch


# One claim's wanted metrics over [start, end]: what a MetricRequest says, in plain values.
Want = tuple[str, tuple[str, ...], float, float]
# A group's batch, with its count of points after now and of files holding them.
GroupRead = tuple[MetricBatch, int, int]


def group_reader(root: str, display: str, now: float) -> Callable[[Sequence[Want]], GroupRead]:
    """Reads one group of wants: here, or in the read-ahead helper from the same arguments."""
    return lambda wants: _read_group(root, display, wants, now)


def _read_group(root: str, display: str, wants: Sequence[Want], now: float) -> GroupRead:
    batch = MetricBatch()
    files: list[_File] = []
    unsafe_metric = {m: _unsafe_component(m) for _, metrics, _, _ in wants for m in metrics}
    for claim, metrics, start, end in wants:
        problem = _unsafe_component(claim)
        if problem:
            batch.add_problem(
                claim,
                f"claim name {claim!r} {problem}, so it cannot name a directory under "
                f"'{display}'; refusing to read metrics for it (rename the claim)",
            )
            continue
        claim_dir = os.path.join(root, claim)
        if not os.path.isdir(claim_dir):
            where = os.path.join(display, claim)
            batch.add_absent(claim, f"{where}: no metrics for claim; add {where}/<metric>.csv files")
            continue
        batch.series.setdefault(claim, {})
        for metric in metrics:
            problem = unsafe_metric[metric]
            if problem:
                batch.add_problem(
                    claim,
                    f"metric name {metric!r} {problem}, so it cannot name a file; fix the rule",
                )
                continue
            loaded = _read(display, claim_dir, claim, metric, start, end)
            if isinstance(loaded, str):
                batch.add_metric_problem(claim, metric, loaded)
            elif loaded is not None:
                files.append(loaded)
    later: list[int] = []
    for file, result in zip(files, parse_files(files, now, later), strict=True):
        if isinstance(result, str):
            batch.add_metric_problem(file.claim, file.metric, result)
        else:
            batch.add_series(file.claim, result)
    return batch, sum(later), sum(1 for c in later if c)


def _read(
    display: str, claim_dir: str, claim: str, metric: str, start: float, end: float
) -> _File | str | None:
    try:
        data = read_regular(f"{claim_dir}/{metric}.csv", MAX_METRIC_FILE_BYTES, follow_symlinks=False)
    except FileNotFoundError:
        return None  # no series: the core reports "not enough data"
    except InputFileError as exc:
        return f"{os.path.join(display, claim, f'{metric}.csv')}: {exc}"
    return _prepare(claim, metric, display, data, start, end)


def _unsafe_component(name: str) -> str | None:
    """Why ``name`` cannot be used as one path component, or None."""
    if not name:
        return "is empty"
    if name in (".", ".."):
        return "is a relative directory name (path traversal)"
    if "/" in name or "\\" in name:
        return "contains a path separator (path traversal)"
    if "\0" in name:
        return "contains a NUL byte"
    return None




register("fixtures", FixtureSource.from_spec)
