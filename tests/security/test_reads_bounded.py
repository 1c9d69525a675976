"""Reads bounded before they happen: metric CSVs and git blobs.

A metric file symlinked to ``/dev/zero`` used to exhaust memory, one linked to
``/etc/passwd`` printed its first line in the error, and a 195 MB blob was read
whole before the 10 MB check. Now the file type and size are checked on the
open descriptor (metrics) or asked of git (``cat-file --batch-check``) first;
each refusal names the file and the other claim is still processed. Plus a
property over the CSV reader: any bytes give a series or one named problem.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.yamldoc import OversizedBlob
from feedbackctl.core.models import Series
from feedbackctl.sources.fixtures import MAX_METRIC_FILE_BYTES, FixtureSource
from tests.gitutil import git_out
from tests.security.hostile_world import DEV, PROD, World, check, make_world


@pytest.fixture()
def w(tmp_path: Path) -> World:
    return make_world(tmp_path)


def _replace(path: Path, make: Callable[[Path], None]) -> None:
    path.unlink()
    make(path)


def _sparse(path: Path) -> None:
    path.write_bytes(b"")
    os.truncate(path, MAX_METRIC_FILE_BYTES + 1)  # no disk used; st_size is over the cap


METRIC_FILES: dict[str, tuple[Callable[[Path], None], str]] = {
    "symlink-to-dev-zero": (lambda p: p.symlink_to("/dev/zero"), "is a symbolic link"),
    "symlink-to-etc-passwd": (lambda p: p.symlink_to("/etc/passwd"), "is a symbolic link"),
    "fifo": (lambda p: os.mkfifo(p), "is not a regular file"),
    "directory": (lambda p: p.mkdir(), "is not a regular file"),
    "sparse-over-the-cap": (_sparse, "is over the 64 MB limit"),
}


@pytest.mark.parametrize("make,why", METRIC_FILES.values(), ids=METRIC_FILES.keys())
def test_a_metric_file_that_is_not_a_small_regular_file_is_refused_for_its_claim(
    w: World, make: Callable[[Path], None], why: str
) -> None:
    csv = w.metrics / DEV / "memory_utilization.csv"
    _replace(csv, make)
    before = w.refs()
    r = w.run(*w.propose())
    check(
        w,
        r,
        code=1,
        line=lambda x: x.startswith("error: ") and f"{DEV}/memory_utilization.csv: {why}" in x,
        before=before,
        processed=(PROD,),
        not_in_output=("root:",),  # never a line of /etc/passwd
    )


def test_a_blob_over_the_limit_is_never_read_and_named(w: World) -> None:
    # 11 MB of one repeated line: git stores it compressed, the reader must not hold it.
    big = "kind: ServerlessEventAppClaim\nspec:\n" + "  # padding padding padding\n" * 420_000
    w.commit({"claims/big.yaml": big})
    before = w.refs()
    r = w.run(*w.propose())
    check(
        w,
        r,
        code=1,
        line=lambda x: x.startswith("error: claims/big.yaml: file is 11.") and "over the 10 MB limit" in x,
        before=before,
        processed=(PROD, DEV),
    )


def test_git_reports_a_big_blob_by_size_without_its_content(w: World) -> None:
    (w.work / "big.yaml").write_bytes(b"a: 1\n" * 2_200_000)
    blob = git_out(w.work, "hash-object", "-w", "big.yaml")
    small = git_out(w.work, "hash-object", "-w", str(w.live))
    got = GitRepo.open(w.work).read_blobs([blob, small])
    assert isinstance(got[blob], OversizedBlob) and got[blob].size == 11_000_000 and len(got[blob]) == 0
    assert got[small] == w.live.read_bytes()


# --- the CSV reader, any bytes in -----------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_any_csv_bytes_give_a_series_or_one_named_problem(tmp_path: Path, raw: bytes) -> None:
    from feedbackctl.core.models import Claim
    from feedbackctl.sources.base import MetricRequest

    folder = tmp_path / "m" / "app"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cpu.csv").write_bytes(raw)
    claim = Claim("app", "AppClaim", "x/v1", {}, "claims/app.yaml")
    batch = FixtureSource(tmp_path / "m").fetch([MetricRequest(claim, ("cpu",), 0.0, 2e9)], 2e9)
    problems = [p for ps in batch.problems.values() for p in ps]
    series = batch.series.get("app", {})
    assert all("m/app/cpu.csv" in p and "\n" not in p for p in problems), problems
    assert all(isinstance(s, Series) for s in series.values())
