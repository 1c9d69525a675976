"""Claim identity: a claim is followed by kind + ``metadata.name`` across file
moves, directory reorganisations, consolidation into (and splitting out of)
multi-document files, and a rename of ``metadata.name`` that keeps the values.

End to end through the CLI: a bot clone runs ``autotune --push`` under
memory pressure while a human reorganises the files in another clone and
pushes. Without identity, each reorganisation made the value "appear" at a
new path, read as a human choice: a new baseline (the 2x cap walks up with
it), a lifted flap freeze. Rules: docs/history.md ("Claim identity").
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.patterns.audit import verify
from tests.autotunefix import (
    DEV_CLAIM,
    PROD,
    PROD_CLAIM,
    PROD_PATH,
    T0,
    auto_trailers,
    autotune,
    decision,
    fresh_metrics,
    iso,
    ok_json,
    with_memory,
)
from tests.gitutil import RepoFactory, commit_files, git_out

WIDE = PROD_CLAIM.replace("max: 512    # Agent can adjust within this range", "max: 4096")
DEV_PATH = "claims/messagewall-dev.yaml"
CAP = 512  # 2x the human-set 256
GAP = timedelta(hours=4)  # past settling (2h) + the trigger window (30m) + the cooldown (1h)
RENAMED = "messagewall-production"


def _env(at: datetime) -> dict[str, str]:
    return {**os.environ, "GIT_AUTHOR_DATE": iso(at), "GIT_COMMITTER_DATE": iso(at)}


def _doc(text: str) -> str:
    """One claim's YAML document (from its ``---``), without the file's header comments."""
    return text[text.index("---") :]


def _claims_at(repo: Path, rev: str = "main") -> dict[str, tuple[str, int]]:
    """claim name -> (path, lambdaMemory) at ``rev``, wherever the claims live."""
    out: dict[str, tuple[str, int]] = {}
    for path in git_out(repo, "ls-tree", "-r", "--name-only", rev).splitlines():
        if not path.endswith(".yaml"):
            continue
        name = None
        for line in git_out(repo, "show", f"{rev}:{path}").splitlines():
            s = line.strip()
            if s.startswith("name:"):
                name = s.split(":", 1)[1].strip()
            elif s.startswith("lambdaMemory:") and name is not None:
                out[name] = (path, int(s.split(":", 1)[1].split("#", 1)[0]))
    return out


def _memory(repo: Path, claim: str = PROD) -> int:
    return _claims_at(repo)[claim][1]


def _tune(work: Path, origin: Path, tmp: Path, now: datetime, claim: str = PROD) -> Any:
    """One bot run against the remote: pressure at the claim's current memory, pushed."""
    memory = _memory(origin, claim)
    metrics = fresh_metrics(tmp / f"m-{int(now.timestamp())}", {claim: (memory, memory * 0.95)}, now)
    return ok_json(autotune(work, metrics, now, "--push"))


def _human(tmp: Path, origin: Path) -> Path:
    human = tmp / "human"
    if not human.exists():
        git_out(tmp, "clone", "-q", str(origin), str(human))
    git_out(human, "pull", "-q", "--ff-only", "origin", "main")
    return human


def _push(human: Path, at: datetime, message: str) -> None:
    git_out(human, "add", "-A", env=_env(at))
    git_out(human, "commit", "-q", "-m", message, env=_env(at))
    git_out(human, "push", "-q", "origin", "HEAD:main", env=_env(at))


def _git_mv(tmp: Path, origin: Path, at: datetime, dest: str) -> None:
    human = _human(tmp, origin)
    src = _claims_at(human)[PROD][0]
    (human / dest).parent.mkdir(parents=True, exist_ok=True)
    git_out(human, "mv", src, dest)
    _push(human, at, f"reorganise: {src} -> {dest}")


def _no_violations(origin: Path) -> None:
    result = verify(GitRepo.open(origin), None, None)
    assert result.commits >= 1
    assert result.violations == [] and not result.problems, (result.violations, result.problems)


def test_three_moves_to_new_directories_do_not_walk_the_cap_up(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    work, origin = repo_factory({PROD_PATH: WIDE}, date=iso(T0 - timedelta(days=40)))
    now = T0
    for n in range(3):
        for _ in range(2):
            _tune(work, origin, tmp_path, now)
            now += GAP
        _git_mv(tmp_path, origin, now, f"claims/team{n}/sub/messagewall-prod.yaml")
        now += timedelta(minutes=10)
    for _ in range(3):
        _tune(work, origin, tmp_path, now)
        now += GAP
    path, memory = _claims_at(origin)[PROD]
    assert path == "claims/team2/sub/messagewall-prod.yaml"
    # Read as human settings, the moves walked the cap up with them (1024 after three).
    assert memory == CAP, memory
    _no_violations(origin)


def test_consolidating_two_files_into_one_keeps_the_baseline(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    work, origin = repo_factory({PROD_PATH: WIDE, DEV_PATH: DEV_CLAIM}, date=iso(T0 - timedelta(days=40)))
    now = T0
    _tune(work, origin, tmp_path, now)
    now += GAP
    _tune(work, origin, tmp_path, now)
    assert _memory(origin) == CAP
    now += GAP
    human = _human(tmp_path, origin)
    both = _doc((human / DEV_PATH).read_text()) + _doc((human / PROD_PATH).read_text())
    (human / "claims" / "all.yaml").write_text(both)
    (human / PROD_PATH).unlink()
    (human / DEV_PATH).unlink()
    _push(human, now, "one file for the app")
    for _ in range(3):
        now += GAP
        _tune(work, origin, tmp_path, now)
    assert _claims_at(origin)[PROD] == ("claims/all.yaml", CAP)
    _no_violations(origin)


def test_splitting_a_multi_document_file_keeps_the_baseline(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    both = _doc(DEV_CLAIM) + _doc(WIDE)
    work, origin = repo_factory({"claims/all.yaml": both}, date=iso(T0 - timedelta(days=40)))
    now = T0
    _tune(work, origin, tmp_path, now)
    now += GAP
    _tune(work, origin, tmp_path, now)
    assert _memory(origin) == CAP
    now += GAP
    human = _human(tmp_path, origin)
    text = (human / "claims" / "all.yaml").read_text()
    dev, prod = text[: text.index("---", 3)], text[text.index("---", 3) :]
    (human / "claims" / "all.yaml").unlink()
    (human / "claims" / "dev").mkdir()
    (human / "claims" / "prod").mkdir()
    (human / "claims" / "dev" / "app.yaml").write_text(dev)
    (human / "claims" / "prod" / "app.yaml").write_text(prod)
    _push(human, now, "one file per environment")
    for _ in range(3):
        now += GAP
        _tune(work, origin, tmp_path, now)
    assert _claims_at(origin)[PROD] == ("claims/prod/app.yaml", CAP)
    _no_violations(origin)


def _rename(tmp: Path, origin: Path, at: datetime) -> None:
    human = _human(tmp, origin)
    path = human / _claims_at(human)[PROD][0]
    path.write_text(path.read_text().replace(f"name: {PROD}", f"name: {RENAMED}"))
    _push(human, at, f"rename {PROD} to {RENAMED}")


def test_a_rename_keeping_the_values_is_the_same_claim(repo_factory: RepoFactory, tmp_path: Path) -> None:
    work, origin = repo_factory({PROD_PATH: WIDE}, date=iso(T0 - timedelta(days=40)))
    now = T0
    _tune(work, origin, tmp_path, now)
    tuned = _memory(origin)
    assert tuned > 256
    # Renamed ten minutes after an auto-tune: the 60-minute cooldown carries over.
    _rename(tmp_path, origin, now + timedelta(minutes=10))
    data = _tune(work, origin, tmp_path, now + timedelta(minutes=20), RENAMED)
    assert _memory(origin, RENAMED) == tuned, decision(data, RENAMED)
    assert "cooldown" in str(decision(data, RENAMED)).lower()
    # And the baseline: the cap stays 2x the human's 256.
    now += GAP
    for _ in range(4):
        _tune(work, origin, tmp_path, now, RENAMED)
        now += GAP
    assert _memory(origin, RENAMED) == CAP
    assert PROD not in _claims_at(origin)
    _no_violations(origin)


def _frozen(repo_factory: RepoFactory, days_ago: int) -> tuple[Path, Path]:
    """Three alternating auto-tunes ``days_ago``: two reversals, a flap freeze at 384."""
    work, origin = repo_factory({PROD_PATH: WIDE}, date=iso(T0 - timedelta(days=days_ago + 10)))
    value = 256
    for i, new in enumerate((384, 256, 384)):
        at = T0 - timedelta(days=days_ago) + i * timedelta(hours=5)
        text = with_memory((work / PROD_PATH).read_text(), new)
        block = "\n".join(f"{k}: {v}" for k, v in auto_trailers(PROD, "lambdaMemory", value, new).items())
        commit_files(work, {PROD_PATH: text}, f"feedbackctl: auto-tune\n\n{block}\n", iso(at))
        value = new
    git_out(work, "push", "-q", "origin", "main")
    return work, origin


def test_a_move_does_not_lift_a_flap_freeze(repo_factory: RepoFactory, tmp_path: Path) -> None:
    for days_ago in (2, 20):  # inside the value window, and before it (found by the lift search)
        case = tmp_path / f"case{days_ago}"
        case.mkdir()
        work, origin = _frozen(repo_factory, days_ago)
        _git_mv(case, origin, T0 - timedelta(hours=6), "claims/prod/messagewall-prod.yaml")
        data = _tune(work, origin, case, T0)
        assert _memory(origin) == 384, decision(data)
        assert "flap" in str(decision(data)).lower()


def test_a_rename_does_not_lift_a_flap_freeze(repo_factory: RepoFactory, tmp_path: Path) -> None:
    # Renamed an hour ago (met by the value scan), and ten days ago (before it: the frozen
    # former name is followed forward to what it became).
    for renamed_ago in (timedelta(hours=1), timedelta(days=10)):
        case = tmp_path / f"case{int(renamed_ago.total_seconds())}"
        case.mkdir()
        work, origin = _frozen(repo_factory, 20)
        _rename(case, origin, T0 - renamed_ago)
        data = _tune(work, origin, case, T0, RENAMED)
        assert _memory(origin, RENAMED) == 384, decision(data, RENAMED)
        assert "flap" in str(decision(data, RENAMED)).lower()


def test_a_human_move_that_changes_the_value_is_a_human_setting(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    work, origin = repo_factory({PROD_PATH: WIDE}, date=iso(T0 - timedelta(days=40)))
    now = T0
    for _ in range(2):
        _tune(work, origin, tmp_path, now)
        now += GAP
    assert _memory(origin) == CAP
    human = _human(tmp_path, origin)
    dest = human / "claims" / "prod" / "messagewall-prod.yaml"
    dest.parent.mkdir()
    dest.write_text(with_memory((human / PROD_PATH).read_text(), 1024))
    (human / PROD_PATH).unlink()
    _push(human, now, "prod gets its own directory, at 1024")
    for _ in range(3):
        now += GAP
        _tune(work, origin, tmp_path, now)
    # 1024 is the human's: the cap is now 2048 (a baseline of 256 or 512 would hold it at 1024 at most).
    path, memory = _claims_at(origin)[PROD]
    assert path == "claims/prod/messagewall-prod.yaml"
    assert 1024 < memory <= 2048, memory
    _no_violations(origin)


def _app(name: str = "app-prod", memory: int = 256) -> str:
    return f"""\
apiVersion: x.demo/v1
kind: ServerlessEventAppClaim
metadata:
  name: {name}
spec:
  environment: prod
  lambdaMemory: {memory}
  lambdaTimeout: 30
  autoTune:
    enabled: true
    memoryBounds:
      min: 128
      max: 4096
    cooldownMinutes: 60
"""


def test_the_audit_replay_follows_moves_and_renames_as_autotune_does(repo_factory: RepoFactory) -> None:
    """Baselines and histories by identity agree between the audit's replay and autotune's reading."""
    from feedbackctl.authority.history import fill_baselines, load_histories
    from feedbackctl.authority.replay import Replay

    dev = _app("app-dev", 512).replace("prod", "dev")
    day = timedelta(days=1)
    t = T0 - 12 * day
    work, _ = repo_factory({"claims/app.yaml": _app(), "claims/dev.yaml": dev}, date=iso(t))

    def auto(name: str, path: str, old: int, new: int) -> None:
        text = (work / path).read_text().replace(f"lambdaMemory: {old}", f"lambdaMemory: {new}")
        block = "\n".join(f"{k}: {v}" for k, v in auto_trailers(name, "lambdaMemory", old, new).items())
        commit_files(work, {path: text}, f"feedbackctl: auto-tune\n\n{block}\n", iso(t))

    def human(files: dict[str, str | None], message: str) -> None:
        commit_files(work, files, message, iso(t))

    steps = [
        lambda: auto("app-prod", "claims/app.yaml", 256, 384),
        lambda: human({"claims/app.yaml": None, "claims/a/app.yaml": _app(memory=384)}, "move"),
        lambda: auto("app-prod", "claims/a/app.yaml", 384, 512),
        lambda: human({"claims/a/app.yaml": None, "claims/b/app.yaml": _app(memory=320)}, "move and set"),
        lambda: auto("app-prod", "claims/b/app.yaml", 320, 384),
        lambda: human({"claims/b/app.yaml": _app("app-production", 384)}, "rename"),
        lambda: auto("app-production", "claims/b/app.yaml", 384, 448),
        lambda: human(
            {
                "claims/b/app.yaml": None,
                "claims/dev.yaml": None,
                "claims/all.yaml": dev + "---\n" + _app("app-production", 448),
            },
            "consolidate",
        ),
        lambda: auto("app-production", "claims/all.yaml", 448, 512),
    ]
    for step in steps:
        t += day
        step()
    repo = GitRepo.open(work)
    replay = Replay(repo)
    compared = 0
    for c, parent, _after, _error in replay.walk(repo.resolve("main")):
        if parent is None or not c.changes:
            continue
        policy = parent.settings.policy
        histories = load_histories(repo, parent.commit, parent.claims, policy, c.at)
        expected = fill_baselines(repo, parent.commit, parent.claims, histories)
        got = replay.histories(parent.claims, policy, c.at)
        assert got.fields == expected.fields, c.sha
        assert sorted(got.fleet.recent, key=repr) == sorted(expected.fleet.recent, key=repr)
        compared += 1
    assert compared == 5
    # The human's 320 (set with a move) is the baseline; the rename and consolidation kept it.
    assert expected.for_claim("app-production")["lambdaMemory"].baseline == 320
    changes = expected.for_claim("app-production")["lambdaMemory"].changes
    assert [ch.new for ch in changes] == [256, 384, 512, 320, 384, 448]


def test_a_fleet_read_in_one_pass_follows_a_moved_claim(repo_factory: RepoFactory) -> None:
    """Past PER_FILE_PASSES files history is read in one unfiltered pass (and baselines widen it
    in one more): the moved claim is followed there too, inside and before the value span."""
    from feedbackctl.authority.claimwalks import PER_FILE_PASSES
    from feedbackctl.authority.history import fill_baselines, load_histories
    from feedbackctl.authority.snapshot import load_snapshot

    day = timedelta(days=1)
    names = [f"app{i}" for i in range(PER_FILE_PASSES + 1)]
    for moved_ago in (3 * day, 10 * day):
        t = T0 - 25 * day
        work, _ = repo_factory({f"claims/{n}.yaml": _app(n) for n in names}, date=iso(t))
        for old, new in ((256, 384), (384, 512)):
            t += 5 * day
            text = (
                (work / "claims/app0.yaml")
                .read_text()
                .replace(f"lambdaMemory: {old}", f"lambdaMemory: {new}")
            )
            block = "\n".join(f"{k}: {v}" for k, v in auto_trailers("app0", "lambdaMemory", old, new).items())
            commit_files(work, {"claims/app0.yaml": text}, f"feedbackctl: auto-tune\n\n{block}\n", iso(t))
        moved = (work / "claims/app0.yaml").read_text()
        commit_files(
            work, {"claims/app0.yaml": None, "claims/x/app0.yaml": moved}, "move", iso(T0 - moved_ago)
        )
        repo = GitRepo.open(work)
        snap = load_snapshot(repo, None)
        policy = snap.settings.policy
        h = load_histories(
            repo, snap.commit, snap.claims, policy, T0, value_claims=set(names), value_span=7 * day
        )
        h = fill_baselines(repo, snap.commit, snap.claims, h)
        memory = h.for_claim("app0")["lambdaMemory"]
        assert memory.baseline == 256, (moved_ago, memory)
        # The claim's creation, two auto-tunes; the move is none of them.
        assert [(ch.kind, ch.new) for ch in memory.changes] == [
            ("human", 256),
            ("auto-tune", 384),
            ("auto-tune", 512),
        ]
