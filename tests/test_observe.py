"""``feedbackctl observe``: outside agents' observations become recommendations, never auto-tune."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.clirun import ROOT, Result, cli
from tests.gitutil import RepoFactory, commit_files, git_out

PROD = (ROOT / "examples/messagewall/claims/messagewall-prod.yaml").read_text()  # autoTune bounds 128-512
DEV = (ROOT / "examples/messagewall/claims/messagewall-dev.yaml").read_text()
METRICS = ROOT / "examples/messagewall/metrics"
NOW = "2026-11-08T00:00:00Z"
SIDECAR = "claims/messagewall-prod.recommendation.yaml"

GOOD = {
    "source": "agent-observation",
    "agent": "capacity-planner",
    "claim": "messagewall-prod",
    "field": "lambdaMemory",
    "recommendedValue": 512,
    "confidence": 0.85,
    "evidence": [{"type": "metric", "period": "7d", "summary": "Average memory utilization 94%"}],
}


@pytest.fixture
def work(repo_factory: RepoFactory) -> Path:
    repo, _ = repo_factory(
        {"claims/messagewall-prod.yaml": PROD, "claims/messagewall-dev.yaml": DEV},
        date="2026-10-01T09:00:00Z",
    )
    return repo


def run(work: Path, *args: str, stdin: str | None = None, now: str = NOW) -> Result:
    argv = ["observe", "--repo", str(work), "--now", now, "--output", "json", *args]
    if stdin is None:
        return cli(*argv)
    proc = subprocess.run(
        [sys.executable, "-m", "feedbackctl", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"},
        check=False,
        timeout=120,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def write(tmp_path: Path, doc: object, name: str = "obs.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc) if name.endswith(".yaml") else json.dumps(doc))
    return str(path)


def head(work: Path) -> str:
    return git_out(work, "rev-parse", "HEAD")


def sidecar(work: Path) -> list[dict]:
    return yaml.safe_load((work / SIDECAR).read_text())["spec"]["recommendations"]


def test_an_observation_becomes_a_recommendation_attributed_to_the_agent(work: Path, tmp_path: Path) -> None:
    result = run(work, "--source", "agent-observation", write(tmp_path, GOOD))
    assert result.code == 0, result.stderr
    (d,) = result.json()["decisions"]
    assert (d["outcome"], d["current"], d["recommended"], d["confidence"]) == ("change", 256, 512, 0.85)
    assert d["source"] == "agent-observation" and d["risk"] == "MEDIUM"
    (entry,) = sidecar(work)
    assert entry["proposer"] == {
        "type": "agent",
        "id": "capacity-planner",
        "source": "agent-observation",
        "trustLevel": "medium",
        "confidence": 0.85,
    }
    assert (entry["currentValue"], entry["recommendedValue"], entry["status"]) == (256, 512, "pending-review")
    assert entry["evidence"][0]["summary"] == "Average memory utilization 94%"
    trailers = git_out(work, "log", "-1", "--format=%(trailers)")
    assert "Feedback-Kind: recommendation" in trailers
    assert "Feedback-Source: agent-observation" in trailers
    assert "Feedback-To: 512" in trailers and "capacity-planner" in trailers
    # Never auto-tune: the claim is untouched, and the work tree follows the branch.
    assert (work / "claims/messagewall-prod.yaml").read_text() == PROD
    assert git_out(work, "status", "--porcelain") == ""


def test_json_on_stdin_with_several_observations(work: Path) -> None:
    batch = {
        "source": "agent-observation",
        "observations": [
            {**GOOD, "agent": "a1"},
            {**GOOD, "agent": "a1", "claim": "messagewall-dev", "field": "spec.lambdaTimeout",
             "recommendedValue": 5, "evidence": "p99 under 1 s all week"},
        ],
    }  # fmt: skip
    result = run(work, "--source", "agent-observation", "-", stdin=json.dumps(batch))
    assert result.code == 0, result.stderr
    assert [d["claim"] for d in result.json()["decisions"]] == ["messagewall-prod", "messagewall-dev"]
    assert git_out(work, "log", "-1", "--format=%s") == "feedbackctl: 2 agent recommendations from a1"
    assert (work / "claims/messagewall-dev.recommendation.yaml").exists()


def test_analyze_write_keeps_agent_entries_and_accept_picks_by_proposer(work: Path, tmp_path: Path) -> None:
    assert run(work, "--source", "agent-observation", write(tmp_path, GOOD)).code == 0
    analyzed = cli("analyze", "--repo", str(work), "--metrics", str(METRICS), "--now", NOW, "--write")
    assert analyzed.code == 0, analyzed.stderr
    entries = sidecar(work)
    assert sorted((e["recommendedValue"], "proposer" in e) for e in entries) == [(384, False), (512, True)]
    git_out(work, "push", "-q")  # shared: accept goes to origin and this checkout follows

    accepted = cli("recommendations", "accept", "messagewall-prod", "lambdaMemory", "--repo", str(work),
                   "--now", NOW, "--proposer", "capacity-planner")  # fmt: skip
    assert accepted.code == 0, accepted.stderr
    assert "lambdaMemory: 512" in (work / "claims/messagewall-prod.yaml").read_text()
    statuses = {e.get("proposer", {}).get("id"): e["status"] for e in sidecar(work)}
    assert statuses == {"capacity-planner": "accepted", None: "pending-review"}


def test_two_agents_on_one_field_need_a_proposer_to_accept(work: Path, tmp_path: Path) -> None:
    two = {"observations": [{**GOOD, "agent": "a1"}, {**GOOD, "agent": "a2", "recommendedValue": 384}]}
    assert run(work, "--source", "agent-observation", write(tmp_path, two)).code == 0
    before = head(work)
    result = cli("recommendations", "dismiss", "messagewall-prod", "lambdaMemory", "--repo", str(work))
    assert result.code == 2
    assert "2 agents recommend lambdaMemory of messagewall-prod (a1, a2); pass --proposer ID" in result.stderr
    assert head(work) == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"claim": "nope"}, "claim 'nope' not found at main"),
        ({"field": "eventSource"}, "field 'eventSource' is not a tunable field"),
        (
            {"recommendedValue": 1024},
            "outside the human-written spec.autoTune bounds of messagewall-prod (128-512)",
        ),
        ({"recommendedValue": 64}, "outside the limits of lambdaMemory (128-10240MB)"),
        ({"recommendedValue": 256}, "recommends the current value 256"),
        ({"recommendedValue": "512"}, "recommendedValue must be a finite number"),
        ({"confidence": 1.5}, "confidence must be a number from 0 to 1"),
        ({"evidence": []}, "evidence is missing"),
        ({"evidence": [{"period": "7d"}]}, "evidence needs a summary"),
        ({"currentValue": 128}, "the agent saw spec.lambdaMemory = 128 but messagewall-prod has 256"),
        ({"source": "someone-else"}, "source is 'someone-else' but --source is 'agent-observation'"),
        ({"rationale": "x"}, "unknown key 'rationale'"),
    ],
)
def test_a_bad_observation_is_rejected_and_nothing_is_written(
    work: Path, tmp_path: Path, change: dict, message: str
) -> None:
    before = head(work)
    batch = [{**GOOD, "agent": "first", "claim": "messagewall-dev", "field": "lambdaTimeout",
              "recommendedValue": 5}, {**GOOD, **change}]  # fmt: skip
    result = run(work, "--source", "agent-observation", write(tmp_path, batch))
    assert result.code == 2, result.stdout
    assert "rejected, nothing written" in result.stderr and "observation 2" in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert head(work) == before and not (work / "claims/messagewall-dev.recommendation.yaml").exists()


def test_the_source_must_be_registered_and_of_type_push(work: Path, tmp_path: Path) -> None:
    path = write(tmp_path, {k: v for k, v in GOOD.items() if k != "source"})
    unknown = run(work, "--source", "rogue-agent", path)
    assert unknown.code == 2 and "source 'rogue-agent' is not registered" in unknown.stderr
    pull = run(work, "--source", "cloudwatch-metrics", path)
    assert pull.code == 2 and "is a pull source; observe takes push sources" in pull.stderr
    malformed = run(work, "--source", "agent-observation", "-", stdin="claim: [unclosed")
    assert malformed.code == 2 and "stdin" in malformed.stderr and "Traceback" not in malformed.stderr


def test_a_repo_registered_low_trust_agent_is_recorded_with_its_trust(work: Path, tmp_path: Path) -> None:
    sources = "feedbackSources:\n  - {name: chatops-bot, type: push, trustLevel: low, cooldown: 2h}\n"
    commit_files(work, {"policies/sources.yaml": sources}, "Register chatops-bot")
    obs = {k: v for k, v in GOOD.items() if k not in ("source", "agent")}
    result = run(work, "--source", "chatops-bot", write(tmp_path, obs))
    assert result.code == 0, result.stderr
    (entry,) = sidecar(work)
    assert entry["proposer"]["id"] == "chatops-bot" and entry["proposer"]["trustLevel"] == "low"


def test_the_source_cooldown_holds_back_a_second_observation(work: Path, tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    assert run(work, "--source", "agent-observation", path).code == 0
    after_first = head(work)
    again = {**GOOD, "recommendedValue": 384}
    soon = run(work, "--source", "agent-observation", write(tmp_path, again, "again.yaml"),
               now="2026-11-08T00:10:00Z")  # fmt: skip
    assert soon.code == 0
    (d,) = soon.json()["decisions"]
    assert d["outcome"] == "blocked" and d["blockedBy"] == ["source-cooldown"]
    assert "acted on messagewall-prod 10m ago; its cooldown is 30m" in d["reason"]
    assert head(work) == after_first
    later = run(work, "--source", "agent-observation", write(tmp_path, again, "again.yaml"),
                now="2026-11-08T00:31:00Z")  # fmt: skip
    assert later.json()["decisions"][0]["outcome"] == "change"
    assert [e["recommendedValue"] for e in sidecar(work)] == [384]  # the agent's entry replaced


def test_dry_run_writes_nothing(work: Path, tmp_path: Path) -> None:
    before = head(work)
    result = run(work, "--source", "agent-observation", "--dry-run", write(tmp_path, GOOD))
    assert result.code == 0
    assert result.json()["commits"][0]["sha"] == "(dry-run)"
    assert head(work) == before
