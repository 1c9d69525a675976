"""``--shard i/n`` through the CLI: the shards of a run cover every claim exactly once.

One repo, a dozen claims (names chosen to spread over the shards, some with
characters git refuses in refs), and each command run once per shard as an
indexed Job would run it. The union of what the shards decided, proposed or
captured is every claim, and no claim is handled by two shards.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from feedbackctl.authority.shard import parse_shard
from tests.clirun import ROOT, Result, cli
from tests.gitutil import git_out, make_repo

EXAMPLE = ROOT / "examples" / "messagewall"
PROD_CLAIM = (EXAMPLE / "claims" / "messagewall-prod.yaml").read_text()
NOW = "2026-11-08T00:00:00Z"
NAMES = [f"app-{i:02d}-{env}" for i in range(10) for env in ("dev", "prod")][:12]
N = 3


def claim_text(name: str) -> str:
    return PROD_CLAIM.replace("name: messagewall-prod", f"name: {name}")


@pytest.fixture()
def fleet(tmp_path: Path) -> tuple[Path, Path]:
    files = {f"claims/{n}.yaml": claim_text(n) for n in NAMES}
    files[".feedbackctl.yaml"] = "proposals:\n  maxOpen: 100\n  maxNewPerHour: 100\n"
    work, _ = make_repo(tmp_path, files, date="2026-10-01T00:00:00Z")
    metrics = tmp_path / "metrics"
    for n in NAMES:  # every claim under the example's memory pressure
        shutil.copytree(EXAMPLE / "metrics" / "messagewall-prod", metrics / n)
    return work, metrics


def run_json(*args: str) -> dict:
    r: Result = cli(*args, "--now", NOW, "--output", "json")
    assert r.code == 0, f"{args}: exit {r.code}\n{r.stderr}"
    return dict(json.loads(r.stdout))


def trailer_claims(repo: Path, rev: str = "--all") -> list[str]:
    out = git_out(repo, "log", rev, "--format=%(trailers:key=Feedback-Claim,valueonly)")
    return [line for line in out.splitlines() if line]


def proposal_branches(repo: Path) -> list[str]:
    return git_out(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/feedback/").split()


def test_the_names_spread_over_every_shard() -> None:
    owners = Counter(next(i for i in range(N) if n in parse_shard(f"{i}/{N}")) for n in NAMES)
    assert set(owners) == set(range(N))  # else the tests below would prove little


def test_analyze_shards_decide_on_every_claim_once(fleet: tuple[Path, Path]) -> None:
    work, metrics = fleet
    seen: list[str] = []
    for i in range(N):
        data = run_json("analyze", "--repo", str(work), "--metrics", str(metrics), "--shard", f"{i}/{N}")
        seen += sorted({d["claim"] for d in data["decisions"]})
    assert sorted(seen) == sorted(NAMES)


def test_propose_shards_open_one_branch_per_claim(fleet: tuple[Path, Path]) -> None:
    work, metrics = fleet
    before = git_out(work, "rev-parse", "main")
    for i in range(N):
        run_json("propose", "--all", "--repo", str(work), "--metrics", str(metrics), "--shard", f"{i}/{N}")
    branches = proposal_branches(work)
    proposed = Counter(b.split("/")[1] for b in branches)
    assert set(proposed) == set(NAMES)
    assert Counter(trailer_claims(work)) == Counter(b.split("/")[1] for b in branches)
    assert git_out(work, "rev-parse", "main") == before  # proposals never touch the authority branch
    # A second pass over the shards finds every proposal already open: nothing new.
    for i in range(N):
        run_json("propose", "--all", "--repo", str(work), "--metrics", str(metrics), "--shard", f"{i}/{N}")
    assert proposal_branches(work) == branches


def test_drift_shards_capture_every_claim_once(fleet: tuple[Path, Path], tmp_path: Path) -> None:
    work, _ = fleet
    live = tmp_path / "live.json"
    live.write_text(json.dumps({n: {"lambdaTimeout": 60} for n in NAMES}))
    captured: list[str] = []
    for i in range(N):
        data = run_json("drift", "--repo", str(work), "--live", str(live), "--shard", f"{i}/{N}")
        mine = {n for n in NAMES if n in parse_shard(f"{i}/{N}")}
        assert {d["claim"] for d in data["drift"]} == mine  # other shards' live entries are theirs
        captured += [d["claim"] for d in data["drift"] if d["status"] == "captured"]
    assert sorted(captured) == sorted(NAMES)
    assert sorted(trailer_claims(work, "main")) == sorted(NAMES)
    assert git_out(work, "status", "--porcelain") == ""
    assert git_out(work, "fsck", "--no-dangling") == ""


def test_an_unknown_live_entry_is_reported_by_exactly_one_shard(
    fleet: tuple[Path, Path], tmp_path: Path
) -> None:
    work, _ = fleet
    live = tmp_path / "live.json"
    live.write_text(json.dumps({"no-such-claim": {"lambdaTimeout": 60}}))
    codes = []
    for i in range(N):
        r = cli("drift", "--repo", str(work), "--live", str(live), "--now", NOW, "--shard", f"{i}/{N}")
        codes.append(r.code)
        if r.code:
            assert "no-such-claim: the live state names a claim that is not in the repo" in r.stderr
    assert sorted(codes) == [0] * (N - 1) + [1]


def test_a_bad_shard_is_a_usage_error_on_every_command(fleet: tuple[Path, Path], tmp_path: Path) -> None:
    work, metrics = fleet
    live = tmp_path / "live.json"
    live.write_text("{}")
    for args in (
        ("analyze", "--metrics", str(metrics)),
        ("propose", "--metrics", str(metrics)),
        ("drift", "--live", str(live)),
    ):
        r = cli(*args, "--repo", str(work), "--now", NOW, "--shard", "3/3")
        assert r.code == 2, (args, r.stderr)
        assert "--shard '3/3' must be i/n with 0 <= i < n" in r.stderr
