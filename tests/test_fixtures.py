"""Metric fixtures, the embedded messagewall example, and the benchmark fleet generator."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from bench.fleet import DEFAULT_METRICS, fleet_claims, make_fleet, make_history_repo
from feedbackctl.core.models import Claim, Series
from feedbackctl.errors import UsageError
from feedbackctl.proc import run
from feedbackctl.sources import base, fixture_csv, fixtures
from feedbackctl.sources.base import MetricBatch, MetricRequest, open_source
from tests import kustomizefix

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "examples" / "messagewall"
CORPUS_CLAIMS = kustomizefix.CORPUS / "examples" / "claims"

T0 = 1793491200  # 2026-11-01T00:00:00Z
NOW = T0 + 86400
HEADER = "timestamp,value\n"


def at(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp())


def make_claim(name: str) -> Claim:
    return Claim(
        name=name,
        kind="ServerlessEventAppClaim",
        api_version="messagewall.demo/v1alpha1",
        spec={},
        path=f"claims/{name}.yaml",
    )


@pytest.fixture
def metrics_dir(tmp_path: Path) -> Path:
    root = tmp_path / "metrics"
    root.mkdir()
    return root


def write(root: Path, claim: str, metric: str, text: str | bytes) -> Path:
    path = root / claim / f"{metric}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def fetch(
    root: Path,
    claims: Sequence[str],
    metrics: Sequence[str],
    *,
    now: float = NOW,
    start: float = 0,
    end: float = 4e9,
) -> MetricBatch:
    source = open_source(str(root))
    requests = [MetricRequest(make_claim(c), tuple(metrics), start, end) for c in claims]
    return source.fetch(requests, now)


def one(root: Path, text: str | bytes, **kwargs: float) -> Series:
    write(root, "c", "m", text)
    batch = fetch(root, ["c"], ["m"], **kwargs)
    assert batch.problems == {}
    return batch.series["c"]["m"]


def problems(root: Path, text: str | bytes, **kwargs: float) -> list[str]:
    write(root, "c", "m", text)
    write(root, "c", "good", HEADER + f"{T0},1\n")
    batch = fetch(root, ["c"], ["m", "good"], **kwargs)
    assert "m" not in batch.series["c"]
    assert batch.series["c"]["good"].values.tolist() == [1.0]  # the claim's other metrics load
    return batch.problems["c"]


# -- formats ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("2026-11-01T00:00:00Z", T0),
        ("2026-11-01T00:00:00z", T0),
        ("2026-11-01T00:00:00.999Z", T0),  # fractional seconds are floored
        ("2026-11-01T00:00:00.123456789Z", T0),
        ("2026-11-01 00:00:00Z", T0),
        ("2026-11-01T02:00:00+02:00", T0),
        ("2026-10-31T18:30:00-05:30", T0),
        ("2026-11-01T02:00:00.5+02:00", T0),
        ("2026-11-01T02:00:00+0200", T0),  # basic-format offset, parsed one by one
        ("1793491200", T0),
        ("1793491200.75", T0),
        (" 1793491200 ", T0),
        ('"2026-11-01T00:00:00Z"', T0),
    ],
)
def test_each_timestamp_format(metrics_dir: Path, cell: str, expected: int) -> None:
    series = one(metrics_dir, f"{HEADER}{cell},42.5\n")
    assert series.ts.tolist() == [expected]
    assert series.values.tolist() == [42.5]
    assert series.ts.dtype == np.int64
    assert series.values.dtype == np.float64


def test_formats_mix_in_one_file(metrics_dir: Path) -> None:
    text = HEADER + "\n".join(
        [
            "2026-11-01T00:10:00Z,3",
            f"{T0 + 300},2",
            "2026-11-01T02:00:00+02:00,1",
            "2026-11-01T00:15:00.250+00:00,4",
            f"{T0 + 1200}.5,5",
        ]
    )
    series = one(metrics_dir, text)
    assert series.ts.tolist() == [T0, T0 + 300, T0 + 600, T0 + 900, T0 + 1200]
    assert series.values.tolist() == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("iso", [False, True])
def test_unsorted_and_duplicates_last_in_file_wins(metrics_dir: Path, iso: bool) -> None:
    def stamp(t: int) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if iso else str(t)

    rows = [(T0 + 600, 1), (T0, 2), (T0 + 600, 3), (T0 + 300, 4), (T0, 5), (T0 + 600, 6)]
    series = one(metrics_dir, HEADER + "".join(f"{stamp(t)},{v}\n" for t, v in rows))
    assert series.ts.tolist() == [T0, T0 + 300, T0 + 600]
    assert series.values.tolist() == [5, 4, 6]


def test_gaps_are_kept_as_gaps(metrics_dir: Path) -> None:
    stamps = [T0, T0 + 300, T0 + 7200, T0 + 7500]
    series = one(metrics_dir, HEADER + "".join(f"{t},7\n" for t in stamps))
    assert series.ts.tolist() == stamps


def test_window_is_inclusive_at_both_ends(metrics_dir: Path) -> None:
    text = HEADER + "".join(f"{T0 + 300 * i},{i}\n" for i in range(10))
    series = one(metrics_dir, text, start=T0 + 600, end=T0 + 1500)
    assert series.values.tolist() == [2, 3, 4, 5]


def test_windowing_happens_after_sorting(metrics_dir: Path) -> None:
    text = HEADER + f"{T0 + 900},3\n{T0},0\n{T0 + 600},2\n{T0 + 300},1\n{T0 + 600},9\n"
    series = one(metrics_dir, text, start=T0 + 300, end=T0 + 600)
    assert series.ts.tolist() == [T0 + 300, T0 + 600]
    assert series.values.tolist() == [1, 9]


def test_crlf_bom_blank_lines_and_spaced_header(metrics_dir: Path) -> None:
    text = b"\xef\xbb\xbf Timestamp , Value \r\n\r\n1793491200,1\r\n   \r\n1793491500,2\r\n\r\n"
    series = one(metrics_dir, text)
    assert series.ts.tolist() == [T0, T0 + 300]
    assert series.values.tolist() == [1, 2]


def test_header_only_file_is_an_empty_series(metrics_dir: Path) -> None:
    assert len(one(metrics_dir, "timestamp,value")) == 0


def test_points_after_now_are_left_out_with_one_warning_per_source(metrics_dir: Path) -> None:
    write(metrics_dir, "c", "m", HEADER + f"{NOW - 300},1\n{NOW},2\n{NOW + 1},3\n2026-11-03T00:00:00Z,4\n")
    write(metrics_dir, "d", "m", HEADER + f"{NOW + 600},5\n")
    batch = fetch(metrics_dir, ["c", "d"], ["m"])
    assert batch.problems == {}
    assert batch.series["c"]["m"].values.tolist() == [1, 2]
    assert len(batch.series["d"]["m"]) == 0
    assert batch.warnings == [
        f"{metrics_dir}: 3 points in 2 files after 2026-11-02T00:00:00Z left out (not yet known at that time)"
    ]


def test_no_warning_when_nothing_is_after_now(metrics_dir: Path) -> None:
    write(metrics_dir, "c", "m", HEADER + f"{NOW},1\n")
    assert fetch(metrics_dir, ["c"], ["m"]).warnings == []


# -- bad input --------------------------------------------------------------------


BAD_INPUTS = [
    (
        "time,value\n1,2\n",
        "1: header is 'time,value', expected 'timestamp,value'; fix the first line",
    ),
    (
        "timestamp;value\n1;2\n",
        "1: header is 'timestamp;value', expected 'timestamp,value'; fix the first line",
    ),
    (f"{HEADER}{T0},1\n{T0 + 300},abc\n", "3: value 'abc' is not a number; fix the row"),
    (f"{HEADER}{T0},\n", "2: value '' is not a number; fix the row"),
    (
        f"{HEADER}yesterday,1\n",
        "2: timestamp 'yesterday' is neither ISO-8601 nor epoch seconds; fix the row",
    ),
    (
        f"{HEADER}2026-13-01T00:00:00Z,1\n",
        "2: timestamp '2026-13-01T00:00:00Z' is neither ISO-8601 nor epoch seconds; fix the row",
    ),
    (
        f"{HEADER}2026-11-01T00:00:00,1\n",
        "2: timestamp '2026-11-01T00:00:00' has no timezone; add 'Z' or an offset such as '+00:00'",
    ),
    (f"{HEADER}nan,1\n", "2: timestamp 'nan' is neither ISO-8601 nor epoch seconds; fix the row"),
    (
        f"{HEADER}2026-11-01T00:00:00+02:00Z,1\n",
        "2: timestamp '2026-11-01T00:00:00+02:00Z' is neither ISO-8601 nor epoch seconds; fix the row",
    ),
    (
        f"{HEADER}1{'0' * 50},1\n",
        f"2: timestamp '1{'0' * 36}...' is after the year 5000 (epoch milliseconds? use seconds); "
        "fix the row",
    ),
    (f"{HEADER}{T0},nan\n", "2: value 'nan' is not a finite number; fix or drop the row"),
    (f"{HEADER}{T0},inf\n", "2: value 'inf' is not a finite number; fix or drop the row"),
    (f"{HEADER}{T0},-inf\n", "2: value '-inf' is not a finite number; fix or drop the row"),
    (f"{HEADER}{T0},-0.5\n", "2: value '-0.5' is negative and metrics never are; fix the row"),
    (
        f"{HEADER}{T0 * 1000},1\n",
        f"2: timestamp '{T0 * 1000}' is after the year 5000 (epoch milliseconds? use seconds); fix the row",
    ),
    (f"{HEADER}{T0}\n", "2: row has 1 field, expected 'timestamp,value'; fix the row"),
    (f"{HEADER}{T0},1,2\n", "2: row has 3 fields, expected 'timestamp,value'; fix the row"),
    (
        f"{HEADER}{T0},1\n\n{T0 + 300},x\n{T0 + 600},-1\n{T0 + 900},y\n",
        "4: value 'x' is not a number; fix the row (2 more bad rows in this file)",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_INPUTS)
def test_bad_input_names_file_line_and_fix(metrics_dir: Path, text: str, expected: str) -> None:
    assert problems(metrics_dir, text) == [f"{metrics_dir}/c/m.csv:{expected}"]


def test_empty_file(metrics_dir: Path) -> None:
    assert problems(metrics_dir, "") == [
        f"{metrics_dir}/c/m.csv: file is empty; add the header 'timestamp,value' and one row per point"
    ]


def test_message_uses_the_path_as_the_user_typed_it(
    metrics_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(metrics_dir.parent)
    write(metrics_dir, "messagewall-prod", "memory_utilization", f"{HEADER}{T0},1\n{T0},abc\n")
    source = open_source("metrics")
    request = MetricRequest(make_claim("messagewall-prod"), ("memory_utilization",), 0, 4e9)
    assert source.fetch([request], NOW).problems == {
        "messagewall-prod": [
            "metrics/messagewall-prod/memory_utilization.csv:3: value 'abc' is not a number; fix the row"
        ]
    }


def test_one_bad_file_does_not_hide_others_in_its_bulk_chunk(
    metrics_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Digits-only files take the loadtxt fast path together; a malformed one sends
    # its chunk down the string path, which must still load the good files.
    monkeypatch.setattr(fixture_csv, "CHUNK_ROWS", 10)
    names = [f"c{i}" for i in range(6)]
    for i, name in enumerate(names):
        write(metrics_dir, name, "m", HEADER + f"{T0},{i}\n{T0 + 300},{i}.5\n")
    write(metrics_dir, "c3", "m", HEADER + f"{T0},1\n{T0 + 300}\n")
    batch = fetch(metrics_dir, names, ["m"])
    assert batch.problems == {
        "c3": [f"{metrics_dir}/c3/m.csv:3: row has 1 field, expected 'timestamp,value'; fix the row"]
    }
    for i, name in enumerate(names):
        if name != "c3":
            assert batch.series[name]["m"].values.tolist() == [i, i + 0.5]


def test_fast_and_string_paths_agree(metrics_dir: Path) -> None:
    rng = np.random.default_rng(7)
    stamps = T0 + rng.permutation(500) * 60
    values = np.round(rng.random(500) * 100, 3)
    epoch = HEADER + "".join(f"{t},{v}\n" for t, v in zip(stamps, values, strict=True))
    iso = HEADER + "".join(
        f"{datetime.fromtimestamp(int(t), UTC).isoformat()},{v}\n"
        for t, v in zip(stamps, values, strict=True)
    )
    write(metrics_dir, "fast", "m", epoch)
    write(metrics_dir, "slow", "m", iso)
    batch = fetch(metrics_dir, ["fast", "slow"], ["m"])
    fast, slow = batch.series["fast"]["m"], batch.series["slow"]["m"]
    order = np.argsort(stamps)
    assert fast.ts.tolist() == slow.ts.tolist() == stamps[order].tolist()
    assert fast.values.tolist() == slow.values.tolist() == values[order].tolist()


def test_missing_claim_directory_and_missing_metric_file(metrics_dir: Path) -> None:
    write(metrics_dir, "present", "memory_utilization", HEADER + f"{T0},1\n")
    batch = fetch(metrics_dir, ["present", "absent"], ["memory_utilization", "errors"])
    assert batch.problems == {}
    assert batch.absent == {
        "absent": f"{metrics_dir}/absent: no metrics for claim; add {metrics_dir}/absent/<metric>.csv files"
    }
    assert set(batch.series["present"]) == {"memory_utilization"}  # no file, no series
    assert "absent" not in batch.series


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../outside", "contains a path separator (path traversal)"),
        ("..", "is a relative directory name (path traversal)"),
        (".", "is a relative directory name (path traversal)"),
        ("a/../../outside", "contains a path separator (path traversal)"),
        ("..\\outside", "contains a path separator (path traversal)"),
        ("", "is empty"),
    ],
)
def test_claim_names_that_would_escape_are_refused(metrics_dir: Path, name: str, why: str) -> None:
    write(metrics_dir.parent, "outside", "m", HEADER + f"{T0},1\n")
    write(metrics_dir, "fine", "m", HEADER + f"{T0},2\n")
    batch = fetch(metrics_dir, [name, "fine"], ["m"])
    assert batch.problems == {
        name: [
            f"claim name {name!r} {why}, so it cannot name a directory under '{metrics_dir}'; "
            "refusing to read metrics for it (rename the claim)"
        ]
    }
    assert list(batch.series) == ["fine"]


def test_metric_names_that_would_escape_are_refused(metrics_dir: Path) -> None:
    write(metrics_dir, "c", "m", HEADER + f"{T0},1\n")
    batch = fetch(metrics_dir, ["c"], ["../c/m", "m"])
    assert batch.problems == {
        "c": [
            "metric name '../c/m' contains a path separator (path traversal), "
            "so it cannot name a file; fix the rule"
        ]
    }
    assert list(batch.series["c"]) == ["m"]


def test_missing_metrics_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="metrics directory '.*nowhere' does not exist"):
        open_source(str(tmp_path / "nowhere"))
    (tmp_path / "file.csv").write_text(HEADER)
    with pytest.raises(UsageError, match="is not a directory"):
        open_source(str(tmp_path / "file.csv"))
    with pytest.raises(UsageError, match="--metrics is empty"):
        open_source(" ")


# -- registry ---------------------------------------------------------------------


class StubSource:
    name = "stub-metrics"

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def fetch(self, requests: Sequence[MetricRequest], now: float) -> MetricBatch:
        return MetricBatch()


def test_registry_opens_named_kinds_and_defaults_to_fixtures(
    metrics_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(base, "_factories", dict(base._factories))
    base.register("stub", StubSource)
    stub = open_source("stub:eu-west-1")
    assert isinstance(stub, StubSource) and stub.spec == "stub:eu-west-1"
    assert isinstance(open_source("stub"), StubSource)
    source = open_source(str(metrics_dir))
    assert isinstance(source, fixtures.FixtureSource)
    assert source.name == "metric-fixtures"
    assert isinstance(open_source(f"fixtures:{metrics_dir}"), fixtures.FixtureSource)


# -- the embedded example ---------------------------------------------------------

EXAMPLE_METRICS = (
    "memory_utilization",
    "used_memory_max",
    "duration_p99",
    "duration_p50",
    "errors",
    "throttles",
    "invocations",
    "cost_daily",
)


def example_batch() -> tuple[MetricBatch, int]:
    files = sorted((EXAMPLE / "metrics").glob("*/*.csv"))
    # The evaluation time is taken from the data, not hard-coded.
    end = max(at(f.read_text().strip().splitlines()[-1].split(",")[0]) for f in files)
    requests = [
        MetricRequest(make_claim(c), EXAMPLE_METRICS, 0, end) for c in ("messagewall-prod", "messagewall-dev")
    ]
    return open_source(str(EXAMPLE / "metrics")).fetch(requests, end), end


def test_example_has_every_metric_for_both_claims_and_loads_cleanly() -> None:
    batch, end = example_batch()
    assert batch.problems == {}
    assert end == at("2026-11-08T00:00:00+00:00")
    for claim in ("messagewall-prod", "messagewall-dev"):
        assert set(batch.series[claim]) == set(EXAMPLE_METRICS)
        utilization = batch.series[claim]["memory_utilization"]
        assert len(utilization) == 7 * 288 + 1
        assert set(np.diff(utilization.ts).tolist()) == {300}


def test_example_prod_is_under_sustained_memory_pressure() -> None:
    batch, end = example_batch()
    prod = batch.series["messagewall-prod"]
    last_30_min = prod["memory_utilization"].since(end - 30 * 60)
    assert len(last_30_min) == 7
    assert bool(np.all(last_30_min.values > 90))
    assert bool(np.all(prod["memory_utilization"].values > 90))  # at every point, not just lately
    spec = _spec("messagewall-prod")
    expected = prod["used_memory_max"].values / spec["lambdaMemory"] * 100
    assert np.allclose(prod["memory_utilization"].values, expected, atol=0.01)
    assert prod["duration_p99"].values.max() < spec["lambdaTimeout"] * 1000


def test_example_dev_is_idle_and_over_provisioned() -> None:
    batch, end = example_batch()
    dev = batch.series["messagewall-dev"]
    last_day = dev["memory_utilization"].since(end - 24 * 3600)
    assert len(last_day) == 289
    assert float(last_day.values.max()) < 40
    assert float(dev["errors"].values.sum()) == 0
    expected = dev["used_memory_max"].values / _spec("messagewall-dev")["lambdaMemory"] * 100
    assert np.allclose(dev["memory_utilization"].values, expected, atol=0.01)


def _spec(name: str) -> dict[str, Any]:
    docs = list(yaml.safe_load_all((EXAMPLE / "claims" / f"{name}.yaml").read_text()))
    spec: dict[str, Any] = docs[0]["spec"]
    return spec


def test_example_claims_keep_the_corpus_comments_and_carry_the_story() -> None:
    for name in ("messagewall-dev", "messagewall-prod"):
        original = (CORPUS_CLAIMS / f"{name}.yaml").read_text().splitlines()
        example = (EXAMPLE / "claims" / f"{name}.yaml").read_text().splitlines()
        changed = [line for line in original if line not in example]
        assert changed == (["  lambdaMemory: 128"] if name.endswith("dev") else [])
    assert _spec("messagewall-dev")["lambdaMemory"] == 512
    assert _spec("messagewall-prod")["autoTune"] == {
        "enabled": True,
        "memoryBounds": {"min": 128, "max": 512},
        "cooldownMinutes": 60,
        "trigger": {"metric": "memory_utilization", "threshold": 90, "sustainedMinutes": 30},
    }


def test_example_generator_reproduces_the_committed_files(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("messagewall_generate", EXAMPLE / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generate: Callable[[Path], list[Path]] = module.generate
    written = generate(tmp_path)
    assert len(written) == 16
    for path in written:
        committed = EXAMPLE / "metrics" / path.relative_to(tmp_path)
        assert path.read_bytes() == committed.read_bytes(), path


# -- benchmark fleets (git identity and config are pinned by conftest's git_env) ----


def git(repo: Path, *args: str) -> str:
    return run(["git", *args], cwd=repo).stdout.decode()


def test_fleet_writes_claims_metrics_and_a_valid_repo(tmp_path: Path) -> None:
    fleet = make_fleet(tmp_path, 20, points=12, step_seconds=300, files_per_claim=2)
    git(fleet.repo, "fsck", "--strict", "--no-progress")
    assert git(fleet.repo, "status", "--porcelain") == ""
    assert git(fleet.repo, "rev-list", "--count", "HEAD").strip() == "1"

    tracked = git(fleet.repo, "ls-files").split()
    assert len(tracked) == 40
    claims = []
    for path in tracked:
        assert path.startswith("claims/")
        text = (fleet.repo / path).read_text()
        docs = [d for d in yaml.safe_load_all(text) if d]
        if docs[0]["kind"] == "ServerlessEventAppClaim":
            assert text.count("#") >= 8  # comment-heavy, like the corpus
            claims.append(docs[0]["metadata"]["name"])
    assert sorted(claims) == sorted(fleet.claims)
    assert len(set(claims)) == 20

    batch = open_source(str(fleet.metrics)).fetch(
        [MetricRequest(make_claim(c), DEFAULT_METRICS, 0, fleet.now) for c in fleet.claims],
        fleet.now,
    )
    assert batch.problems == {}
    for claim in fleet.claims:
        for metric in DEFAULT_METRICS:
            series = batch.series[claim][metric]
            assert len(series) == 12
            assert int(series.ts[-1]) == fleet.now
            assert bool(np.all(series.values >= 0))


def test_fleet_claims_vary_and_about_a_tenth_auto_tune() -> None:
    claims = fleet_claims(2000)
    share = sum(c.auto_tune for c in claims) / len(claims)
    assert 0.07 < share < 0.13
    assert len({c.memory for c in claims}) >= 5
    assert len({c.timeout for c in claims}) >= 4
    assert {c.environment for c in claims} == {"dev", "staging", "prod"}
    assert len({c.name for c in claims}) == 2000


def test_history_repo_has_trailered_auto_tune_commits_over_a_year(tmp_path: Path) -> None:
    now = at("2026-11-08T00:00:00+00:00")
    history = make_history_repo(tmp_path, 60, feedback_fraction=0.3, n_claims=15, now=now)
    repo = history.repo
    git(repo, "fsck", "--strict", "--no-progress")
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "rev-list", "--count", "HEAD").strip() == "61"

    kinds = git(repo, "log", "--format=%(trailers:key=Feedback-Kind,valueonly,separator=)")
    assert kinds.split().count("auto-tune") == history.feedback_commits > 0
    dates = [int(d) for d in git(repo, "log", "--format=%ct").split()]
    assert max(dates) <= now
    assert min(dates[:-1]) >= now - 365 * 86400  # the initial commit comes a day earlier
    assert dates == sorted(dates, reverse=True)

    fmt = "|".join(
        ["%H"] + [f"%(trailers:key=Feedback-{k},valueonly,separator=)" for k in ("Claim", "From", "To")]
    )
    for line in git(repo, "log", "--format=" + fmt, "HEAD~60..HEAD").splitlines():
        sha, claim, old, new = line.split("|")
        diff = git(repo, "show", "--format=", "--unified=0", sha).splitlines()
        changed = [d for d in diff if d[:1] in "+-" and not d.startswith(("+++", "---"))]
        assert len(changed) == 2 and all("lambdaMemory:" in d for d in changed), changed
        if claim:
            assert f"/{claim}.yaml" in git(repo, "show", "--format=", "--name-only", sha)
            assert changed[0].startswith(f"-  lambdaMemory: {old}")
            assert changed[1].startswith(f"+  lambdaMemory: {new}")
            trailers = git(repo, "log", "-1", "--format=%(trailers:only,unfold)", sha)
            assert "Feedback-Field: spec.lambdaMemory" in trailers
            assert "Feedback-Source: " in trailers and "Feedback-Evidence: " in trailers
