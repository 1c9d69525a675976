"""analyze's answer cache: reused only on unchanged inputs, ignored when it does not validate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from feedbackctl.cli import run
from feedbackctl.patterns import analyzecache
from tests.autotunefix import PROD_CLAIM, T0, fresh_metrics, iso
from tests.gitutil import RepoFactory, commit_files


def named(name: str) -> str:
    return PROD_CLAIM.replace("name: messagewall-prod", f"name: {name}")


@pytest.fixture(autouse=True)
def no_racy_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    # Files written a moment ago are "racy" (their stat cannot vouch for them yet); the
    # tests write and read within milliseconds, so they waive that wait.
    monkeypatch.setattr(analyzecache, "RACY_SECONDS", 0.0)


def analyze(capsys: pytest.CaptureFixture[str], repo: Path, metrics: Path, *extra: str) -> str:
    capsys.readouterr()
    code = run(
        [
            "analyze",
            "--repo",
            str(repo),
            "--metrics",
            str(metrics),
            "--now",
            iso(T0),
            "--output",
            "json",
            *extra,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def cache_file(repo: Path) -> Path:
    return repo / ".git" / "feedbackctl" / f"analyze-v{analyzecache.VERSION}.jsonl"


def setup(repo_factory: RepoFactory, tmp_path: Path) -> tuple[Path, Path]:
    work, _ = repo_factory({f"claims/app-{i}.yaml": named(f"app-{i}") for i in range(3)})
    metrics = fresh_metrics(
        tmp_path / "m", {"app-0": (256, 240), "app-1": (256, 200), "app-2": (512, 500)}, T0
    )
    return work, metrics


def test_a_rerun_on_the_same_inputs_gives_the_same_answer_from_the_cache(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work, metrics = setup(repo_factory, tmp_path)
    first = analyze(capsys, work, metrics)
    assert cache_file(work).exists()
    # Mark the cached answer: the re-run must come from it, and say exactly the same.
    lines = cache_file(work).read_text().splitlines()
    assert len(lines) == 1 + len(json.loads(first)["decisions"])
    assert analyze(capsys, work, metrics) == first


def test_a_changed_metric_file_commit_or_now_is_answered_anew(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work, metrics = setup(repo_factory, tmp_path)
    first = json.loads(analyze(capsys, work, metrics))
    before = {d["claim"]: d["outcome"] for d in first["decisions"] if d["field"] == "spec.lambdaMemory"}
    assert before["app-1"] != "change", before
    # app-1's memory is now under pressure: same size file, new content.
    fresh_metrics(metrics, {"app-1": (256, 241)}, T0)
    second = json.loads(analyze(capsys, work, metrics))
    now = {d["claim"]: d["outcome"] for d in second["decisions"] if d["field"] == "spec.lambdaMemory"}
    assert now["app-1"] == "change"
    # A new commit (a human edit) is a new answer too.
    edited = named("app-1").replace("lambdaMemory: 256", "lambdaMemory: 1024")
    commit_files(work, {"claims/app-1.yaml": edited}, "app-1: more memory", iso(T0))
    third = json.loads(analyze(capsys, work, metrics))
    assert next(d for d in third["decisions"] if d["claim"] == "app-1")["current"] == 1024


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: "not json\n" + text,
        lambda text: text.replace('"change"', '"explode"'),
        lambda text: text.rsplit("\n", 2)[0] + "\n",  # a decision short
        lambda text: text.replace('"app-0"', "17", 1),
    ],
)
def test_a_damaged_cache_is_ignored(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: object
) -> None:
    work, metrics = setup(repo_factory, tmp_path)
    first = analyze(capsys, work, metrics)
    path = cache_file(work)
    key = json.loads(path.read_text().splitlines()[0])["key"]
    assert callable(damage)
    path.write_text(damage(path.read_text()))
    assert analyze(capsys, work, metrics) == first
    assert json.loads(path.read_text().splitlines()[0])["key"] == key  # rewritten whole


def test_a_fresh_file_is_not_vouched_for(
    repo_factory: RepoFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(analyzecache, "RACY_SECONDS", 3600.0)
    work, metrics = setup(repo_factory, tmp_path)
    analyze(capsys, work, metrics)
    assert not cache_file(work).exists()
