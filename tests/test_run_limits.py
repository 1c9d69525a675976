"""The per-run limit is for the whole cron slot, and ``Feedback-Run`` says which slot a change is from.

Three ``autotune --shard i/3`` processes in one slot used to make 3x the
per-run limit, and ``audit verify`` then flagged the tool's own history. Here
the shards of one slot share ``FEEDBACKCTL_RUN_ID``: each takes its share,
the slot makes at most the limit, every automated commit names its run, and
the audit groups the per-run checks by that name (docs/autotune.md, docs/audit.md).
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.shard import parse_shard
from feedbackctl.authority.writer import Plan, trailer, write
from tests.clirun import ROOT, Result, cli
from tests.gitutil import git_out, make_repo

EXAMPLE = ROOT / "examples" / "messagewall"
PROD_CLAIM = (EXAMPLE / "claims" / "messagewall-prod.yaml").read_text()
NOW = "2026-11-08T00:00:00Z"
NAMES = [f"app-{i:02d}-{env}" for i in range(10) for env in ("dev", "prod")][:12]
LIMIT = 5  # perRun: fewer than the claims that want a change
SLOT = "feedbackctl-autotune-29384000"


def claim_text(name: str) -> str:
    return PROD_CLAIM.replace("name: messagewall-prod", f"name: {name}")


def fleet_files(per_run: int = LIMIT) -> dict[str, str]:
    files = {f"claims/{n}.yaml": claim_text(n) for n in NAMES}
    files["policies/feedback-rules.yaml"] = f"limits:\n  rateLimit: {{perRun: {per_run}, per24h: 50}}\n"
    return files


@pytest.fixture()
def fleet(tmp_path: Path) -> tuple[Path, Path]:
    """Twelve claims under the example's memory pressure: every one wants 256 -> 384."""
    work, _ = make_repo(tmp_path, fleet_files(), date="2026-10-01T00:00:00Z")
    metrics = tmp_path / "metrics"
    for n in NAMES:
        shutil.copytree(EXAMPLE / "metrics" / "messagewall-prod", metrics / n)
    return work, metrics


def autotune(work: Path, metrics: Path, *extra: str, run: str | None = None, now: str = NOW) -> Result:
    env = {"FEEDBACKCTL_RUN_ID": run} if run is not None else {}
    return cli(
        "autotune", "--repo", str(work), "--metrics", str(metrics), "--now", now, "--output", "json", *extra,
        env=env,
    )  # fmt: skip


def log_values(work: Path, key: str, rev: str = "main") -> list[str]:
    out = git_out(work, "log", rev, f"--format=%(trailers:key={key},valueonly)%x00")
    return [entry.strip() for entry in out.split("\0") if entry.strip()]


def audit(work: Path) -> tuple[int, list[dict[str, str]]]:
    r = cli("audit", "verify", "--repo", str(work), "--output", "json")
    assert r.code in (0, 3), r.stderr  # 3: violations
    return r.code, json.loads(r.stdout)["violations"]


def test_three_shards_of_one_slot_make_at_most_the_per_run_limit(fleet: tuple[Path, Path]) -> None:
    work, metrics = fleet
    applied = []
    for i in range(3):
        r = autotune(work, metrics, "--shard", f"{i}/3", run=SLOT)
        assert r.code == 0, r.stderr
        applied.append(len(r.json()["commits"]))
    wanted = [sum(n in parse_shard(f"{i}/3") for n in NAMES) for i in range(3)]
    assert wanted == [2, 3, 7]  # every claim wants a change: 12 in all
    assert applied == [2, 2, 1]  # floor(5/3) each, one more for the first 5 % 3 shards
    assert len(log_values(work, "Feedback-Claim")) == LIMIT
    assert log_values(work, "Feedback-Run") == [SLOT] * LIMIT
    assert audit(work) == (0, [])


def test_a_shard_beyond_its_share_says_so(fleet: tuple[Path, Path]) -> None:
    work, metrics = fleet
    r = autotune(work, metrics, "--shard", "2/3", run=SLOT)
    assert r.code == 0, r.stderr
    # Fields git alone settles (no autoTune bounds for them) are blocked by their own guard.
    held = [d for d in r.json()["decisions"] if d["status"] == "blocked" and "rate-limit" in d["blockedBy"]]
    assert len(held) == 6 and all(d["blockedBy"] == ["rate-limit"] for d in held), held
    assert "5 per run (1 for shard 2/3)" in held[0]["reason"]


def test_a_rerun_under_the_same_run_id_stays_inside_the_slots_limit(fleet: tuple[Path, Path]) -> None:
    work, metrics = fleet
    first = autotune(work, metrics, run=SLOT)
    assert len(first.json()["commits"]) == LIMIT
    later = (datetime(2026, 11, 8, tzinfo=UTC) + timedelta(minutes=2)).isoformat()
    again = autotune(work, metrics, run=SLOT, now=later)  # a retried Job: same name, same slot
    assert again.code == 0, again.stderr
    assert again.json()["commits"] == []
    reasons = {d["reason"] for d in again.json()["decisions"] if d["blockedBy"] == ["rate-limit"]}
    made = f"5 made by run {SLOT} already"
    assert reasons == {f"rate-limit: 5 auto-tunes in the last 24h (max 50), 5 per run, {made}"}
    other = autotune(work, metrics, run="feedbackctl-autotune-29384015", now=later)  # the next slot
    assert len(other.json()["commits"]) == LIMIT
    assert audit(work) == (0, [])


def test_two_runs_at_one_instant_are_two_runs(fleet: tuple[Path, Path]) -> None:
    """Grouping by date alone would call these one run of 2x the limit."""
    work, metrics = fleet
    for run in ("slot-a", "slot-b"):
        r = autotune(work, metrics, run=run)
        assert len(r.json()["commits"]) == LIMIT, r.stderr
    assert audit(work) == (0, [])


def forge_run(work: Path, run: str | None, count: int, start: datetime) -> list[str]:
    """``count`` auto-tunes a minute apart, written as the tool writes them, all naming ``run``."""
    repo = GitRepo.open(work)
    shas = []
    for i, name in enumerate(NAMES[:count]):
        head = repo.resolve("main")
        path = f"claims/{name}.yaml"
        text = (repo.read_file(head, path) or b"").decode()
        text = text.replace("lambdaMemory: 256", "lambdaMemory: 384", 1)
        change = trailer(
            "auto-tune", name, "lambdaMemory", old=256, new=384, source="metric-fixtures",
            rule="memory-pressure", risk="MEDIUM", run=run,
        )  # fmt: skip
        plan = Plan(f"feedbackctl: auto-tune {name}", trailers=[change], edits={path: text.encode()})
        shas.append(write(repo, "main", head, plan, start + timedelta(minutes=i)))
    return shas


def test_a_run_id_with_more_changes_than_the_limit_is_flagged(tmp_path: Path) -> None:
    work, _ = make_repo(tmp_path, fleet_files(per_run=3), date="2026-10-01T00:00:00Z", bare_origin=False)
    shas = forge_run(work, "forged-run", 8, datetime(2026, 11, 8, tzinfo=UTC))
    code, found = audit(work)
    assert code == 3
    flagged = [(v["commit"], v["rule"]) for v in found]
    assert flagged == [(sha, "rate-limit") for sha in shas[3:]]
    assert found[0]["detail"] == "change 4 of run forged-run; at most 3 per run"


def test_commits_without_a_run_id_keep_the_one_date_one_run_grouping(tmp_path: Path) -> None:
    work, _ = make_repo(tmp_path, fleet_files(per_run=3), date="2026-10-01T00:00:00Z", bare_origin=False)
    forge_run(work, None, 8, datetime(2026, 11, 8, tzinfo=UTC))  # older tool: a minute apart, eight runs
    assert audit(work) == (0, [])


def test_every_automated_commit_names_its_run(fleet: tuple[Path, Path], tmp_path: Path) -> None:
    work, metrics = fleet
    tuned = autotune(work, metrics, run=SLOT)
    assert tuned.code == 0, tuned.stderr
    assert all(c["trailers"]["Feedback-Run"] == SLOT for c in tuned.json()["commits"])
    live = tmp_path / "live.json"
    live.write_text(json.dumps({NAMES[0]: {"lambdaTimeout": 60}}))
    later = "2026-11-08T00:05:00Z"
    run = {"FEEDBACKCTL_RUN_ID": "drift-1"}
    drift = cli("drift", "--repo", str(work), "--live", str(live), "--now", later, env=run)
    assert drift.code == 0, drift.stderr
    reset = cli("reset", "--repo", str(work), "--field", "lambdaMemory", "--now", "2026-11-08T00:10:00Z")
    assert reset.code == 0, reset.stderr
    kinds = log_values(work, "Feedback-Kind")
    runs = log_values(work, "Feedback-Run")
    assert len(runs) == len(kinds) == 2 * LIMIT + 1  # resets, the capture, the auto-tunes
    assert runs[LIMIT] == "drift-1" and set(runs[LIMIT + 1 :]) == {SLOT}
    assert len(set(runs[:LIMIT])) == 1 and len(runs[0]) == 32  # no variable: one fresh id for the run


@pytest.mark.parametrize("bad", ["has space", "x" * 65, "semi;colon", "new\nline"])
def test_a_bad_run_id_is_a_usage_error_naming_the_variable(fleet: tuple[Path, Path], bad: str) -> None:
    work, metrics = fleet
    head = git_out(work, "rev-parse", "main")
    r = autotune(work, metrics, run=bad)
    assert r.code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("feedbackctl: FEEDBACKCTL_RUN_ID=")
    assert "Traceback" not in r.stderr
    assert git_out(work, "rev-parse", "main") == head
