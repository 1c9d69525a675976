"""Shared pieces of the benchmarks: rows, a table, timing, child-process RSS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
T = TypeVar("T")


@dataclass(frozen=True)
class Row:
    """One figure beside its floor (measured in the same run) and its target."""

    section: str
    name: str
    seconds: float | None
    floor: float | None = None
    target: str = ""
    note: str = ""
    unit: str = "s"  # what ``seconds`` (and ``floor``) count: s, MB, calls, x

    @property
    def ratio(self) -> str:
        if self.seconds is None or not self.floor:
            return "-"
        return f"{self.seconds / self.floor:.2f}x"

    def show(self, value: float | None) -> str:
        if value is None:
            return "-"
        if self.unit == "s":
            return f"{value:.3f}"
        if self.unit == "calls":
            return f"{value:.0f} calls"
        if self.unit == "metrics":
            return f"{value:,.0f} metrics"
        if self.unit == "MB":
            return f"{value:.0f} MB"
        return f"{value:.2f}{self.unit}"


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def peak_rss_mb() -> float:
    """This process's peak RSS in MB.

    ``getrusage(RUSAGE_SELF).ru_maxrss`` is wrong for a child started by a big
    parent: Linux carries the high-water mark across ``exec`` (and Python's
    subprocess uses vfork), so the child reports the parent's peak. ``VmHWM``
    in /proc is the current image's own.
    """
    hwm = _status_mb("self", "VmHWM:")
    if hwm is not None:
        return hwm
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class ChildrenRss:
    """Samples, every 20 ms while open, the RSS of this process's children and of all together.

    A fixture run reads ahead in a helper process (feedbackctl/sources/readahead.py),
    whose memory is its own, beside git's children: ``helpers`` is the children's
    peak, ``together`` the peak of this process and its children summed (sampled,
    so a short spike can be missed; VmHWM above is exact for this process alone).
    """

    def __init__(self) -> None:
        self.helpers = 0.0
        self.together = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> ChildrenRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.02):
            kids = 0.0
            for task in Path(f"/proc/{me}/task").glob("*/children"):
                for pid in task.read_text().split():
                    kids += _status_mb(pid, "VmRSS:") or 0.0
            self.helpers = max(self.helpers, kids)
            self.together = max(self.together, kids + (_status_mb(str(me), "VmRSS:") or 0.0))


def _status_mb(pid: str, key: str) -> float | None:
    """The ``key`` line (kB) of /proc/PID/status in MB; None where there is none."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def child(module: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python -m MODULE --child ARGS`` and read the JSON it prints last on stderr."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.run([sys.executable, "-m", module, "--child", *args], env=full_env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{module} child failed: {proc.stderr[-2000:]}")
    return dict(json.loads(proc.stderr.strip().splitlines()[-1]))


def print_rows(rows: Sequence[Row], title: str = "feedbackctl benchmarks") -> None:
    table = Table(title=title, title_justify="left")
    for col in ("section", "figure", "value (s)", "floor", "ratio", "target", "note"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r.section, r.name, r.show(r.seconds), r.show(r.floor), r.ratio, r.target, r.note)
    Console(width=170).print(table)
