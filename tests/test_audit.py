"""``audit verify``: forged feedback commits are caught; real auto-tune history passes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.history import fill_baselines, load_histories
from feedbackctl.authority.snapshot import load_snapshot
from feedbackctl.authority.writer import Plan, Staging, trailer, write
from feedbackctl.core.decide import ClaimInputs
from feedbackctl.core.fleet import run as autotune_fleet
from feedbackctl.core.models import Claim, Outcome, Series
from feedbackctl.patterns.audit import verify
from tests.clirun import cli
from tests.corefix import SOURCE, series
from tests.gitutil import RepoFactory, commit_files, git_out

T0 = datetime(2026, 1, 5, tzinfo=UTC)
PATH = "claims/app-prod.yaml"


def claim_yaml(
    name: str = "app-prod", env: str = "prod", memory: int = 256, top: int = 512, cooldown: int = 60
) -> str:
    return f"""\
apiVersion: x.demo/v1
kind: ServerlessEventAppClaim
metadata:
  name: {name}
spec:
  environment: {env}
  lambdaMemory: {memory}  # MB
  lambdaTimeout: 30
  autoTune:
    enabled: true
    memoryBounds:
      min: 128
      max: {top}
    cooldownMinutes: {cooldown}
"""


def forge(
    work: Path,
    at: datetime,
    replacements: Mapping[str, Sequence[tuple[str, str]]],
    changes: Sequence[dict[str, str]],
    subject: str = "feedbackctl: auto-tune",
) -> str:
    """A commit with feedbackctl trailers, written the way the tool writes (object db + CAS)."""
    repo = GitRepo.open(work)
    head = repo.resolve("main")
    edits: dict[str, bytes | None] = {}
    for path, pairs in replacements.items():
        raw = repo.read_file(head, path)
        text = raw.decode() if raw is not None else ""
        for old, new in pairs:
            assert old in text, f"{old!r} not in {path}"
            text = text.replace(old, new, 1)
        edits[path] = text.encode()
    return write(repo, "main", head, Plan(subject, trailers=list(changes), edits=edits), at)


def tune(
    old: object, new: object, field: str = "lambdaMemory", claim: str = "app-prod", **kw: str
) -> dict[str, str]:
    return trailer(
        kw.pop("kind", "auto-tune"),
        claim,
        field,
        old=old,  # type: ignore[arg-type]
        new=new,  # type: ignore[arg-type]
        source=kw.pop("source", "metric-fixtures"),
        rule=kw.pop("rule", "memory-pressure"),
        risk=kw.pop("risk", "MEDIUM"),
        **kw,  # type: ignore[arg-type]
    )


def mem(a: int, b: int) -> dict[str, list[tuple[str, str]]]:
    return {PATH: [(f"lambdaMemory: {a}", f"lambdaMemory: {b}")]}


def rules(work: Path, **kw: str) -> list[tuple[str, str]]:
    result = verify(GitRepo.open(work), None, kw.get("since"))
    assert not result.problems, result.problems
    return [(v.commit, v.rule) for v in result.violations]


def test_a_legal_auto_tune_passes(repo_factory: RepoFactory) -> None:
    work, _ = repo_factory({PATH: claim_yaml()})
    forge(work, T0, mem(256, 384), [tune(256, 384)])
    result = verify(GitRepo.open(work), None, None)
    assert (result.commits, result.changes, result.violations) == (1, 1, [])


def test_auto_tune_beyond_the_bounds_is_caught(repo_factory: RepoFactory) -> None:
    work, _ = repo_factory({PATH: claim_yaml(memory=512)})
    sha = forge(work, T0, mem(512, 640), [tune(512, 640)])
    assert rules(work) == [(sha, "bounds")]


def test_cooldown_violation_is_caught(repo_factory: RepoFactory) -> None:
    # Settling (120m) and the source cooldown (60m) have passed; the claim's 240m cooldown has not.
    work, _ = repo_factory({PATH: claim_yaml(top=1024, cooldown=240)})
    forge(work, T0, mem(256, 384), [tune(256, 384)])
    sha = forge(work, T0 + timedelta(minutes=180), mem(384, 512), [tune(384, 512)])
    found = verify(GitRepo.open(work), None, None).violations
    assert [(v.commit, v.rule) for v in found] == [(sha, "cooldown")]
    assert "cooldown 240m" in found[0].detail and found[0].field == "lambdaMemory"


def test_bounds_widened_by_an_auto_tune_commit_is_caught(repo_factory: RepoFactory) -> None:
    work, _ = repo_factory({PATH: claim_yaml(memory=512)})
    sha = forge(
        work,
        T0,
        {PATH: [("lambdaMemory: 512", "lambdaMemory: 640"), ("max: 512", "max: 1024")]},
        [tune(512, 640)],
    )
    found = rules(work)
    assert (sha, "bounds-tampering") in found
    assert (sha, "bounds") in found  # judged by the bounds at the parent, not the widened ones


def test_policy_file_changed_by_an_auto_tune_commit_is_caught(repo_factory: RepoFactory) -> None:
    work, _ = repo_factory(
        {PATH: claim_yaml(), "policies/feedback-rules.yaml": "limits:\n  cooldownMinutes: 60\n"}
    )
    sha = forge(
        work,
        T0,
        {**mem(256, 384), "policies/feedback-rules.yaml": [("cooldownMinutes: 60", "cooldownMinutes: 1")]},
        [tune(256, 384)],
    )
    assert rules(work) == [(sha, "bounds-tampering")]


def test_a_human_may_change_bounds_and_policy(repo_factory: RepoFactory) -> None:
    work, _ = repo_factory({PATH: claim_yaml()})
    commit_files(work, {PATH: claim_yaml(top=1024)}, "Widen bounds", "2026-01-03T00:00:00Z")
    forge(work, T0, mem(256, 384), [tune(256, 384)])
    assert rules(work) == []


def test_trailers_that_do_not_match_the_diff_are_caught(repo_factory: RepoFactory) -> None:
    work, _ = repo_factory({PATH: claim_yaml()})
    sha = forge(work, T0, mem(256, 384), [tune(128, 256)])
    assert rules(work) == [(sha, "trailer-diff")]


def test_an_undeclared_change_is_caught(repo_factory: RepoFactory) -> None:
    work, _ = repo_factory({PATH: claim_yaml()})
    sha = forge(
        work,
        T0,
        {PATH: [("lambdaMemory: 256", "lambdaMemory: 384"), ("lambdaTimeout: 30", "lambdaTimeout: 90")]},
        [tune(256, 384)],
    )
    found = verify(GitRepo.open(work), None, None).violations
    assert [(v.commit, v.rule, v.field) for v in found] == [(sha, "undeclared-change", "lambdaTimeout")]


def test_two_steps_in_one_commit_are_caught(repo_factory: RepoFactory) -> None:
    work, _ = repo_factory({PATH: claim_yaml()})
    sha = forge(work, T0, mem(256, 512), [tune(256, 512)])
    found = verify(GitRepo.open(work), None, None).violations
    assert [(v.commit, v.rule) for v in found] == [(sha, "step-limit")]
    assert "one step of 128" in found[0].detail


def test_two_steps_in_one_run_are_caught(repo_factory: RepoFactory) -> None:
    """One run (one --now) may move a field once: a second commit at the same instant is a second step."""
    work, _ = repo_factory({PATH: claim_yaml()})
    forge(work, T0, mem(256, 384), [tune(256, 384)])
    sha = forge(work, T0, mem(384, 512), [tune(384, 512)])
    assert rules(work) == [(sha, "step-limit")]


def test_settling_after_a_human_change_is_caught(repo_factory: RepoFactory) -> None:
    work, _ = repo_factory({PATH: claim_yaml()})
    commit_files(work, {PATH: claim_yaml(memory=384)}, "Bump memory", "2026-01-05T00:00:00Z")
    sha = forge(work, T0 + timedelta(minutes=30), mem(384, 512), [tune(384, 512)])
    assert rules(work) == [(sha, "settling")]


def test_risk_above_the_ceiling_is_caught(repo_factory: RepoFactory) -> None:
    work, _ = repo_factory(
        {PATH: claim_yaml(), "policies/feedback-rules.yaml": "limits:\n  autoApplyCeiling: LOW\n"}
    )
    sha = forge(work, T0, mem(256, 384), [tune(256, 384)])
    assert rules(work) == [(sha, "risk-ceiling")]


def test_rate_limit_per_day_is_caught(repo_factory: RepoFactory) -> None:
    files = {f"claims/app-{i}.yaml": claim_yaml(name=f"app-{i}", env="dev") for i in range(3)}
    files["policies/feedback-rules.yaml"] = "limits:\n  rateLimit: {perRun: 5, per24h: 2}\n"
    work, _ = repo_factory(files)
    shas = []
    for i in range(3):
        path = f"claims/app-{i}.yaml"
        at = T0 + timedelta(hours=i)
        shas.append(
            forge(
                work,
                at,
                {path: [("lambdaMemory: 256", "lambdaMemory: 384")]},
                [tune(256, 384, claim=f"app-{i}", risk="LOW")],
            )
        )
    assert rules(work) == [(shas[2], "rate-limit")]


def test_flapping_field_auto_tuned_is_caught_and_unfreeze_lifts_it(repo_factory: RepoFactory) -> None:
    work, _ = repo_factory({PATH: claim_yaml()})
    values = [256, 384, 256, 384]
    for i, (a, b) in enumerate(zip(values, values[1:], strict=False)):
        forge(work, T0 + timedelta(days=i), mem(a, b), [tune(a, b)])
    assert rules(work) == []  # the third change made the second reversal: frozen from now on
    bad = forge(work, T0 + timedelta(days=3), mem(384, 256), [tune(384, 256)])
    found = verify(GitRepo.open(work), None, None).violations
    assert [(v.commit, v.rule) for v in found] == [(bad, "flap-freeze")]
    assert "2 direction reversals" in found[0].detail
    unfrozen = cli(
        "unfreeze", "app-prod", "lambdaMemory", "--repo", str(work), "--now", "2026-01-09T00:00:00Z"
    )
    assert unfrozen.code == 0, unfrozen.stderr
    assert "Feedback-Kind: unfreeze" in git_out(work, "log", "-1", "--format=%B")
    ok = forge(work, T0 + timedelta(days=5), mem(256, 384), [tune(256, 384)])
    assert rules(work) == [(bad, "flap-freeze")]
    assert ok != bad


def test_a_marker_that_changes_a_value_is_caught(repo_factory: RepoFactory) -> None:
    work, _ = repo_factory({PATH: claim_yaml()})
    sha = forge(
        work, T0, mem(256, 384), [trailer("recommendation", "app-prod", "lambdaMemory", old=256, new=384)]
    )
    assert rules(work) == [(sha, "trailer-diff")]


def test_drift_capture_must_be_tagged(repo_factory: RepoFactory) -> None:
    work, _ = repo_factory({PATH: claim_yaml()})
    ok = forge(
        work,
        T0,
        mem(256, 1024),
        [
            trailer(
                "drift-capture",
                "app-prod",
                "lambdaMemory",
                old=256,
                new=1024,
                tags=("break-glass", "requires-review"),
            )
        ],
    )
    bad = forge(
        work,
        T0 + timedelta(days=1),
        mem(1024, 2048),
        [trailer("drift-capture", "app-prod", "lambdaMemory", old=1024, new=2048)],
    )
    found = rules(work)
    assert found == [(bad, "drift-tags")]
    assert ok not in {s for s, _ in found}


def test_since_limits_the_replay(repo_factory: RepoFactory) -> None:
    work, _ = repo_factory({PATH: claim_yaml()})
    forge(work, T0, mem(256, 512), [tune(256, 512)])  # a violation before --since
    mark = git_out(work, "rev-parse", "HEAD")
    forge(work, T0 + timedelta(days=1), mem(512, 384), [tune(512, 384, rule="memory-idle")])
    result = verify(GitRepo.open(work), None, mark)
    assert (result.commits, result.violations) == (1, [])


# --- a clean history written by the real decision core ----------------------------------


def _metrics(c: Claim, now: datetime) -> dict[str, Series]:
    """Prod demand grows (240 MB, then 400 MB from Jan 7); dev idles at 60 MB."""
    used = 60.0 if c.name == "app-dev" else (400.0 if now >= datetime(2026, 1, 7, tzinfo=UTC) else 240.0)
    memory = float(c.spec["lambdaMemory"])
    return {
        "memory_utilization": series(
            "memory_utilization", lambda a: min(100.0, used / memory * 100), end=now
        ),
        "used_memory_max": series("used_memory_max", lambda a: used, end=now),
        "duration_p99": series("duration_p99", lambda a: 9000.0, end=now),
        "errors": series("errors", lambda a: 0.0, end=now),
        "throttles": series("throttles", lambda a: 0.0, end=now),
    }


def autotune_run(work: Path, now: datetime) -> int:
    """One cron run: the core decides, each change is one commit through the writer."""
    repo = GitRepo.open(work)
    snap = load_snapshot(repo, None)
    policy = snap.settings.policy
    hist = fill_baselines(
        repo, snap.commit, snap.claims, load_histories(repo, snap.commit, snap.claims, policy, now)
    )
    fleet_inputs = [ClaimInputs(c, _metrics(c, now), hist.for_claim(c.name)) for c in snap.claims]
    changes = [
        d
        for d in autotune_fleet(fleet_inputs, policy, now, SOURCE, hist.fleet)
        if d.outcome == Outcome.CHANGE
    ]
    for d in changes:
        snap = load_snapshot(repo, None)
        claim = snap.claim(d.claim)
        assert claim is not None
        staging = Staging(repo, snap.commit)
        staging.set_value(claim, d.field, d.recommended)
        plan = Plan(
            f"feedbackctl: auto-tune {d.claim} {d.field} {d.current} -> {d.recommended}",
            trailers=[
                trailer(
                    "auto-tune",
                    d.claim,
                    d.field,
                    old=d.current,
                    new=d.recommended,
                    source=d.source,
                    rule=d.rule,
                    risk=d.risk,
                    evidence="; ".join(e.summary for e in d.evidence),
                )
            ],
            edits=staging.edits(),
        )
        write(repo, snap.branch, snap.commit, plan, now)
    return len(changes)


def test_a_clean_history_of_real_auto_tune_runs_passes(repo_factory: RepoFactory) -> None:
    work, _ = repo_factory(
        {
            PATH: claim_yaml(),
            "claims/app-dev.yaml": claim_yaml(name="app-dev", env="dev", memory=512, top=1024),
        }
    )
    applied = sum(
        autotune_run(work, datetime(2026, 1, 2, tzinfo=UTC) + timedelta(hours=6 * i)) for i in range(24)
    )
    log = git_out(work, "log", "--format=%(trailers:key=Feedback-Claim,valueonly)%x09%s", "main")
    assert applied == 4, log  # prod 256->384->512, dev 512->384->256 (then the change cap)
    result = verify(GitRepo.open(work), None, None)
    assert (result.commits, result.problems, result.violations) == (4, [], [])
    ok = cli("audit", "verify", "--repo", str(work), "--output", "json")
    assert ok.code == 0, ok.stderr
    assert ok.json()["ok"] is True and ok.json()["commits"] == 4


def test_cli_exits_3_on_violations_even_without_detailed_exitcode(repo_factory: RepoFactory) -> None:
    work, _ = repo_factory({PATH: claim_yaml(memory=512)})
    sha = forge(work, T0, mem(512, 640), [tune(512, 640)])
    table = cli("audit", "verify", "--repo", str(work))
    assert table.code == 3
    assert sha[:10] in table.stdout and "bounds" in table.stdout and "1 violation" in table.stdout
    js = cli("audit", "verify", "--repo", str(work), "--output", "json", "--detailed-exitcode")
    assert js.code == 3
    v = js.json()["violations"][0]
    assert (v["commit"], v["rule"], v["claim"], v["field"]) == (
        sha,
        "bounds",
        "app-prod",
        "spec.lambdaMemory",
    )


def test_since_must_be_on_the_branch(repo_factory: RepoFactory) -> None:
    work, _ = repo_factory({PATH: claim_yaml()})
    bad = cli("audit", "verify", "--repo", str(work), "--since", "no-such-rev")
    assert bad.code == 2 and "no-such-rev" in bad.stderr and "Traceback" not in bad.stderr


def test_replayed_histories_match_load_histories_at_every_parent(repo_factory: RepoFactory) -> None:
    """The audit's incremental replay sees exactly what autotune saw (load_histories + fill_baselines)."""
    from feedbackctl.authority.replay import Replay

    work, _ = repo_factory(
        {
            PATH: claim_yaml(),
            "claims/app-dev.yaml": claim_yaml(name="app-dev", env="dev", memory=512, top=1024),
        }
    )
    for i in range(12):
        autotune_run(work, datetime(2026, 1, 2, tzinfo=UTC) + timedelta(hours=6 * i))
    commit_files(
        work,
        {PATH: claim_yaml(memory=384).replace("lambdaTimeout: 30", "lambdaTimeout: 45")},
        "Human edit",
        "2026-01-05T00:00:00Z",
    )
    forge(work, datetime(2026, 1, 5, 6, tzinfo=UTC), mem(384, 512), [tune(384, 512)])
    repo = GitRepo.open(work)
    replay = Replay(repo)
    compared = 0
    for c, parent, _after, _error in replay.walk(repo.resolve("main")):
        if parent is None or not c.changes:
            continue
        policy = parent.settings.policy
        expected = fill_baselines(
            repo,
            parent.commit,
            parent.claims,
            load_histories(repo, parent.commit, parent.claims, policy, c.at),
        )
        got = replay.histories(parent.claims, policy, c.at)
        assert got.fields == expected.fields, c.sha
        assert sorted(got.fleet.recent, key=repr) == sorted(expected.fleet.recent, key=repr)
        compared += 1
    assert compared == 4  # prod 256->384, dev 512->384->256, the forged 384->512


def test_a_commit_that_breaks_the_policy_is_caught_and_the_replay_goes_on(repo_factory: RepoFactory) -> None:
    work, _ = repo_factory(
        {PATH: claim_yaml(), "policies/feedback-rules.yaml": "limits:\n  cooldownMinutes: 60\n"}
    )
    bad = forge(
        work,
        T0,
        {"policies/feedback-rules.yaml": [("cooldownMinutes: 60", "cooldownMinutes: [")]},
        [tune(256, 256)],
    )
    later = forge(work, T0 + timedelta(days=1), mem(256, 512), [tune(256, 512)])
    found = rules(work)
    assert (bad, "bounds-tampering") in found and (bad, "schema") in found
    assert (later, "step-limit") in found


def test_a_second_field_of_a_claim_in_one_run_is_caught_in_guard_words(repo_factory: RepoFactory) -> None:
    """audit runs autotune's ``one_change_per_claim``: the field the run changed first is named."""
    bounds = "    timeoutBounds:\n      min: 5\n      max: 60\n    cooldownMinutes:"
    work, _ = repo_factory({PATH: claim_yaml().replace("    cooldownMinutes:", bounds)})
    timeout = {PATH: [("lambdaTimeout: 30", "lambdaTimeout: 35")]}
    forge(work, T0, timeout, [tune(30, 35, field="lambdaTimeout")])
    sha = forge(work, T0, mem(256, 384), [tune(256, 384)])
    found = verify(GitRepo.open(work), None, None).violations
    assert [(v.commit, v.rule, v.field) for v in found] == [(sha, "source-cooldown", "lambdaMemory")]
    said = "source metric-fixtures changes spec.lambdaTimeout of this claim in this run; its cooldown is"
    assert found[0].detail.startswith(said)
