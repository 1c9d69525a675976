"""An acknowledged MEDIUM proposal is applied by the next autotune run (issue 4's ack workflow)."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.clirun import ROOT, cli
from tests.gitutil import git_out, make_repo

EXAMPLE = ROOT / "examples" / "messagewall"
NOW = "2026-11-08T00:00:00Z"
LOW_CEILING = "limits:\n  autoApplyCeiling: LOW\n"


def test_acknowledged_medium_proposal_is_applied_by_autotune(tmp_path: Path) -> None:
    files = {f"claims/{p.name}": p.read_text() for p in (EXAMPLE / "claims").glob("*.yaml")}
    files["policies/feedback-rules.yaml"] = LOW_CEILING
    work, _ = make_repo(tmp_path, files, date="2026-10-01T00:00:00Z")
    metrics = tmp_path / "metrics"
    shutil.copytree(EXAMPLE / "metrics", metrics)
    common = ("--repo", str(work), "--now", NOW)

    first = cli("autotune", *common, "--metrics", str(metrics), "--output", "json")
    assert first.code == 0, first.stderr
    prod = next(
        d
        for d in first.json()["decisions"]
        if d["claim"] == "messagewall-prod" and d["field"] == "spec.lambdaMemory"
    )
    assert prod["outcome"] == "propose" and prod["blockedBy"] == ["risk-ceiling"]
    head = git_out(work, "rev-parse", "main")

    assert cli("propose", *common, "--metrics", str(metrics)).code == 0
    assert git_out(work, "rev-parse", "main") == head  # propose never touches the authority branch
    ack = cli("proposals", "ack", "messagewall-prod", "lambdaMemory", *common)
    assert ack.code == 0, ack.stderr

    second = cli("autotune", *common, "--metrics", str(metrics), "--output", "json")
    assert second.code == 0, second.stderr
    prod = next(
        d
        for d in second.json()["decisions"]
        if d["claim"] == "messagewall-prod" and d["field"] == "spec.lambdaMemory"
    )
    assert prod["outcome"] == "change" and "acknowledged" in " ".join(n["detail"] for n in prod["notes"])
    assert "lambdaMemory: 384" in git_out(work, "show", "main:claims/messagewall-prod.yaml")
    kinds = git_out(work, "log", "-1", "--format=%(trailers:key=Feedback-Kind,valueonly)", "main").strip()
    assert kinds == "auto-tune"


def test_unacknowledged_medium_proposal_is_not_applied(tmp_path: Path) -> None:
    files = {f"claims/{p.name}": p.read_text() for p in (EXAMPLE / "claims").glob("*.yaml")}
    files["policies/feedback-rules.yaml"] = LOW_CEILING
    work, _ = make_repo(tmp_path, files, date="2026-10-01T00:00:00Z")
    metrics = tmp_path / "metrics"
    shutil.copytree(EXAMPLE / "metrics", metrics)
    common = ("--repo", str(work), "--now", NOW, "--metrics", str(metrics))
    assert cli("propose", *common).code == 0
    head = git_out(work, "rev-parse", "main")
    assert cli("autotune", *common).code == 0
    assert git_out(work, "rev-parse", "main") == head
