"""Remembered history walks (authority/logcache.py) decide exactly as reading git afresh.

A generated year of history, then what ordinary git life adds on top: a
back-dated side branch of alternating auto-tunes (a flap freeze older than
the window) merged in, a human commit dated a year back, more auto-tunes and
human edits, and finally a rewritten tip. At every tip the histories read
with what earlier runs remembered must equal the ones read straight from git
(the cache bypassed), and the windowed autotune reading must too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bench.fleet import make_history_repo
from feedbackctl.authority import commits, logcache, logentries
from feedbackctl.authority.commits import read_commits
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.history import Histories, fill_baselines, load_histories, value_window
from feedbackctl.authority.snapshot import load_snapshot
from feedbackctl.core import flap
from feedbackctl.core.tuning import parse_autotune
from tests.autotunefix import auto_trailers, iso, with_memory
from tests.gitutil import commit_files, git_out

FIELDS = ("lambdaMemory", "lambdaTimeout")


def _forget() -> None:
    """A new process: nothing in memory, only what the git dir holds."""
    commits._EXACT.clear()
    logcache.forget()


def _read(repo: GitRepo, tip: str, now: datetime) -> tuple[Histories, Histories]:
    """The full reading and autotune's windowed one, both with baselines."""
    snap = load_snapshot(repo, "main", at=tip)
    policy, claims = snap.settings.policy, snap.claims
    tuned = [c for c in claims if parse_autotune(c).enabled]
    full = fill_baselines(repo, tip, tuned, load_histories(repo, tip, claims, policy, now))
    windowed = load_histories(
        repo, tip, claims, policy, now,
        value_claims={c.name for c in tuned}, value_span=value_window(policy, claims),
    )  # fmt: skip
    windowed = fill_baselines(repo, tip, tuned, windowed, wanted={(c.name, f) for c in tuned for f in FIELDS})
    return full, windowed


def _same(a: Histories, b: Histories) -> None:
    assert a.fields == b.fields
    assert a.fleet == b.fleet
    assert a.coverage == b.coverage
    assert a.window_since == b.window_since


@pytest.fixture
def uncached(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], Any]]:
    """A context that reads git afresh (the reference)."""
    from contextlib import contextmanager

    @contextmanager
    def bypass() -> Iterator[None]:
        with monkeypatch.context() as m:
            m.setattr(logcache, "serves", lambda *a: False)
            m.setattr(logcache, "load_values", lambda repo: {})
            m.setattr(logcache, "save_values", lambda repo, entries: None)
            _forget()
            yield
        _forget()

    yield bypass


def _env(at: datetime) -> dict[str, str]:
    return {**os.environ, "GIT_AUTHOR_DATE": iso(at), "GIT_COMMITTER_DATE": iso(at)}


def _flap_branch(work: Path, claim: str, path: str, start: datetime) -> tuple[str, str]:
    """A copy of ``claim`` and three alternating auto-tunes of it, dated ``start`` (long before the tip),
    on a side branch; nobody edits it since, so its flap freeze holds."""
    git_out(work, "checkout", "-q", "-b", "side")
    name, copy = f"{claim}-flap", str(Path(path).with_name("flapper.yaml"))
    text = (work / path).read_text().replace(claim, name)
    commit_files(work, {copy: text}, "Add a claim", iso(start - timedelta(hours=1)))
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("lambdaMemory:"))
    value = int(line.split(":")[1].split()[0])
    other = value + 128 if value < 3008 else value - 128
    for i, new in enumerate((other, value, other)):
        old = value if i % 2 == 0 else other
        block = "\n".join(f"{k}: {v}" for k, v in auto_trailers(name, "lambdaMemory", old, new).items())
        text = with_memory(text, new)
        message = f"feedbackctl: auto-tune\n\n{block}\n"
        commit_files(work, {copy: text}, message, iso(start + timedelta(hours=i)))
    git_out(work, "checkout", "-q", "main")
    return name, copy


def test_remembered_walks_decide_like_fresh_reads(
    tmp_path: Path, uncached: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    made = make_history_repo(tmp_path / "h", 3000, n_claims=60, seed=5)
    work = made.repo
    repo = GitRepo.open(work)
    end = datetime.fromtimestamp(made.now, UTC)
    now = end + timedelta(hours=1)
    snap = load_snapshot(repo, "main")
    tuned = [c for c in snap.claims if parse_autotune(c).enabled]
    flapper, human = tuned[0], tuned[1]
    fetched: list[tuple[str | None, str]] = []
    real_fetch = logcache._fetch

    def spy(repo: GitRepo, rev: str, path: str | None, **kw: Any) -> list[commits.Commit]:
        fetched.append((path, kw.get("base", "")))
        return real_fetch(repo, rev, path, **kw)

    monkeypatch.setattr(logcache, "_fetch", spy)

    def check(tip: str, *, extended: bool) -> tuple[Histories, Histories]:
        with uncached():
            expected = _read(repo, tip, now)
        fetched.clear()
        _forget()  # what a new cron run finds: the git dir's entries only
        got = _read(repo, tip, now)
        trailer_reads = [base for path, base in fetched if path is None]
        # Extended: the trailer walk read only the new commits; else all of it again.
        assert (trailer_reads and all(trailer_reads)) if extended else not any(trailer_reads)
        _same(got[0], expected[0])
        _same(got[1], expected[1])
        _forget()
        again = _read(repo, tip, now)  # the same tip again: everything remembered
        _same(again[0], expected[0])
        _same(again[1], expected[1])
        return expected

    tips = [git_out(work, "rev-parse", "HEAD")]
    check(tips[-1], extended=False)

    # A side branch dated 50 days back (a flap freeze older than the 30-day window), merged in.
    frozen_claim, _ = _flap_branch(work, flapper.name, flapper.path, end - timedelta(days=50))
    commit_files(work, {"README.md": "notes\n"}, "docs", iso(end + timedelta(minutes=1)))
    git_out(work, "merge", "-q", "--no-ff", "--no-edit", "side", env=_env(end + timedelta(minutes=2)))
    assert len(git_out(work, "rev-list", "--parents", "-1", "HEAD").split()) == 3
    tips.append(git_out(work, "rev-parse", "HEAD"))
    full, _ = check(tips[-1], extended=False)  # a merge since: read again
    frozen = full.fields[frozen_claim]["lambdaMemory"].changes
    assert flap.frozen_at(frozen, now, snap.settings.policy.limits) is not None

    # A laptop with a wrong clock, then ordinary single-parent commits: the walks are extended.
    commit_files(work, {"README.md": "notes 2\n"}, "docs", iso(end - timedelta(days=365)))
    tips.append(git_out(work, "rev-parse", "HEAD"))
    check(tips[-1], extended=True)
    text = with_memory((work / human.path).read_text(), 1024)
    commit_files(work, {human.path: text}, "Raise memory by hand", iso(end + timedelta(minutes=5)))
    text = (work / flapper.path).read_text()
    block = "\n".join(f"{k}: {v}" for k, v in auto_trailers(flapper.name, "lambdaTimeout", 10, 12).items())
    text = text.replace("lambdaTimeout:", "lambdaTimeout: 12 #", 1)
    commit_files(
        work, {flapper.path: text}, f"feedbackctl: auto-tune\n\n{block}\n", iso(end + timedelta(minutes=6))
    )
    tips.append(git_out(work, "rev-parse", "HEAD"))
    _, windowed = check(tips[-1], extended=True)
    assert windowed.fields[human.name]["lambdaMemory"].baseline == 1024

    # Rewritten history: the amended tip is no descendant of what was remembered.
    git_out(work, "commit", "-q", "--amend", "-m", "reworded", env=_env(end + timedelta(minutes=7)))
    tips.append(git_out(work, "rev-parse", "HEAD"))
    check(tips[-1], extended=False)

    # Back to an older tip (a branch reset): never the newer tip's walks.
    check(tips[1], extended=False)


def test_remembered_reads_match_git_for_every_limit(tmp_path: Path, uncached: Callable[[], Any]) -> None:
    made = make_history_repo(tmp_path / "h", 800, n_claims=10, seed=3)
    repo = GitRepo.open(made.repo)
    tip = git_out(made.repo, "rev-parse", "HEAD")
    old = git_out(made.repo, "rev-parse", "HEAD~40")
    path = load_snapshot(repo, "main").claims[0].path
    end = datetime.fromtimestamp(made.now, UTC)
    queries: list[dict[str, Any]] = [
        {"diffs": False, "trailers_only": True},
        {"diffs": False, "trailers_only": True, "since": end - timedelta(days=30)},
        {"diffs": False, "trailers_only": True, "until": end - timedelta(days=30)},
        {"paths": [path]},
        {"paths": [path], "max_count": 2},
        {"paths": [path], "until": end - timedelta(days=60), "max_count": 16, "skip": 2},
        {
            "paths": [path],
            "since": end - timedelta(days=200),
            "until": end - timedelta(days=20),
            "max_count": 5,
        },
        {"paths": [path], "skip": 10_000, "max_count": 3},
    ]
    with uncached():  # limits at a commit's own second: git keeps it on both sides
        trailer_at = read_commits(repo, tip, diffs=False, trailers_only=True)[5].at
        path_at = read_commits(repo, tip, paths=[path])[3].at
    queries += [
        {"diffs": False, "trailers_only": True, "since": trailer_at},
        {"diffs": False, "trailers_only": True, "until": trailer_at},
        {"paths": [path], "since": path_at, "max_count": 4},
        {"paths": [path], "until": path_at, "max_count": 1},
    ]
    for rev in (old, tip, old):
        with uncached():
            expected = [read_commits(repo, rev, **q) for q in queries]
        for _ in range(2):
            _forget()
            assert [read_commits(repo, rev, **q) for q in queries] == expected


def test_an_entry_that_does_not_validate_is_not_used(tmp_path: Path, uncached: Callable[[], Any]) -> None:
    made = make_history_repo(tmp_path / "h", 400, n_claims=10, seed=4)
    repo = GitRepo.open(made.repo)
    tip = git_out(made.repo, "rev-parse", "HEAD")
    with uncached():
        expected = read_commits(repo, tip, diffs=False, trailers_only=True)
    assert read_commits(repo, tip, diffs=False, trailers_only=True) == expected
    (entry,) = (made.repo / ".git" / "feedbackctl" / "logs").glob("*.json")
    text = entry.read_text()
    version = f'"version":{logcache.CACHE_VERSION}'
    assert version in text
    for bad in (text.replace(f'"{tip}"', '"x"', 1), text.replace(version, '"version":0'), "{not json"):
        entry.write_text(bad)
        _forget()
        assert read_commits(repo, tip, diffs=False, trailers_only=True) == expected


def test_decoding_refuses_every_shape_it_does_not_write(tmp_path: Path, uncached: Callable[[], Any]) -> None:
    """Each commit's shas, dates, texts, trailer groups and blobs are checked (most of them once
    per entry, all at once): an entry with any one of them wrong is not used."""
    made = make_history_repo(tmp_path / "h", 200, n_claims=5, seed=4)
    repo = GitRepo.open(made.repo)
    tip = git_out(made.repo, "rev-parse", "HEAD")
    path = load_snapshot(repo, "main").claims[0].path
    with uncached():
        trailers = read_commits(repo, tip, diffs=False, trailers_only=True)
        walked = read_commits(repo, tip, paths=[path])
    view = logcache._view(repo)
    merge = [tip, ["a" * 40, "b" * 64], 1_700_000_000, ["A", "a@x", "merge"], [], [[path, None, "c" * 40]],
             [[path, "c" * 40, "d" * 40, None]]]  # fmt: skip

    def doc(items: list[Any]) -> Any:
        raw = logentries.encode(logentries.Walk(tip, True, []), "k", view)
        return json.loads(json.dumps({**raw, "commits": items}))

    def refused(items: list[Any]) -> bool:
        try:
            logentries.decode(doc(items), "k", view)
        except (logentries._Invalid, ValueError, OSError):  # what reading an entry catches
            return True
        return False

    for listed in (trailers, walked):
        raw = doc(logentries.encode(logentries.Walk(tip, True, listed), "k", view)["commits"])
        assert logentries.decode(raw, "k", view).commits == listed
    (built,) = logentries.decode(doc([merge]), "k", view).commits
    assert built.merged == {path: (("d" * 40, None), "c" * 40)} and built.parents == ("a" * 40, "b" * 64)
    good = json.loads(json.dumps(logentries.encode(logentries.Walk(tip, True, trailers[:1]), "k", view)))
    first = good["commits"][0]
    assert first[4] and not refused([first, merge])
    bad: list[tuple[int, Any]] = [
        (0, "x" * 40), (0, tip[:39]), (0, tip.upper()), (0, 7), (1, [tip[:-1]]), (1, [None]), (1, tip),
        (2, True), (2, "1700000000"), (2, 10**20), (2, 10**12), (3, ["A", "a@x"]), (3, ["A", "a@x", 3]),
        (3, "A"), (4, [["Feedback-Kind", "auto-tune"]]), (4, [{"Feedback-Kind": 1}]), (4, {}),
        (5, [[path, None]]), (5, [[1, None, tip]]), (5, [[path, "nothex" * 8, None]]),
        (6, [[path, tip, None]]), (6, [[path, tip, "e" * 41, None]]), (6, [[None, tip, tip, tip]]),
    ]  # fmt: skip
    for at, value in bad:
        item = list(first if at < 5 else merge)
        item[at] = value
        assert refused([first, item]), (at, value)
    assert refused([first[:6]]) and refused([{"sha": tip}]) and refused(["x"])


def test_a_replace_ref_is_seen_at_once(tmp_path: Path, uncached: Callable[[], Any]) -> None:
    """``git replace`` changes what git walks from the same tip: what was remembered is not used."""
    made = make_history_repo(tmp_path / "h", 200, n_claims=5, seed=6)
    repo = GitRepo.open(made.repo)
    tip = git_out(made.repo, "rev-parse", "HEAD")
    before = read_commits(repo, tip, diffs=False, trailers_only=True)
    target = before[0].sha
    tree, parent = git_out(made.repo, "rev-parse", f"{target}^{{tree}}", f"{target}^").split()
    quiet = git_out(made.repo, "commit-tree", tree, "-p", parent, "-m", "no trailers here")
    git_out(made.repo, "replace", target, quiet)
    with uncached():
        expected = read_commits(repo, tip, diffs=False, trailers_only=True)
    assert [c.sha for c in expected] == [c.sha for c in before[1:]]
    _forget()
    assert read_commits(repo, tip, diffs=False, trailers_only=True) == expected


def test_remembered_clock_skew_never_calls_an_inexact_cut_exact(tmp_path: Path) -> None:
    """Per tip, the back-dated commits are remembered; where they may hide one, the walk decides."""
    made = make_history_repo(tmp_path / "h", 300, n_claims=5, seed=1)
    work, repo = made.repo, GitRepo.open(made.repo)
    end = datetime.fromtimestamp(made.now, UTC)
    tip = git_out(work, "rev-parse", "HEAD")
    git_out(work, "checkout", "-q", "-b", "side", "HEAD~30")
    commit_files(work, {"SIDE.md": "x\n"}, "side, dated back", iso(end - timedelta(days=200)))
    git_out(work, "checkout", "-q", "main")
    commit_files(work, {"README.md": "x\n"}, "docs, dated back", iso(end - timedelta(days=100)))
    linear = commit_files(work, {"README.md": "y\n"}, "docs", iso(end + timedelta(days=1)))
    git_out(work, "merge", "-q", "--no-ff", "--no-edit", "side", env=_env(end + timedelta(days=2)))
    merged = git_out(work, "rev-parse", "HEAD")
    for rev in (tip, linear, merged):  # cold, extended along a chain, read whole after a merge
        dates = sorted({int(x) for x in git_out(work, "log", "--format=%ct", rev).split()})
        for at in [*dates[::5], dates[-1], int((end - timedelta(days=150)).timestamp())]:
            _forget()
            fast = logcache.no_skew_at(repo, rev, at)
            since = datetime.fromtimestamp(at, UTC)
            with pytest.MonkeyPatch.context() as m:
                m.setattr(logcache, "no_skew_at", lambda *a: False)
                commits._EXACT.clear()
                walked = commits.cut_is_exact(repo, rev, since)
            assert walked or not fast, (rev, at)
            _forget()
            assert commits.cut_is_exact(repo, rev, since) == walked
    assert not logcache.no_skew_at(repo, merged, int((end - timedelta(days=50)).timestamp()))


def test_a_walk_moved_on_by_a_tail_reads_like_git(tmp_path: Path, uncached: Callable[[], Any]) -> None:
    """A run that found a few new commits writes them as a tail on the entry; what it reads back,
    path walks extended from the one chain log included, is what git prints, and a tail that does
    not extend the entry it sits beside is not used."""
    made = make_history_repo(tmp_path / "h", 300, n_claims=6, seed=8)
    work, repo = made.repo, GitRepo.open(made.repo)
    end = datetime.fromtimestamp(made.now, UTC)
    path = load_snapshot(repo, "main").claims[0].path
    queries: list[dict[str, Any]] = [
        {"diffs": False, "trailers_only": True},
        {"paths": [path]},
        {"paths": [path], "max_count": 3, "skip": 1},
        {"paths": ["claims"]},  # a directory: every file under it
        {"paths": ["claims/nothing-here.yaml"]},
    ]
    logs = work / ".git" / "feedbackctl" / "logs"

    def same(rev: str) -> None:
        with uncached():
            expected = [read_commits(repo, rev, **q) for q in queries]
        _forget()
        assert [read_commits(repo, rev, **q) for q in queries] == expected
        _forget()
        assert [read_commits(repo, rev, **q) for q in queries] == expected

    first = git_out(work, "rev-parse", "HEAD")
    same(first)
    assert not list(logs.glob("*-tail.json"))
    text = (work / path).read_text()
    block = "\n".join(f"{k}: {v}" for k, v in auto_trailers("x", "lambdaMemory", 128, 256).items())
    commit_files(work, {path: with_memory(text, 2048)}, "by hand", iso(end + timedelta(minutes=1)))
    message = f"feedbackctl: auto-tune\n\n{block}\n"
    commit_files(work, {"README.md": "x\n"}, message, iso(end + timedelta(minutes=2)))
    commit_files(work, {"claims/new/a.yaml": "x: 1\n"}, "a new file", iso(end + timedelta(minutes=3)))
    second = git_out(work, "rev-parse", "HEAD")
    same(second)
    tails = sorted(logs.glob("*-tail.json"))
    assert tails  # the walks gained commits: written as tails, their entries kept
    # A tail beside an entry it does not extend (the entry written again at an older tip).
    saved = {t: t.read_text() for t in tails}
    same(git_out(work, "rev-parse", "HEAD~10"))
    for t, body in saved.items():
        t.write_text(body)
    same(second)
    for t in tails:
        t.write_text("{not json")
    same(second)


def test_remembered_values_spare_the_parse_and_decide_the_same(
    tmp_path: Path, uncached: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claim-file versions parsed by one run are remembered by (path, blob); the next run reads
    none of them again and decides the same; an entry that does not validate is not used."""
    from feedbackctl.authority import claimvalues

    made = make_history_repo(tmp_path / "h", 600, n_claims=12, seed=9)
    repo = GitRepo.open(made.repo)
    tip = git_out(made.repo, "rev-parse", "HEAD")
    now = datetime.fromtimestamp(made.now, UTC) + timedelta(hours=1)
    with uncached():
        expected = _read(repo, tip, now)
    parsed: list[str] = []
    real = claimvalues.claim_values

    def counting(path: str, content: bytes) -> dict[str, dict[str, Any]]:
        parsed.append(path)
        return real(path, content)

    _forget()
    got = _read(repo, tip, now)
    _same(got[0], expected[0])
    _same(got[1], expected[1])
    stored = logcache._file(repo, logcache.VALUES)
    assert stored.exists()
    monkeypatch.setattr(claimvalues, "claim_values", counting)
    _forget()
    again = _read(repo, tip, now)
    assert parsed == []  # every version was remembered
    _same(again[0], expected[0])
    _same(again[1], expected[1])
    monkeypatch.undo()
    text = stored.read_text()
    assert '"lambdaMemory":' in text
    stored.write_text(text.replace('"lambdaMemory":', '"lambdaMemory":[1],', 1))
    assert logcache.load_values(repo) == {}
    _forget()
    broken = _read(repo, tip, now)
    _same(broken[0], expected[0])
    _same(broken[1], expected[1])
