"""Staging validation end to end: ``autotune`` on real repos with a dev and a prod stage.

Prod is under memory pressure at 256 MB and wants 384. The validating claim
is messagewall-dev (paired by name); its values over time come from real
commits (a human edit found by value, auto-tune commits with trailers) and
its guardrails from its own metric fixtures.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from feedbackctl.cli import run
from tests.autotunefix import (
    DEV_CLAIM,
    PROD,
    PROD_CLAIM,
    PROD_PATH,
    T0,
    auto_trailers,
    decision,
    iso,
    memory_of,
    run_on,
    trailer_commit,
    with_memory,
)
from tests.clirun import cli
from tests.gitutil import RepoFactory, commit_files, git_out

DEV = "messagewall-dev"
DEV_PATH = "claims/messagewall-dev.yaml"
CONFIG = ".feedbackctl.yaml"
STAGES = "validation:\n  stages: [dev, prod]\n  soakMinutes: 1440\n"
DEV_OPTED_IN = DEV_CLAIM + (
    "\n  autoTune:\n    enabled: true\n    memoryBounds: {min: 128, max: 1024}\n"
    "    cooldownMinutes: 60\n"
)


def tune(capsys: pytest.CaptureFixture[str], repo: Path, metrics: Path, at: Any, *extra: str) -> Any:
    capsys.readouterr()
    argv = ["autotune", "--repo", str(repo), "--metrics", str(metrics), "--now", iso(at)]
    code = run([*argv, "--output", "json", *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def pressure(
    metrics: Path, *, dev_memory: float, dev_errors: float = 0.0, hours: float = 30, end: Any = T0
) -> Path:
    """Prod at 256 MB using 240 (memory pressure: wants 384); dev at ``dev_memory`` using 200 (calm)."""
    run_on(metrics, PROD, end - timedelta(hours=hours), end, memory=256, used=240, append=False)
    run_on(
        metrics,
        DEV,
        end - timedelta(hours=hours),
        end,
        memory=dev_memory,
        used=200,
        p99=200.0,
        errors=dev_errors,
        append=False,
    )
    return metrics


def two_stages(repo_factory: RepoFactory, dev: str = DEV_CLAIM, config: str = STAGES) -> Path:
    work, _ = repo_factory({CONFIG: config, DEV_PATH: with_memory(dev, 256), PROD_PATH: PROD_CLAIM})
    return work


def trailers(repo: Path, rev: str = "main") -> str:
    return git_out(repo, "log", "-1", "--format=%(trailers:only,unfold)", rev)


def test_prod_is_blocked_while_dev_runs_another_value(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = two_stages(repo_factory)
    metrics = pressure(tmp_path / "m", dev_memory=256)
    data = tune(capsys, work, metrics, T0)
    d = decision(data)
    assert d["status"] == "blocked" and d["blockedBy"] == ["staging-validation"]
    assert "messagewall-dev has not run lambdaMemory 384; it runs 256" in d["reason"]
    assert memory_of(work) == 256


def test_without_validation_configured_prod_applies_as_before(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = two_stages(repo_factory, config="claims:\n  paths: [claims]\n")
    data = tune(capsys, work, pressure(tmp_path / "m", dev_memory=256), T0)
    assert decision(data)["status"] == "applied"
    assert memory_of(work) == 384
    assert "Feedback-Validated-In" not in trailers(work)


def test_dev_set_by_a_human_then_prod_follows_after_the_soak(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = two_stages(repo_factory)
    # A human gives dev 384 MB 30 hours ago (no trailers: found by value).
    human = commit_files(
        work, {DEV_PATH: with_memory(DEV_CLAIM, 384)}, "dev: try 384", iso(T0 - timedelta(hours=30))
    )
    early_at = T0 - timedelta(hours=10)
    # 20 hours in, the soak is not over.
    early = tune(capsys, work, pressure(tmp_path / "early", dev_memory=384, end=early_at), early_at)
    d = decision(early)
    assert d["blockedBy"] == ["staging-validation"]
    assert "has run lambdaMemory 384 for 1200m" in d["reason"] and "1440m soak" in d["reason"]
    metrics = pressure(tmp_path / "m", dev_memory=384)
    # After the soak, with healthy dev guardrails, prod follows.
    data = tune(capsys, work, metrics, T0)
    d = decision(data)
    assert d["status"] == "applied", d["reason"]
    assert memory_of(work) == 384
    assert f"Feedback-Validated-In: {DEV}@{human}" in trailers(work)
    assert any(n["rule"] == "staging-validation" and n["effect"] == "info" for n in d["notes"])


def test_prod_is_blocked_when_dev_errors_were_bad_during_the_soak(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = two_stages(repo_factory)
    commit_files(work, {DEV_PATH: with_memory(DEV_CLAIM, 384)}, "dev: try 384", iso(T0 - timedelta(hours=30)))
    metrics = pressure(tmp_path / "m", dev_memory=384, dev_errors=12)
    d = decision(tune(capsys, work, metrics, T0))
    assert d["blockedBy"] == ["staging-validation"]
    assert "messagewall-dev ran lambdaMemory 384 but errors-healthy was bad during the soak" in d["reason"]
    assert memory_of(work) == 256


def test_dev_without_metrics_cannot_validate(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = two_stages(repo_factory)
    commit_files(work, {DEV_PATH: with_memory(DEV_CLAIM, 384)}, "dev: try 384", iso(T0 - timedelta(hours=30)))
    metrics = tmp_path / "m"
    run_on(metrics, PROD, T0 - timedelta(hours=30), T0, memory=256, used=240, append=False)
    data = tune(capsys, work, metrics, T0)
    d = decision(data)
    assert d["blockedBy"] == ["staging-validation"]
    assert "cannot be proven healthy over the soak" in d["reason"]


def test_promotion_through_an_opted_in_dev(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = two_stages(repo_factory, dev=DEV_OPTED_IN)
    first = T0 - timedelta(hours=26)
    metrics = pressure(tmp_path / "first", dev_memory=256, end=first)
    # Dev's own signals are calm; prod's pressure is promoted into dev first.
    data = tune(capsys, work, metrics, first)
    assert decision(data)["blockedBy"] == ["staging-validation"]
    dev = decision(data, claim=DEV)
    assert dev["status"] == "applied", dev["reason"]
    assert dev["rule"] == "memory-pressure" and dev["recommended"] == 384
    assert memory_of(work, path=DEV_PATH) == 384 and memory_of(work) == 256
    promoted = git_out(work, "rev-parse", "main")
    assert "promotion (fired): messagewall-prod wants spec.lambdaMemory 256 -> 384" in git_out(
        work, "log", "-1", "--format=%B"
    )
    # Dev now runs 384 (healthy); once the soak has passed, prod follows.
    metrics = pressure(tmp_path / "m", dev_memory=384)
    data = tune(capsys, work, metrics, T0)
    assert decision(data)["status"] == "applied", decision(data)["reason"]
    assert memory_of(work) == 384
    assert f"Feedback-Validated-In: {DEV}@{promoted}" in trailers(work)


def test_a_claim_with_no_validating_claim_is_a_clear_error(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work, _ = repo_factory({CONFIG: STAGES, PROD_PATH: PROD_CLAIM})
    metrics = pressure(tmp_path / "m", dev_memory=256)
    capsys.readouterr()
    code = run(["autotune", "--repo", str(work), "--metrics", str(metrics), "--now", iso(T0)])
    out = capsys.readouterr()
    text = out.out + out.err
    assert "messagewall-prod" in text and "no validating claim (messagewall-dev)" in text
    assert "spec.autoTune.validateIn" in text and "Traceback" not in text
    assert code != 0
    assert memory_of(work) == 256


def test_validate_in_overrides_the_pairing(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    canary = with_memory(DEV_CLAIM, 384).replace("name: messagewall-dev", "name: canary")
    prod = PROD_CLAIM.replace("    enabled: true\n", "    enabled: true\n    validateIn: canary\n")
    work, _ = repo_factory(
        {CONFIG: STAGES, DEV_PATH: with_memory(DEV_CLAIM, 256), PROD_PATH: prod, "claims/canary.yaml": canary}
    )
    metrics = pressure(tmp_path / "m", dev_memory=256)
    d = decision(tune(capsys, work, metrics, T0))
    assert d["blockedBy"] == ["staging-validation"]
    # The canary, not messagewall-dev (which runs 256), is the one judged.
    assert d["reason"].startswith("staging-validation: canary ran lambdaMemory 384 but errors-healthy")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("validation: {stages: [prod]}\n", "validation.stages: name at least two stages"),
        ("validation: {stages: [dev, prod], soakMinutes: soon}\n", "validation.soakMinutes"),
        ("validation: {stages: [dev, dev]}\n", "'dev' is listed twice"),
        ("validation: {stages: [dev, prod], soak: 5}\n", "validation.soak: unknown key"),
    ],
)
def test_a_bad_validation_block_names_the_file_and_key(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str], config: str, message: str
) -> None:
    work = two_stages(repo_factory, config=config)
    metrics = pressure(tmp_path / "m", dev_memory=256)
    capsys.readouterr()
    code = run(["autotune", "--repo", str(work), "--metrics", str(metrics), "--now", iso(T0)])
    err = capsys.readouterr().err
    assert code != 0 and ".feedbackctl.yaml" in err and message in err and "Traceback" not in err


# --- audit verify -----------------------------------------------------------------


def audit(repo: Path) -> Any:
    return cli("audit", "verify", "--repo", str(repo), "--output", "json")


def validated_in_violations(repo: Path) -> list[Any]:
    res = audit(repo)
    assert res.code in (0, 3), res.stderr
    return [v for v in res.json()["violations"] if v["rule"] == "validated-in"]


def test_audit_accepts_a_real_validated_in_and_flags_a_forged_one(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = two_stages(repo_factory)
    commit_files(work, {DEV_PATH: with_memory(DEV_CLAIM, 384)}, "dev: try 384", iso(T0 - timedelta(hours=30)))
    assert decision(tune(capsys, work, pressure(tmp_path / "m", dev_memory=384), T0))["status"] == "applied"
    assert validated_in_violations(work) == []
    assert audit(work).code == 0

    # Forged: dev ran 512 only two hours before a prod change that claims dev ran it for the soak.
    forged_work = two_stages(repo_factory)
    two_hours = commit_files(
        forged_work, {DEV_PATH: with_memory(DEV_CLAIM, 512)}, "dev: 512", iso(T0 - timedelta(hours=2))
    )
    group = {**auto_trailers(PROD, "lambdaMemory", 256, 384), "Feedback-Validated-In": f"{DEV}@{two_hours}"}
    trailer_commit(forged_work, {PROD_PATH: with_memory(PROD_CLAIM, 384)}, T0, [group])
    found = validated_in_violations(forged_work)
    assert len(found) == 1 and found[0]["claim"] == PROD
    assert f"{DEV} did not run lambdaMemory 384 at {two_hours[:10]} (it ran 512)" in found[0]["detail"]
    assert audit(forged_work).code == 3


def test_audit_flags_a_short_soak_and_a_missing_trailer(repo_factory: RepoFactory) -> None:
    work = two_stages(repo_factory)
    short = commit_files(
        work, {DEV_PATH: with_memory(DEV_CLAIM, 384)}, "dev: 384", iso(T0 - timedelta(hours=3))
    )
    base = auto_trailers(PROD, "lambdaMemory", 256, 384)
    trailer_commit(
        work,
        {PROD_PATH: with_memory(PROD_CLAIM, 384)},
        T0,
        [{**base, "Feedback-Validated-In": f"{DEV}@{short}"}],
    )
    trailer_commit(
        work,
        {PROD_PATH: with_memory(PROD_CLAIM, 256)},
        T0 + timedelta(hours=3),
        [{**base, "Feedback-From": "384", "Feedback-To": "256", "Feedback-Rule": "memory-idle"}],
    )
    found = [v["detail"] for v in validated_in_violations(work)]
    assert any("held lambdaMemory 384 for 180m" in f and "1440m soak" in f for f in found), found
    assert any("without Feedback-Validated-In (validating claim messagewall-dev)" in f for f in found), found


# --- propose and approve ------------------------------------------------------------

PROD_BRANCH = "feedback/messagewall-prod/lambdaMemory"
PROD_RECORD = "proposals/messagewall-prod/lambdaMemory.yaml"


def test_a_proposal_shows_the_validation_state_and_approval_records_it(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    # Prod's bounds stop at 256: the change needs a proposal.
    prod = PROD_CLAIM.replace("max: 512    # Agent", "max: 256    # Agent")
    work, _ = repo_factory({CONFIG: STAGES, DEV_PATH: with_memory(DEV_CLAIM, 256), PROD_PATH: prod})
    metrics = pressure(tmp_path / "m", dev_memory=256)
    res = cli("propose", "--repo", str(work), "--metrics", str(metrics), "--now", iso(T0), "--output", "json")
    assert res.code == 0, res.stderr
    doc = yaml.safe_load(git_out(work, "show", f"{PROD_BRANCH}:{PROD_RECORD}"))
    missing = (
        "staging validation: not validated in an earlier stage: "
        "messagewall-dev has not run lambdaMemory 384; it runs 256"
    )
    assert missing in doc["spec"]["rationale"]["summary"]
    assert missing in doc["status"]["riskRationale"]
    assert missing in git_out(work, "log", "-1", "--format=%B", PROD_BRANCH)
    # A human may approve it all the same; the approval says it was unvalidated.
    ok = cli(
        "proposals", "approve", PROD, "lambdaMemory", "--repo", str(work), "--now", iso(T0), "--beyond-bounds"
    )
    assert ok.code == 0, ok.stderr
    assert memory_of(work) == 384
    assert "Feedback-Tags: unvalidated" in trailers(work)
    assert validated_in_violations(work) == []  # a human's approval needs no Validated-In


def test_a_proposal_names_the_validating_evidence(repo_factory: RepoFactory, tmp_path: Path) -> None:
    prod = PROD_CLAIM.replace("max: 512    # Agent", "max: 256    # Agent")
    work, _ = repo_factory({CONFIG: STAGES, DEV_PATH: with_memory(DEV_CLAIM, 256), PROD_PATH: prod})
    human = commit_files(
        work, {DEV_PATH: with_memory(DEV_CLAIM, 384)}, "dev: try 384", iso(T0 - timedelta(hours=30))
    )
    git_out(work, "push", "-q", "origin", "HEAD")  # propose builds on the upstream
    metrics = pressure(tmp_path / "m", dev_memory=384)
    res = cli("propose", "--repo", str(work), "--metrics", str(metrics), "--now", iso(T0), "--output", "json")
    assert res.code == 0, res.stderr
    doc = yaml.safe_load(git_out(work, "show", f"{PROD_BRANCH}:{PROD_RECORD}"))
    validated = f"validated in {DEV}: ran lambdaMemory 384 for 1800m (soak 1440m, since {human[:8]})"
    assert f"staging validation: {validated}" in doc["spec"]["rationale"]["summary"]
    ok = cli(
        "proposals", "approve", PROD, "lambdaMemory", "--repo", str(work), "--now", iso(T0), "--beyond-bounds"
    )
    assert ok.code == 0, ok.stderr
    assert "unvalidated" not in trailers(work)


# --- drift ---------------------------------------------------------------------------


def test_drift_captures_in_prod_are_tagged_untested_when_dev_never_ran_the_value(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    work = two_stages(repo_factory)
    commit_files(work, {DEV_PATH: with_memory(DEV_CLAIM, 384)}, "dev: try 384", iso(T0 - timedelta(hours=30)))
    live = tmp_path / "live.yaml"
    # Prod's memory was raised to what dev runs; its timeout to a value dev never had; dev drifted too.
    live.write_text(
        yaml.safe_dump({PROD: {"lambdaMemory": 384, "lambdaTimeout": 60}, DEV: {"lambdaTimeout": 15}})
    )
    res = cli("drift", "--repo", str(work), "--live", str(live), "--now", iso(T0), "--output", "json")
    assert res.code == 0, res.stderr
    untested = {(d["claim"], d["field"]): d["untested"] for d in res.json()["drift"]}
    assert untested == {
        (PROD, "spec.lambdaTimeout"): True,
        (PROD, "spec.lambdaMemory"): False,
        (DEV, "spec.lambdaTimeout"): False,  # the first stage
    }
    log = git_out(work, "log", "--format=%(trailers:key=Feedback-Tags,valueonly,separator=)%x09%s", "main")
    assert any("untested" in line and "lambdaTimeout 30 -> 60" in line for line in log.splitlines()), log


# --- the corpus: plain claims and Kustomize overlays ------------------------------------

CORPUS_AUTOTUNE = """\
  autoTune:
    enabled: true
    memoryBounds: {min: 128, max: 512}
"""
AWS_OP = """      - op: replace
        path: /spec/awsAccountId
        value: "205074708100"
"""
DEV_EAST_384 = AWS_OP + """      - op: replace
        path: /spec/lambdaMemory
        value: 384
"""


def test_overlay_pairing_on_the_corpus_with_edits_where_values_are_set(
    repo_factory: RepoFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from feedbackctl.authority.gitrepo import GitRepo
    from feedbackctl.authority.snapshot import load_snapshot
    from feedbackctl.patterns.staging import stages_for
    from tests.kustomizefix import BASE, corpus_files, corpus_repo, overlay, render_all

    base = corpus_files()[BASE].replace("  eventSource:", CORPUS_AUTOTUNE + "  eventSource:")
    work = corpus_repo(repo_factory, {BASE: base, CONFIG: "validation: {stages: [dev, staging, prod]}\n"})
    stages = stages_for(load_snapshot(GitRepo.open(work), None), T0, opted_in_only=False)
    assert dict(stages.pairs) == {
        "messagewall-prod": "messagewall-dev",
        "messagewall-prod-east": "messagewall-dev-east",
        "messagewall-prod-west": "messagewall-dev-west",
    }
    # A human gives dev-east 384 in its own overlay, 30 hours ago.
    dev_east = corpus_files()[overlay("dev-east")]
    human = commit_files(
        work,
        {overlay("dev-east"): dev_east.replace(AWS_OP, DEV_EAST_384)},
        "dev-east: try 384",
        iso(T0 - timedelta(hours=30)),
    )
    metrics = tmp_path / "m"
    for name in ("messagewall-prod-east", "messagewall-prod-west"):
        run_on(metrics, name, T0 - timedelta(hours=30), T0, memory=256, used=240, append=False)
    calm = (("messagewall-dev-east", 384), ("messagewall-dev-west", 128), ("messagewall-dev", 128))
    for name, memory in (*calm, ("messagewall-prod", 256)):
        start = T0 - timedelta(hours=30)
        run_on(metrics, name, start, T0, memory=memory, used=memory * 0.6, p99=200, append=False)
    before = render_all(work)
    data = tune(capsys, work, metrics, T0)
    east = decision(data, claim="messagewall-prod-east")
    assert east["status"] == "applied", east["reason"]
    west = decision(data, claim="messagewall-prod-west")
    assert west["blockedBy"] == ["staging-validation"]
    assert "messagewall-dev-west has not run lambdaMemory 384; it runs 128" in west["reason"]
    # The edit landed where prod-east's value is set, and nowhere else.
    assert git_out(work, "diff", "--name-only", "HEAD~1", "HEAD") == overlay("prod-east")
    before["prod-east"][0]["spec"]["lambdaMemory"] = 384
    assert render_all(work) == before
    assert f"Feedback-Validated-In: messagewall-dev-east@{human}" in trailers(work)


# --- simulate: prod following dev ---------------------------------------------------------

SCENARIOS = Path(__file__).resolve().parents[1] / "examples" / "scenarios"


def simulated(name: str) -> dict[tuple[str, str], list[Any]]:
    res = cli("simulate", "--scenario", str(SCENARIOS / name), "--output", "json", "--no-chart")
    assert res.code == 0, res.stderr
    data = res.json()
    assert data["problems"] == []
    out: dict[tuple[str, str], list[Any]] = {}
    for e in data["timeline"]:
        out.setdefault((e["claim"], e["event"]), []).append(e)
    return out


def test_simulate_shows_prod_following_dev_after_the_soak_and_the_comparison_without() -> None:
    from datetime import datetime

    def at(e: Any) -> datetime:
        return datetime.fromisoformat(e["at"].replace("Z", "+00:00"))

    staged = simulated("staging")
    (dev,) = staged[("checkout-dev", "applied")]
    (prod,) = staged[("checkout-prod", "applied")]
    assert (dev["from"], dev["to"], prod["from"], prod["to"]) == (256, 384, 256, 384)
    (held,) = staged[("checkout-prod", "blocked")]
    assert held["blockedBy"] == ["staging-validation"] and at(held) == at(dev)
    assert "checkout-dev has not run lambdaMemory 384; it runs 256" in held["reason"]  # same step as dev
    # Prod follows at the first step after dev has run 384 for the 720-minute soak.
    assert at(prod) - at(dev) == timedelta(minutes=720)

    plain = simulated("staging-unvalidated")
    (dev_u,) = plain[("checkout-dev", "applied")]
    (prod_u,) = plain[("checkout-prod", "applied")]
    assert at(dev_u) == at(prod_u) == at(dev)
    assert ("checkout-prod", "blocked") not in plain


# --- the pure core: pairing and stretches -------------------------------------------------


def _claim(name: str, env: str, **autotune: object) -> Any:
    from feedbackctl.core.models import Claim

    spec: dict[str, object] = {"environment": env, "lambdaMemory": 256}
    if autotune:
        spec["autoTune"] = {"enabled": True, **autotune}
    return Claim(name, "ServerlessEventAppClaim", "v1", spec, f"{name}.yaml")


def test_pairing_prefers_the_nearest_earlier_stage_and_names_what_is_wrong() -> None:
    from feedbackctl.core.validation import Validation, pair
    from feedbackctl.errors import ClaimError

    v = Validation(("dev", "staging", "prod"), 60)
    claims = {c.name: c for c in (_claim("app-dev", "dev"), _claim("app-staging", "staging"))}
    prod = _claim("app-prod", "prod")
    assert pair(prod, claims, v) == "app-staging"
    assert pair(claims["app-staging"], claims, v) == "app-dev"
    assert pair(claims["app-dev"], claims, v) is None  # the first stage
    assert pair(prod, {"app-dev": claims["app-dev"]}, v) == "app-dev"  # no staging claim
    assert pair(prod, claims, None) is None  # no validation configured
    odd = _claim("prod-app-prod", "prod")
    both = {c.name: c for c in (_claim("staging-app-prod", "staging"), _claim("prod-app-staging", "staging"))}
    with pytest.raises(ClaimError, match="ambiguous validating claim"):
        pair(odd, both, v)
    with pytest.raises(ClaimError, match="has no 'prod' token"):
        pair(_claim("checkout", "prod"), claims, v)
    wrong = {"app-dev": _claim("app-dev", "prod")}
    with pytest.raises(ClaimError, match="has environment 'prod', expected dev"):
        pair(prod, wrong, v)
    with pytest.raises(ClaimError, match="validateIn: no claim named nope"):
        pair(_claim("app-prod", "prod", validateIn="nope"), claims, v)


def test_a_past_stretch_counts_and_one_that_began_before_the_history_read_cannot_be_named() -> None:
    from datetime import UTC, datetime

    from feedbackctl.core.models import FieldChange, FieldHistory
    from feedbackctl.core.validation import StageEvidence, assess, runs

    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    now = t0 + timedelta(days=4)
    changes = (
        FieldChange("a" * 40, t0 + timedelta(days=1), 256, 384, "human"),
        FieldChange("b" * 40, t0 + timedelta(days=3), 384, 512, "human"),
    )
    history = FieldHistory("app-dev", "lambdaMemory", changes)
    got = [(r.value, r.minutes, r.current) for r in runs(history, 512, t0, now)]
    assert got == [(256, 1440.0, False), (384, 2880.0, False), (512, 1440.0, True)]
    ev = StageEvidence("app-dev", {"lambdaMemory": 512}, {"lambdaMemory": history}, {}, t0, 1440)
    from dataclasses import replace

    from tests.corefix import policy

    no_guardrails = replace(policy(), guardrails=())  # the stretch alone is judged here
    # 384 ran for two days, then dev moved on: still validated, named by its own commit.
    assert assess(ev, "lambdaMemory", 384, no_guardrails, now).ref == f"app-dev@{'a' * 40}"
    # 256 ran from before the history read and ended: no commit shows it.
    verdict = assess(ev, "lambdaMemory", 256, no_guardrails, now)
    assert not verdict.validated and "from before the history read" in verdict.detail
