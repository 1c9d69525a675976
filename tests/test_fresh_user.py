"""What a new user expects, end to end through the CLI: Pattern 1 by default, replays
over data that runs past ``--now``, and bad series that stop only what needs them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tests.autotunefix import DEV_CLAIM, EXAMPLE, PROD, PROD_CLAIM, PROD_PATH, memory_of
from tests.clirun import Result, cli
from tests.gitutil import RepoFactory, commit_files, git_out, make_repo
from tests.kustomizefix import corpus_repo, overlay, replace_in

NOW = "2026-11-08T00:00:00Z"
DEV = "messagewall-dev"
DEV_PATH = "claims/messagewall-dev.yaml"
PROD_BRANCH = f"feedback/{PROD}/lambdaMemory"
DEV_BRANCH = f"feedback/{DEV}/lambdaMemory"


def without_autotune(text: str) -> str:
    """The claim with its ``spec.autoTune`` block removed (the seed's Pattern 1 case)."""
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("  autoTune:"):
            skipping = True
            continue
        if skipping and (line.startswith("    ") or not line.strip()):
            continue
        skipping = False
        out.append(line)
    text = "".join(out)
    assert "autoTune" not in text
    return text


def world(tmp_path: Path, files: dict[str, str]) -> tuple[Path, Path]:
    work, _ = make_repo(tmp_path, files, date="2026-10-01T00:00:00Z")
    metrics = tmp_path / "metrics"
    shutil.copytree(EXAMPLE / "metrics", metrics)
    return work, metrics


def run(command: str, work: Path, metrics: Path, *extra: str, env: dict[str, str] | None = None) -> Result:
    return cli(command, "--repo", str(work), "--metrics", str(metrics), "--now", NOW, *extra, env=env)


def branches(work: Path) -> list[str]:
    return git_out(work, "for-each-ref", "--format=%(refname:short)", "refs/heads/feedback/").splitlines()


def decision(data: dict, claim: str, field: str = "spec.lambdaMemory") -> dict:  # type: ignore[type-arg]
    return next(d for d in data["decisions"] if d["claim"] == claim and d["field"] == field)


# --- propose: Pattern 1 is the default -------------------------------------------------------


def test_propose_alone_opens_a_branch_for_a_claim_without_autotune(tmp_path: Path) -> None:
    work, metrics = world(tmp_path, {PROD_PATH: without_autotune(PROD_CLAIM)})
    r = run("propose", work, metrics, "--output", "json")
    assert r.code == 0, r.stderr
    (p,) = r.json()["proposals"]
    assert (p["branch"], p["action"], p["from"], p["to"], p["reviewReason"]) == (
        PROD_BRANCH,
        "created",
        256,
        384,
        "opt-in",
    )
    assert branches(work) == [PROD_BRANCH]
    assert memory_of(work, PROD_BRANCH) == 384 and memory_of(work) == 256  # main untouched
    message = git_out(work, "log", "-1", "--format=%B", PROD_BRANCH)
    assert "not opted in to auto-tune" in message


def test_propose_says_why_per_decision_when_it_opens_nothing(tmp_path: Path) -> None:
    work, metrics = world(tmp_path, {PROD_PATH: PROD_CLAIM})  # opted in, inside its bounds
    r = run("propose", work, metrics)
    assert r.code == 0, r.stderr
    assert branches(work) == []
    assert "no proposals:" in r.stdout
    assert (
        f"{PROD} spec.lambdaMemory: autotune: autotune applies 256 -> 384; --all proposes it instead"
        in r.stdout
    )
    assert re.search(rf"{PROD} spec.lambdaTimeout: hold: \S", r.stdout), r.stdout
    data = run("propose", work, metrics, "--output", "json", "--dry-run").json()
    assert {(p["field"], p["outcome"]) for p in data["passedOver"]} == {
        ("spec.lambdaMemory", "autotune"),
        ("spec.lambdaTimeout", "hold"),
    }
    # --all adds what autotune would apply.
    r = run("propose", work, metrics, "--all", "--output", "json")
    assert r.code == 0, r.stderr
    assert [(p["branch"], p["reviewReason"]) for p in r.json()["proposals"]] == [(PROD_BRANCH, "requested")]


def test_the_demo_proposes_for_the_claim_that_is_not_opted_in(tmp_path: Path) -> None:
    root = Path("rel-demo")  # a relative --dir (the push to the bare origin resolves it)
    r = cli("demo", "--dir", str(root), cwd=tmp_path)
    assert r.code == 0, r.stderr
    config = tmp_path / root / "config"
    assert DEV_BRANCH in branches(config)
    assert "feedbackctl propose" in r.stdout


# --- replays: points after --now are not yet known -------------------------------------------


def test_autotune_replays_over_a_directory_that_runs_past_now(tmp_path: Path) -> None:
    work, metrics = world(tmp_path, {PROD_PATH: PROD_CLAIM})
    later = ["2026-11-08T00:05:00Z,99.0", "2026-11-08T00:10:00Z,99.0", "2026-11-09T00:00:00Z,99.0"]
    with (metrics / PROD / "memory_utilization.csv").open("a") as f:
        f.write("\n".join(later) + "\n")
    with (metrics / PROD / "errors.csv").open("a") as f:
        f.write("2026-11-08T00:05:00Z,0\n")
    r = run("autotune", work, metrics, "--output", "json")
    assert r.code == 0, r.stderr
    assert r.stderr.splitlines() == [
        f"warning: {metrics}: 4 points in 2 files after {NOW} left out (not yet known at that time)"
    ]
    assert decision(r.json(), PROD)["recommended"] == 384
    assert memory_of(work) == 384


# --- data problems are per metric ------------------------------------------------------------


def _spoil(path: Path, line: int, value: str) -> None:
    rows = path.read_text().splitlines()
    stamp = rows[line - 1].split(",", 1)[0]
    rows[line - 1] = f"{stamp},{value}"
    path.write_text("\n".join(rows) + "\n")


def test_a_nan_in_a_series_only_a_decrease_reads_keeps_the_urgent_increase(tmp_path: Path) -> None:
    work, metrics = world(tmp_path, {PROD_PATH: PROD_CLAIM})
    cost = metrics / PROD / "cost_daily.csv"
    _spoil(cost, 5, "NaN")
    r = run("autotune", work, metrics, "--output", "json")
    assert r.code == 1, r.stderr  # the bad row is reported ...
    assert f"error: {cost}:5: value 'NaN' is not a finite number; fix or drop the row" in r.stderr
    d = decision(r.json(), PROD)  # ... and the claim's increase goes on
    assert (d["current"], d["recommended"], d["outcome"]) == (256, 384, "change")
    assert memory_of(work) == 384


def test_a_bad_guardrail_metric_blocks_the_decrease_it_guards_never_an_increase(tmp_path: Path) -> None:
    work, metrics = world(tmp_path, {PROD_PATH: PROD_CLAIM, DEV_PATH: DEV_CLAIM})
    for claim in (PROD, DEV):
        _spoil(metrics / claim / "errors.csv", 2000, "lots")
    r = run("analyze", work, metrics, "--output", "json")
    assert r.code == 1, r.stderr
    data = r.json()
    prod = decision(data, PROD)
    assert (prod["outcome"], prod["recommended"]) == ("change", 384)  # errors-healthy guards decreases
    dev = decision(data, DEV)
    assert dev["outcome"] == "blocked" and dev["blockedBy"] == ["errors-healthy"]
    note = next(n for n in dev["notes"] if n["rule"] == "errors-healthy")
    assert (
        f"cannot prove health before a decrease: errors unreadable: {metrics}/{DEV}/errors.csv:2000: "
        "value 'lots' is not a number" in note["detail"]
    )
    # The table names the file too, and both claims stay in it.
    table = run("analyze", work, metrics)
    assert PROD in table.stdout and DEV in table.stdout


def test_a_rule_whose_metric_is_unreadable_has_not_enough_data_naming_the_file(tmp_path: Path) -> None:
    work, metrics = world(tmp_path, {PROD_PATH: PROD_CLAIM})
    util = metrics / PROD / "memory_utilization.csv"
    util.write_text("time,val\n1,2\n")
    r = run("analyze", work, metrics, "--output", "json")
    assert r.code == 1
    d = decision(r.json(), PROD)
    assert d["outcome"] == "not-enough-data"
    details = " ".join(n["detail"] for n in d["notes"])
    assert f"memory_utilization unreadable: {util}:1: header is 'time,val'" in details
    timeout = decision(r.json(), PROD, "spec.lambdaTimeout")  # duration_p99 is fine: decided
    assert timeout["outcome"] == "hold"


# --- smaller expectations --------------------------------------------------------------------


def test_a_claim_error_starts_with_the_file_and_line(tmp_path: Path) -> None:
    dev = DEV_CLAIM.replace("lambdaMemory: 512 ", "lambdaMemory: lots ")
    work, metrics = world(tmp_path, {PROD_PATH: PROD_CLAIM, DEV_PATH: dev})
    line = next(i for i, ln in enumerate(dev.splitlines(), 1) if "lambdaMemory: lots" in ln)
    r = run("analyze", work, metrics, "--output", "json")
    assert r.code == 1
    assert (
        f"error: {DEV_PATH}:{line}: {DEV}: spec.lambdaMemory is 'lots', expected a number; fix the claim"
        in r.stderr.splitlines()
    )
    assert decision(r.json(), PROD)["recommended"] == 384  # the other claim still runs


def test_simulate_reports_one_bad_claim_and_simulates_the_others(tmp_path: Path) -> None:
    work, metrics = world(
        tmp_path,
        {PROD_PATH: PROD_CLAIM, DEV_PATH: DEV_CLAIM.replace("lambdaMemory: 512 ", "lambdaMemory: lots ")},
    )
    r = cli(
        "simulate", "--repo", str(work), "--metrics", str(metrics), "--step", "60m",
        "--to", "2026-11-02T00:00:00Z", "--output", "json",
    )  # fmt: skip
    assert r.code == 1, r.stderr
    assert f"{DEV_PATH}:" in r.stderr and "spec.lambdaMemory is 'lots'" in r.stderr
    assert [c["claim"] for c in r.json()["claims"]] == [PROD]


def test_boolean_options_are_switches(tmp_path: Path) -> None:
    work, metrics = world(tmp_path, {PROD_PATH: PROD_CLAIM})
    help_text = cli("analyze", "--help", env={"COLUMNS": "120"}).stdout
    write_line = next(ln for ln in help_text.splitlines() if "--write" in ln)
    assert "--no-write" in write_line and "<bool>" not in write_line
    before = git_out(work, "rev-parse", "main")
    r = run("analyze", work, metrics, "--no-write", "--no-dry-run")
    assert r.code == 0, r.stderr
    assert git_out(work, "rev-parse", "main") == before
    assert run("analyze", work, metrics, "--write", "--dry-run").code == 0
    assert git_out(work, "rev-parse", "main") == before


def test_automated_commits_are_the_bots_and_configurable(tmp_path: Path) -> None:
    work, metrics = world(tmp_path, {PROD_PATH: PROD_CLAIM})
    assert run("autotune", work, metrics).code == 0
    assert git_out(work, "log", "-1", "--format=%an <%ae>|%cn <%ce>") == (
        "feedbackctl <feedbackctl@localhost>|feedbackctl <feedbackctl@localhost>"
    )
    work2, metrics2 = world(
        tmp_path / "b",
        {PROD_PATH: PROD_CLAIM, ".feedbackctl.yaml": 'identity: "Tuning Bot <tuning@example.org>"\n'},
    )
    assert run("autotune", work2, metrics2).code == 0
    assert git_out(work2, "log", "-1", "--format=%an <%ae>") == "Tuning Bot <tuning@example.org>"
    bad = tmp_path / "c"
    work3, metrics3 = world(bad, {PROD_PATH: PROD_CLAIM, ".feedbackctl.yaml": "identity: nobody\n"})
    r = run("autotune", work3, metrics3)
    assert r.code == 2 and ".feedbackctl.yaml: identity: expected 'Name <email>'" in r.stderr


def test_audit_verify_takes_now_and_a_now_without_zone_is_refused(tmp_path: Path) -> None:
    work, metrics = world(tmp_path, {PROD_PATH: PROD_CLAIM})
    assert run("autotune", work, metrics).code == 0
    full = cli("audit", "verify", "--repo", str(work), "--output", "json")
    early = cli("audit", "verify", "--repo", str(work), "--now", "2026-10-15T00:00:00Z", "--output", "json")
    assert full.code == 0 and early.code == 0, (full.stderr, early.stderr)
    assert full.json()["commits"] == 1 and early.json()["commits"] == 0
    r = cli("audit", "verify", "--repo", str(work), "--now", "2026-11-08T00:00:00")
    assert r.code == 2
    assert "--now '2026-11-08T00:00:00' has no time zone; add 'Z' or an offset such as '+00:00'" in r.stderr


def test_tables_fit_80_columns_and_honour_columns(tmp_path: Path) -> None:
    work, metrics = world(tmp_path, {PROD_PATH: PROD_CLAIM, DEV_PATH: DEV_CLAIM})
    for command in ("analyze", "autotune"):
        narrow = run(command, work, metrics, "--dry-run", env={"COLUMNS": "80"})
        assert narrow.code == 0, narrow.stderr
        lines = narrow.stdout.splitlines()
        assert max(len(ln) for ln in lines) <= 80, narrow.stdout
        assert any("claim / field" in ln for ln in lines)
        wide = run(command, work, metrics, "--dry-run", env={"COLUMNS": "150"})
        assert max(len(ln) for ln in wide.stdout.splitlines()) <= 150
        assert not any("claim / field" in ln for ln in wide.stdout.splitlines())


def test_evidence_and_trailers_carry_units_from_and_to_stay_plain(tmp_path: Path) -> None:
    work, metrics = world(tmp_path, {PROD_PATH: PROD_CLAIM})
    r = run("autotune", work, metrics, "--output", "json")
    assert r.code == 0, r.stderr
    summaries = [e["summary"] for e in decision(r.json(), PROD)["evidence"]]
    assert re.fullmatch(r"memory_utilization min=9\d(\.\d)?% vs threshold 90% over 30m, n=\d+", summaries[0])
    assert re.search(r"used_memory_max max=\d+ MB", summaries[1]), summaries
    body = git_out(work, "log", "-1", "--format=%(trailers:only,unfold)")
    trailers = dict(line.split(": ", 1) for line in body.splitlines())
    assert (trailers["Feedback-From"], trailers["Feedback-To"]) == ("256", "384")
    assert "% vs threshold 90%" in trailers["Feedback-Evidence"] and " MB" in trailers["Feedback-Evidence"]


def test_history_shows_a_human_edit_to_a_kustomize_rendered_claim(repo_factory: RepoFactory) -> None:
    work = corpus_repo(repo_factory)
    op = "path: /spec/lambdaMemory\n        value: "
    edited = replace_in(overlay("prod-east"), op + "256", op + "384")
    commit_files(work, {overlay("prod-east"): edited}, "Raise memory by hand", "2026-11-01T00:00:00Z")
    r = cli(
        "history", "--repo", str(work), "--now", NOW, "--claim", "messagewall-prod-east", "--output", "json"
    )
    assert r.code == 0, r.stderr
    rows = r.json()["entries"]
    human = [(e["claim"], e["field"], e["from"], e["to"]) for e in rows if e["kind"] == "human"]
    assert human[0] == ("messagewall-prod-east", "spec.lambdaMemory", 256, 384)  # newest first
    assert ("messagewall-prod-east", "spec.lambdaMemory", None, 256) in human  # the overlay's first version
