"""``--shard i/n`` through the CLI: the shards of a run cover every claim exactly once.

The last test runs examples/cronjob/ the way Kubernetes would: each index of
the indexed Job gets its own clone and runs the manifest's own arguments.

One repo, a dozen claims (names chosen to spread over the shards, some with
characters git refuses in refs), and each command run once per shard as an
indexed Job would run it. The union of what the shards decided, proposed or
captured is every claim, and no claim is handled by two shards.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

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
    # Each of the N shards may make perRun/N changes a run (docs/autotune.md, sharding), and
    # the names hash 2/3/7 over 3 shards and 3/2/6/1 over the cronjob's 4: 24 leaves room for
    # every claim's one change either way.
    files["policies/feedback-rules.yaml"] = "limits:\n  rateLimit: {perRun: 24, per24h: 50}\n"
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


def test_autotune_shards_apply_every_claims_change_once(fleet: tuple[Path, Path]) -> None:
    work, metrics = fleet
    for i in range(N):
        data = run_json("autotune", "--repo", str(work), "--metrics", str(metrics), "--shard", f"{i}/{N}")
        mine = {n for n in NAMES if n in parse_shard(f"{i}/{N}")}
        assert {d["claim"] for d in data["decisions"]} == mine
    tunes = trailer_claims(work, "main")
    assert sorted(tunes) == sorted(NAMES)  # one auto-tune commit per claim, none twice
    assert git_out(work, "status", "--porcelain") == ""


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


# --- examples/cronjob: the indexed Job, run as Kubernetes would run it ------------------------------

CRONJOB = ROOT / "examples" / "cronjob"


def rendered_job() -> tuple[dict, dict]:
    """(the Job spec, the autotune container) from ``kubectl kustomize examples/cronjob``."""
    out = subprocess.run(["kubectl", "kustomize", str(CRONJOB)], capture_output=True, text=True, check=True)
    docs = [d for d in yaml.safe_load_all(out.stdout) if d]
    cronjob = next(d for d in docs if d["kind"] == "CronJob")
    job = cronjob["spec"]["jobTemplate"]["spec"]
    container = next(c for c in job["template"]["spec"]["containers"] if c["name"] == "autotune")
    return job, container


def expand(arg: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in args."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), arg)


def test_the_cronjob_is_an_indexed_job_with_one_shard_per_index() -> None:
    job, container = rendered_job()
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == job["parallelism"] == int(env["SHARDS"])
    assert container["command"] == ["feedbackctl"]
    assert container["args"][0] == "autotune" and "--push" in container["args"]
    assert "--shard=$(JOB_COMPLETION_INDEX)/$(SHARDS)" in container["args"]
    run_id = next(e for e in container["env"] if e["name"] == "FEEDBACKCTL_RUN_ID")
    assert run_id["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['batch.kubernetes.io/job-name']"
    assert job["template"]["spec"]["restartPolicy"] == "Never"


def test_the_cronjobs_shards_pushing_to_one_origin_tune_every_claim_once(
    fleet: tuple[Path, Path], tmp_path: Path
) -> None:
    work, metrics = fleet
    origin = tmp_path / "work-origin.git"
    job, container = rendered_job()
    shards = int(job["completions"])
    for index in range(shards):  # the pods of one Job, each with its own clone (the initContainer)
        clone = tmp_path / f"pod-{index}"
        git_out(tmp_path, "clone", "-q", str(origin), str(clone))
        env = {e["name"]: e.get("value") or "" for e in container["env"]}
        env["JOB_COMPLETION_INDEX"] = str(index)
        args = [expand(a, env) for a in container["args"]]
        args = [a.replace("--repo=/work/config", f"--repo={clone}") for a in args]
        args = [a.replace("--metrics=cloudwatch", f"--metrics={metrics}") for a in args]
        assert f"--shard={index}/{shards}" in args
        # The pods of one Job share its name, which the manifest hands over as the run id.
        r = cli(*args, "--now", NOW, env={"FEEDBACKCTL_RUN_ID": "feedbackctl-autotune-29384000"})
        assert r.code == 0, r.stderr
    assert sorted(trailer_claims(origin, "main")) == sorted(NAMES)
    runs = git_out(origin, "log", "main", "--format=%(trailers:key=Feedback-Run,valueonly)").split()
    assert runs == ["feedbackctl-autotune-29384000"] * len(NAMES)
    assert git_out(origin, "fsck", "--no-dangling") == ""
