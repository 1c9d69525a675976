"""Proposals for rendered claims: a shared base value becomes an op in the claim's own overlay."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.clirun import cli
from tests.gitutil import RepoFactory, git_out
from tests.kustomizefix import (
    BASE,
    NOW,
    XRD,
    corpus_cli,
    corpus_files,
    corpus_repo,
    overlay,
    render_all,
    replace_in,
)

AUTOTUNE = """\
  autoTune:
    enabled: true
    memoryBounds: {min: 128, max: MEMORY_MAX}
    timeoutBounds: {min: 5, max: 60}
"""
DEV_EAST = "feedback/messagewall-dev-east/lambdaTimeout"


def corpus_with_autotune(repo_factory: RepoFactory, memory_max: int, xrd_max: int = 10240) -> Path:
    autotune = AUTOTUNE.replace("MEMORY_MAX", str(memory_max))
    base = corpus_files()[BASE].replace("  eventSource:", autotune + "  eventSource:")
    xrd = replace_in(XRD, "                  maximum: 10240\n", f"                  maximum: {xrd_max}\n")
    # The corpus's flat claims are not opted in, so they are proposed too: room for all.
    limits = "proposals:\n  maxOpen: 100\n  maxNewPerHour: 100\n"
    return corpus_repo(repo_factory, {BASE: base, XRD: xrd, ".feedbackctl.yaml": limits})


def proposals(work: Path, tmp_path: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    r = corpus_cli("propose", work, tmp_path)
    assert r.code == 0, r.stderr
    return {p["branch"]: p for p in r.json()["proposals"]}


def test_a_shared_value_is_proposed_as_an_op_in_the_claims_own_overlay(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    work = corpus_with_autotune(repo_factory, memory_max=512)  # prod memory auto-tunes: no proposal
    got = proposals(work, tmp_path)
    # One risk for one change: analyze rates the shared value a batch, and so do propose and the record.
    analyzed = cli("analyze", "--repo", str(work), "--metrics", str(tmp_path / "metrics"), "--now", NOW,
                   "--output", "json")  # fmt: skip
    assert analyzed.code == 0, analyzed.stderr
    risk = next(
        d["risk"]
        for d in analyzed.json()["decisions"]
        if d["claim"] == "messagewall-dev-east" and d["field"] == "spec.lambdaTimeout"
    )
    assert (got[DEV_EAST]["action"], got[DEV_EAST]["risk"]) == ("created", risk)
    record_path = f"{DEV_EAST}:proposals/messagewall-dev-east/lambdaTimeout.yaml"
    record = yaml.safe_load(git_out(work, "show", record_path))
    assert record["status"]["riskClass"] == risk
    assert record["spec"]["target"]["path"] == overlay("dev-east")  # the file the edit lands in
    assert git_out(work, "diff", "--name-only", "main", DEV_EAST).splitlines() == [
        overlay("dev-east"),
        "proposals/messagewall-dev-east/lambdaTimeout.yaml",
    ]
    diff = git_out(work, "diff", "-U0", "main", DEV_EAST, "--", overlay("dev-east")).splitlines()
    assert [ln for ln in diff if ln[:1] in "+-" and not ln.startswith(("+++", "---"))] == [
        "+      - op: replace",
        "+        path: /spec/lambdaTimeout",
        "+        value: 5",
    ]
    before = render_all(work)
    r = cli(
        "proposals", "approve", "messagewall-dev-east", "lambdaTimeout", "--repo", str(work), "--now", NOW
    )
    assert r.code == 0, r.stderr
    before["dev-east"][0]["spec"]["lambdaTimeout"] = 5
    assert render_all(work) == before  # dev-west still takes 10 from the base
    assert git_out(work, "diff", "--name-only", "HEAD~1", "HEAD") == overlay("dev-east")


def test_a_proposal_above_the_xrd_maximum_is_blocked_naming_the_rule(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    # prod-east is at its autoTune bound (256); usage asks for 384; the XRD allows 320.
    work = corpus_with_autotune(repo_factory, memory_max=256, xrd_max=320)
    got = proposals(work, tmp_path)["feedback/messagewall-prod-east/lambdaMemory"]
    assert got["action"] == "blocked"
    assert got["policyResult"] == (f"blocked: schema.maximum: maximum 320 (xrd {XRD}): 384 is above it")
    assert "feedback/messagewall-prod-east/lambdaMemory" not in git_out(work, "branch", "--list")
