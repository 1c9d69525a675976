"""analyze's answer cache: reused only on unchanged inputs, ignored when it does not validate."""

from __future__ import annotations

import json
import zlib
from dataclasses import replace
from pathlib import Path

import pytest

from feedbackctl.cli import run
from feedbackctl.core.models import Decision, Evidence, Note, Outcome
from feedbackctl.patterns import analyzecache
from feedbackctl.patterns.packed import PackedDecisions
from feedbackctl.sources.base import MetricsCost
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
    return repo / ".git" / "feedbackctl" / f"analyze-v{analyzecache.VERSION}.packed"


def read_cache(path: Path) -> str:
    """The cache as text: its head line, then a decision a line (the chunks decompressed)."""
    head, _, body = path.read_bytes().partition(b"\n")
    lines: list[str] = []
    for nbytes, _n in json.loads(head)["chunks"]:
        lines += zlib.decompress(body[:nbytes]).decode().split("\n")
        body = body[nbytes:]
    return "\n".join([head.decode(), *lines]) + "\n"


def write_cache(path: Path, text: str) -> None:
    """``read_cache`` undone: the lines after the head as one chunk, the head's count of it set."""
    head_line, *lines = text.removesuffix("\n").split("\n")
    data = zlib.compress("\n".join(lines).encode())
    try:
        head = json.loads(head_line)
        head["chunks"] = [[len(data), len(lines)]]
        head_line = json.dumps(head)
    except ValueError:
        pass  # a head that is not JSON stays as it is
    path.write_bytes(head_line.encode() + b"\n" + data)


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
    lines = read_cache(cache_file(work)).splitlines()
    assert len(lines) == 1 + len(json.loads(first)["decisions"])
    assert lines[1].partition("\t")[0] == json.dumps(json.loads(first)["decisions"][0])
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
        lambda text: text.replace('"reason": "', '"reason": "x', 1),  # disagrees with its notes
    ],
)
def test_a_damaged_cache_is_ignored(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: object
) -> None:
    work, metrics = setup(repo_factory, tmp_path)
    first = analyze(capsys, work, metrics)
    path = cache_file(work)
    key = json.loads(read_cache(path).splitlines()[0])["key"]
    assert callable(damage)
    write_cache(path, damage(read_cache(path)))
    assert analyze(capsys, work, metrics) == first
    assert json.loads(read_cache(path).splitlines()[0])["key"] == key  # rewritten whole


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-1],  # cut short
        lambda data: data + b"x",  # more than the head says
        lambda data: data[:-5] + bytes(b ^ 1 for b in data[-5:]),  # a chunk's bytes changed
    ],
)
def test_a_damaged_chunk_is_ignored(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: object
) -> None:
    work, metrics = setup(repo_factory, tmp_path)
    first = analyze(capsys, work, metrics)
    path = cache_file(work)
    good = path.read_bytes()
    assert callable(damage)
    path.write_bytes(damage(good))
    assert analyze(capsys, work, metrics) == first
    assert path.read_bytes() == good  # rewritten whole


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


def _decisions(n: int) -> list[Decision]:
    return [
        Decision(
            f"claim-{i}",
            "lambdaMemory",
            256 + i,
            Outcome.CHANGE if i % 3 == 0 else Outcome.HOLD,
            recommended=512 if i % 3 == 0 else None,
            confidence=0.5 + (i % 7) / 100,
            rule="memory-pressure" if i % 3 == 0 else None,
            source="metric-fixtures",
            evidence=(Evidence("memory_utilization", "min", 60, 12, 81.25 + i / 3, 80.0, unit="percent"),),
            notes=(Note("memory-pressure", "fired", f'held for 60m, claim {i} \u00e9\n"quoted"'),),
        )
        for i in range(n)
    ]


def test_packed_decisions_read_back_equal_in_any_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PackedDecisions, "CHUNK", 4)
    plain = _decisions(11)
    packed = PackedDecisions(plain[:5])
    packed.extend(plain[5:])
    assert len(packed) == 11
    assert list(packed) == plain
    assert [d.evidence[0].unit for d in packed] == ["percent"] * 11
    for start in range(12):
        for stop in range(start, 13):
            assert packed[start:stop] == plain[start:stop]
    assert packed[0] == plain[0] and packed[-1] == plain[-1] and packed[7] == plain[7]
    assert packed[::3] == plain[::3]
    with pytest.raises(IndexError):
        packed[11]


def test_a_decision_json_cannot_hold_is_kept_as_it_is_and_not_cached(tmp_path: Path) -> None:
    odd = replace(_decisions(1)[0], current=object())  # type: ignore[arg-type]
    packed = PackedDecisions([*_decisions(2), odd])
    assert packed[2] is odd and not packed.all_json
    answer = analyzecache.Answer(packed, [], [], MetricsCost())
    analyzecache.save(tmp_path, analyzecache.Key("k", racy=False), answer)
    assert not (tmp_path / "feedbackctl").exists()


def test_a_packed_report_slice_is_the_json_of_its_decisions(monkeypatch: pytest.MonkeyPatch) -> None:
    # The report writes packed decisions' texts as they are (patterns/packed.py): every shape
    # of reason, blocking note, evidence and unit must come out as decision_json's dump.
    from feedbackctl.render import decision_json

    monkeypatch.setattr(PackedDecisions, "CHUNK", 3)
    notes = [
        (),
        (Note("a", "info", "first"),),
        (Note("a", "info", "x"), Note("fit", "fired", "held"), Note("cap", "blocked", "capped")),
        (Note("cap", "blocked", "one"), Note("cool", "blocked", "two")),
        (Note("fit", "fired", "held"), Note("sizing", "shaped", "step")),
    ]
    evidence = [
        (),
        (Evidence("duration_p99", "max", 90, 3, 1234.5, None, unit="ms"),),
        (Evidence("m", "min", 60, 12, 0.8125, 0.8), Evidence("u", "max", 10080, 168, 300.0, unit="MB")),
    ]
    decisions = [
        replace(d, notes=notes[i % len(notes)], evidence=evidence[i % len(evidence)], risk="LOW")
        for i, d in enumerate(_decisions(16))
    ]
    packed = PackedDecisions(decisions)
    for start, stop in ((0, 16), (2, 7), (5, 6), (14, 40)):
        texts = packed.texts(start, stop)
        assert texts is not None
        assert texts == [json.dumps(decision_json(d)) for d in decisions[start:stop]]


def test_packed_decisions_with_one_kept_as_it_is_have_no_texts() -> None:
    odd = replace(_decisions(1)[0], current=object())  # type: ignore[arg-type]
    assert PackedDecisions([*_decisions(2), odd]).texts(0, 1) is None
