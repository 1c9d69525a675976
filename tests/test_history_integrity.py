"""History integrity: ordinary git use (merges, back-dated commits, trailers
git reads its own way) cannot launder the loop's memory.

End to end through the CLI, with real repos and a bare origin where a human
works in an older clone: each case is replayed long enough to show the
runaway the old reading allowed, and ends inside the 2x cap and the cooldown.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from feedbackctl.authority.commits import cut_is_exact, read_commits
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.trailers import parse_trailers, stray_kinds
from feedbackctl.patterns.audit import verify
from tests.autotunefix import (
    PROD,
    PROD_CLAIM,
    PROD_PATH,
    T0,
    auto_trailers,
    autotune,
    fresh_metrics,
    iso,
    memory_of,
    ok_json,
    with_memory,
)
from tests.clirun import cli
from tests.gitutil import RepoFactory, commit_files, git_out

WIDE = PROD_CLAIM.replace("max: 512    # Agent can adjust within this range", "max: 4096")
CAP = 512  # 2x the human-set 256
GAP = timedelta(hours=4)  # past settling (2h) + the trigger window (30m) + the cooldown (1h)


def _env(at: datetime) -> dict[str, str]:
    return {**os.environ, "GIT_AUTHOR_DATE": iso(at), "GIT_COMMITTER_DATE": iso(at)}


def _pressure(metrics: Path, origin: Path, now: datetime) -> Path:
    memory = memory_of(origin)
    return fresh_metrics(metrics, {PROD: (memory, memory * 0.95)}, now)


def _tune(origin: Path, tmp: Path, now: datetime) -> None:
    ok_json(autotune(origin, _pressure(tmp / f"m-{int(now.timestamp())}", origin, now), now))


def _human_merge(old: Path, at: datetime, n: int) -> None:
    """A README edit in an older clone, ``git pull`` (a merge), pushed: ordinary git life."""
    (old / "README.md").write_text(f"notes {n}\n")
    git_out(old, "add", "README.md", env=_env(at))
    git_out(old, "commit", "-q", "-m", f"docs {n}", env=_env(at))
    git_out(old, "pull", "-q", "--no-rebase", "--no-edit", "origin", "main", env=_env(at))
    git_out(old, "push", "-q", "origin", "HEAD:main", env=_env(at))


def test_human_merges_from_an_older_clone_do_not_ratchet_past_the_cap(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    _, origin = repo_factory({PROD_PATH: WIDE}, date=iso(T0 - timedelta(days=40)))
    old = tmp_path / "old-clone"
    git_out(tmp_path, "clone", "-q", str(origin), str(old))
    now = T0
    for cycle in range(6):
        for _ in range(3):
            _tune(origin, tmp_path, now)
            now += GAP
        _human_merge(old, now, cycle)
        now += timedelta(minutes=10)
    # The first-parent reading took each merge for a human setting the value: 256 -> far past 512.
    assert memory_of(origin) <= CAP
    # With the cap reached nothing new is tuned, so later pulls have nothing to merge.
    assert int(git_out(origin, "rev-list", "--merges", "--count", "main")) >= 1
    result = verify(GitRepo.open(origin), None, None)
    assert result.commits >= 2, "audit sees the auto-tunes on the merges' second parents"
    assert result.violations == []


def test_a_back_dated_human_commit_hides_no_cooldown(repo_factory: RepoFactory, tmp_path: Path) -> None:
    claim = WIDE.replace("cooldownMinutes: 60", "cooldownMinutes: 1440")
    work, _ = repo_factory({PROD_PATH: claim}, date=iso(T0 - timedelta(days=40)))
    _tune(work, tmp_path, T0)
    assert memory_of(work) > 256
    tuned = memory_of(work)
    # A laptop with a wrong clock: a README commit dated a year back.
    commit_files(work, {"README.md": "x\n"}, "docs", iso(T0 - timedelta(days=365)))
    later = T0 + timedelta(hours=3)
    assert not cut_is_exact(GitRepo.open(work), git_out(work, "rev-parse", "HEAD"), T0 - timedelta(days=1))
    _tune(work, tmp_path, later)
    assert memory_of(work) == tuned, "a second step 3h into a 24h cooldown"


def test_a_back_dated_now_is_refused_with_exit_2(repo_factory: RepoFactory, tmp_path: Path) -> None:
    work, _ = repo_factory({PROD_PATH: WIDE}, date=iso(T0))
    metrics = _pressure(tmp_path / "m", work, T0 - timedelta(hours=1))
    before = git_out(work, "rev-parse", "HEAD")
    result = autotune(work, metrics, T0 - timedelta(hours=1))
    assert result.code == 2
    assert "before the branch tip" in result.stderr and "--now" in result.stderr
    assert "Traceback" not in result.stderr
    assert git_out(work, "rev-parse", "HEAD") == before
    # Within the 5-minute skew allowance it runs; --dry-run writes nothing, so is never refused.
    metrics = _pressure(tmp_path / "m2", work, T0 - timedelta(minutes=4))
    ok_json(autotune(work, metrics, T0 - timedelta(minutes=4)))
    early = _pressure(tmp_path / "m3", work, T0 - timedelta(hours=1))
    ok_json(autotune(work, early, T0 - timedelta(hours=1), "--dry-run"))


def _bot_commit(work: Path, at: datetime, old: int, new: int, message_tail: str) -> str:
    text = with_memory((work / PROD_PATH).read_text(), new)
    block = "\n".join(f"{k}: {v}" for k, v in auto_trailers(PROD, "lambdaMemory", old, new).items())
    return commit_files(
        work, {PROD_PATH: text}, f"feedbackctl: auto-tune\n\n{block}\n{message_tail}", iso(at)
    )


def test_trailers_mixed_with_signed_off_by_are_read_as_git_reads_them(repo_factory: RepoFactory) -> None:
    work, _ = repo_factory({PROD_PATH: WIDE}, date=iso(T0 - timedelta(days=2)))
    sha = _bot_commit(work, T0 - timedelta(days=1), 256, 384, "Signed-off-by: Bot <bot@example.com>\n")
    message = git_out(work, "log", "-1", "--format=%B", sha)
    assert parse_trailers(message)[0]["Feedback-To"] == "384"
    assert git_out(work, "log", "-1", "--format=%(trailers:key=Feedback-Claim,valueonly)", sha) == PROD
    [c] = [c for c in read_commits(GitRepo.open(work), "main") if c.sha == sha]
    assert c.changes and c.changes[0]["Feedback-Kind"] == "auto-tune"


def test_a_signed_off_paragraph_after_the_trailers_never_makes_the_value_human(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    work, _ = repo_factory({PROD_PATH: WIDE}, date=iso(T0 - timedelta(days=3)))
    # Two bot steps whose trailer block is followed by a Signed-off-by paragraph:
    # git reads only that paragraph as trailers.
    tail = "\nSigned-off-by: Bot <bot@example.com>\n"
    first = _bot_commit(work, T0 - timedelta(days=2), 256, 384, tail)
    assert stray_kinds(git_out(work, "log", "-1", "--format=%B", first)) == ["auto-tune"]
    _bot_commit(work, T0 - timedelta(days=1), 384, 512, tail)
    for i in range(4):
        _tune(work, tmp_path, T0 + i * GAP)
    # Taken for a human's 512, the baseline would allow 1024.
    assert memory_of(work) <= CAP
    rules = {v.rule for v in verify(GitRepo.open(work), None, None).violations}
    assert "trailer-misplaced" in rules


def test_reset_does_not_lift_a_flap_freeze_and_the_freeze_outlives_its_window(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    work, _ = repo_factory({PROD_PATH: WIDE}, date=iso(T0 - timedelta(days=60)))
    # Three alternating auto-tunes 50 days ago: two reversals, frozen.
    value = 256
    for i, new in enumerate((384, 256, 384)):
        at = T0 - timedelta(days=50) + i * timedelta(days=1)
        text = with_memory((work / PROD_PATH).read_text(), new)
        block = "\n".join(f"{k}: {v}" for k, v in auto_trailers(PROD, "lambdaMemory", value, new).items())
        commit_files(work, {PROD_PATH: text}, f"feedbackctl: auto-tune\n\n{block}\n", iso(at))
        value = new
    # 50 days on, the reversals are outside the 30-day window; pressure is high.
    data = ok_json(autotune(work, _pressure(tmp_path / "m", work, T0), T0))
    memory = next(d for d in data["decisions"] if d["claim"] == PROD and d["field"] == "spec.lambdaMemory")
    assert memory_of(work) == 384, memory
    assert "flap" in str(memory).lower()
    # unfreeze lifts it.
    out = cli("unfreeze", PROD, "lambdaMemory", "--repo", str(work), "--now", iso(T0 + timedelta(minutes=5)))
    assert out.code == 0, out.stderr


def test_a_clean_history_with_merges_passes_audit(repo_factory: RepoFactory, tmp_path: Path) -> None:
    _, origin = repo_factory({PROD_PATH: WIDE}, date=iso(T0 - timedelta(days=40)))
    old = tmp_path / "old-clone"
    git_out(tmp_path, "clone", "-q", str(origin), str(old))
    now = T0
    for cycle in range(2):
        _tune(origin, tmp_path, now)
        now += GAP
        _human_merge(old, now, cycle)
        now += GAP
    result = verify(GitRepo.open(origin), None, None)
    assert result.commits >= 1 and result.violations == [] and not result.problems


def _audited_forgery(work: Path, extra: list[tuple[str, str]], **kw: str) -> set[str]:
    """An auto-tune 256 -> 384 that also makes ``extra`` replacements in the claim file."""
    text = with_memory((work / PROD_PATH).read_text(), 384)
    for old, new in extra:
        assert old in text
        text = text.replace(old, new, 1)
    change = auto_trailers(PROD, "lambdaMemory", 256, 384, **kw)
    block = "\n".join(f"{k}: {v}" for k, v in change.items())
    commit_files(work, {PROD_PATH: text}, f"feedbackctl: auto-tune\n\n{block}\n", iso(T0))
    return {v.rule for v in verify(GitRepo.open(work), None, None).violations}


def test_audit_flags_an_auto_tune_that_touches_more_than_its_field(repo_factory: RepoFactory) -> None:
    nested = WIDE.replace("  eventSource:", "  concurrency:\n    reserved: 5\n  eventSource:")
    work, _ = repo_factory({PROD_PATH: nested}, date=iso(T0 - timedelta(days=2)))
    assert _audited_forgery(work, [("reserved: 5", "reserved: 50")]) == {"undeclared-change"}
    work2, _ = repo_factory({PROD_PATH: WIDE}, date=iso(T0 - timedelta(days=2)))
    baseline = '  annotations:\n    feedbackctl.io/baseline.lambdaMemory: "384"\n'
    assert _audited_forgery(work2, [("  annotations:\n", baseline)]) == {"undeclared-change"}
    work3, _ = repo_factory({PROD_PATH: WIDE}, date=iso(T0 - timedelta(days=2)))
    assert _audited_forgery(work3, []) == set()


def test_audit_flags_a_source_not_in_the_registry(repo_factory: RepoFactory) -> None:
    work, _ = repo_factory({PROD_PATH: WIDE}, date=iso(T0 - timedelta(days=2)))
    assert _audited_forgery(work, [], source="made-up-source") == {"trust"}


def test_a_merge_is_human_only_for_values_that_differ_from_every_parent(repo_factory: RepoFactory) -> None:
    from feedbackctl.authority.history import fill_baselines, load_histories
    from feedbackctl.authority.snapshot import load_snapshot

    work, _ = repo_factory({PROD_PATH: WIDE}, date=iso(T0 - timedelta(days=3)))
    base = git_out(work, "rev-parse", "HEAD")
    _bot_commit(work, T0 - timedelta(days=2), 256, 384, "")
    git_out(work, "checkout", "-q", "-b", "side", base)
    commit_files(work, {"README.md": "side\n"}, "docs", iso(T0 - timedelta(days=2)))
    git_out(work, "checkout", "-q", "main")
    at = T0 - timedelta(days=1)
    git_out(work, "merge", "-q", "--no-ff", "--no-edit", "side", env=_env(at))

    def baseline() -> object:
        repo = GitRepo.open(work)
        snap = load_snapshot(repo, None)
        claims = [c for c in snap.claims if c.name == PROD]
        h = load_histories(repo, snap.commit, claims, snap.settings.policy, T0)
        h = fill_baselines(repo, snap.commit, claims, h)
        return h.for_claim(PROD)["lambdaMemory"].baseline

    # The merge took 384 from its auto-tune parent: the human baseline is still 256.
    assert baseline() == 256
    # A merge that sets a value no parent had (a conflict resolved by hand) is the human's.
    git_out(work, "checkout", "-q", "-b", "side2", "HEAD~1")
    commit_files(work, {PROD_PATH: with_memory(WIDE, 320)}, "human edit", iso(at))
    git_out(work, "checkout", "-q", "main")
    proc = git_out(work, "merge", "-q", "--no-ff", "--no-edit", "-s", "ours", "side2", env=_env(at))
    del proc
    text = with_memory((work / PROD_PATH).read_text(), 300)
    (work / PROD_PATH).write_text(text)
    git_out(work, "commit", "-q", "-a", "--amend", "--no-edit", env=_env(at))
    assert baseline() == 300
