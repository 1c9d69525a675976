"""``recommendations dismiss|accept`` are acts on the shared authority branch.

End to end through the CLI with real repos: a bare origin, the clone that acts
and a second (or fresh) clone that must see the act. The sidecar ``analyze
--write`` made may exist only in the acting clone: the act carries its entry.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.clirun import ROOT, Result, cli
from tests.gitutil import HUMAN_EMAIL, HUMAN_NAME, git_out, make_repo

EXAMPLE = ROOT / "examples" / "messagewall"
METRICS = EXAMPLE / "metrics"
NOW = "2026-11-08T00:00:00Z"
PROD = "claims/messagewall-prod.yaml"
DEV_SIDECAR = "claims/messagewall-dev.recommendation.yaml"
PROD_SIDECAR = "claims/messagewall-prod.recommendation.yaml"


def setup(tmp_path: Path, *, bare_origin: bool = True) -> tuple[Path, Path]:
    files = {f"claims/{p.name}": p.read_text() for p in (EXAMPLE / "claims").glob("*.yaml")}
    return make_repo(tmp_path, files, bare_origin=bare_origin, date="2026-10-01T00:00:00Z")


def analyze_write(work: Path) -> Result:
    r = cli(
        "analyze", "--repo", str(work), "--metrics", str(METRICS), "--now", NOW, "--write", "--output", "json"
    )
    assert r.code == 0, r.stderr
    return r


def act(work: Path, verb: str, claim: str, field: str, *extra: str) -> Result:
    return cli(
        "recommendations", verb, claim, field, "--repo", str(work), "--now", NOW, "--output", "json", *extra
    )


def clone(tmp_path: Path, origin: Path, name: str) -> Path:
    git_out(tmp_path, "clone", "-q", str(origin), str(tmp_path / name))
    return tmp_path / name


def status(repo: Path, rev: str, path: str, field: str) -> str:
    doc = yaml.safe_load(git_out(repo, "show", f"{rev}:{path}"))
    return next(e["status"] for e in doc["spec"]["recommendations"] if e["field"] == field)


def trailers(repo: Path, rev: str) -> dict[str, str]:
    out = git_out(repo, "log", "-1", "--format=%(trailers:only,unfold)", rev)
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


def audit_ok(repo: Path) -> None:
    r = cli("audit", "verify", "--repo", str(repo), "--output", "json")
    assert r.code == 0, r.stdout + r.stderr
    assert r.json()["violations"] == []


def test_a_dismiss_goes_to_origin_carrying_a_sidecar_only_this_clone_has(tmp_path: Path) -> None:
    work, origin = setup(tmp_path)
    pushed_tip = git_out(origin, "rev-parse", "main")
    analyze_write(work)  # the sidecars are committed here only
    r = act(work, "dismiss", "messagewall-dev", "lambdaTimeout", "--reason", "timeouts are fine")
    assert r.code == 0, r.stderr
    done = r.json()["commits"][0]
    assert done["pushed"] is True and done["files"] == [DEV_SIDECAR]
    # Built on origin's tip, not on the unpushed analyze commit; the person is its author.
    assert git_out(origin, "rev-parse", "main") == done["sha"]
    assert git_out(origin, "rev-parse", "main^") == pushed_tip
    assert git_out(origin, "log", "-1", "--format=%an <%ae>", "main") == f"{HUMAN_NAME} <{HUMAN_EMAIL}>"
    t = trailers(origin, "main")
    assert (t["Feedback-Kind"], t["Feedback-Claim"], t["Feedback-Field"]) == (
        "dismiss", "messagewall-dev", "spec.lambdaTimeout",
    )  # fmt: skip
    assert "timeouts are fine" in git_out(origin, "log", "-1", "--format=%B", "main")
    # This clone has a commit origin lacks: it stays put and says how to get the act.
    assert any("did not follow" in e["message"] for e in r.json()["events"])

    fresh = clone(tmp_path, origin, "fresh")
    assert status(fresh, "HEAD", DEV_SIDECAR, "lambdaTimeout") == "dismissed"
    analyze_write(fresh)  # regenerating keeps the decision: not recommended again
    assert status(fresh, "HEAD", DEV_SIDECAR, "lambdaTimeout") == "dismissed"
    assert status(fresh, "HEAD", DEV_SIDECAR, "lambdaMemory") == "pending-review"
    audit_ok(fresh)


def test_an_accept_lands_on_origin_and_a_second_clone_sees_the_value(tmp_path: Path) -> None:
    work, origin = setup(tmp_path)
    other = clone(tmp_path, origin, "other")
    analyze_write(work)
    git_out(work, "push", "-q")
    r = act(work, "accept", "messagewall-prod", "lambdaMemory")
    assert r.code == 0, r.stderr
    done = r.json()["commits"][0]
    assert done["pushed"] is True and done["files"] == sorted([PROD, PROD_SIDECAR])
    assert git_out(work, "rev-parse", "HEAD") == done["sha"]  # nothing unpushed here: it followed
    assert "lambdaMemory: 384" in (work / PROD).read_text() and git_out(work, "status", "--porcelain") == ""
    t = trailers(origin, "main")
    assert (t["Feedback-Kind"], t["Feedback-From"], t["Feedback-To"]) == ("accept", "256", "384")
    assert t["Feedback-Rule"] == "memory-pressure" and t["Feedback-Risk"] == "MEDIUM"

    git_out(other, "pull", "-q")
    assert "lambdaMemory: 384    # Higher memory for production" in (other / PROD).read_text()
    assert status(other, "HEAD", PROD_SIDECAR, "lambdaMemory") == "accepted"
    audit_ok(other)


def test_an_accept_is_checked_against_origin_not_this_clone(tmp_path: Path) -> None:
    work, origin = setup(tmp_path)
    analyze_write(work)
    git_out(work, "push", "-q")
    # Someone narrows the bounds on origin: 384 is outside them there.
    other = clone(tmp_path, origin, "other")
    text = (other / PROD).read_text()
    (other / PROD).write_text(text.replace("max: 512    # Agent", "max: 320    # Agent"))
    git_out(other, "commit", "-qam", "Narrow the memory bounds")
    git_out(other, "push", "-q")
    before = git_out(origin, "rev-parse", "main")
    r = act(work, "accept", "messagewall-prod", "lambdaMemory")
    assert r.code == 1, r.stdout + r.stderr
    assert "384 is outside the autoTune bounds 128-320 of spec.lambdaMemory" in r.stderr
    assert "Traceback" not in r.stderr
    assert git_out(origin, "rev-parse", "main") == before
    # And when the value moved there, the recommendation is stale.
    text = (other / PROD).read_text()
    (other / PROD).write_text(text.replace("lambdaMemory: 256", "lambdaMemory: 320"))
    git_out(other, "commit", "-qam", "More memory by hand")
    git_out(other, "push", "-q")
    stale = act(work, "accept", "messagewall-prod", "lambdaMemory")
    assert stale.code == 1 and "is 320 at origin/main now, not 256" in stale.stderr, stale.stderr


def test_without_an_upstream_the_act_is_refused_naming_remote(tmp_path: Path) -> None:
    work, origin = setup(tmp_path)
    analyze_write(work)
    git_out(work, "branch", "--unset-upstream")
    before, here = git_out(origin, "rev-parse", "main"), git_out(work, "rev-parse", "HEAD")
    refused = act(work, "dismiss", "messagewall-dev", "lambdaTimeout")
    assert refused.code == 2 and "rerun with --remote origin" in refused.stderr, refused.stderr
    assert (git_out(origin, "rev-parse", "main"), git_out(work, "rev-parse", "HEAD")) == (before, here)
    done = act(work, "dismiss", "messagewall-dev", "lambdaTimeout", "--remote", "origin")
    assert done.code == 0, done.stderr
    assert trailers(origin, "main")["Feedback-Kind"] == "dismiss"


def test_a_repo_without_remotes_records_the_acts_here(tmp_path: Path) -> None:
    work, _ = setup(tmp_path, bare_origin=False)
    analyze_write(work)
    dismissed = act(work, "dismiss", "messagewall-dev", "lambdaTimeout")
    assert dismissed.code == 0, dismissed.stderr
    assert "pushed" not in dismissed.json()["commits"][0]
    assert status(work, "HEAD", DEV_SIDECAR, "lambdaTimeout") == "dismissed"
    accepted = act(work, "accept", "messagewall-prod", "lambdaMemory")
    assert accepted.code == 0, accepted.stderr
    assert "lambdaMemory: 384" in (work / PROD).read_text()
    assert git_out(work, "log", "-1", "--format=%an", "HEAD") == HUMAN_NAME
    audit_ok(work)


def test_a_dry_run_writes_nothing_anywhere(tmp_path: Path) -> None:
    work, origin = setup(tmp_path)
    analyze_write(work)
    before, here = git_out(origin, "rev-parse", "main"), git_out(work, "rev-parse", "HEAD")
    r = act(work, "accept", "messagewall-prod", "lambdaMemory", "--dry-run")
    assert r.code == 0, r.stderr
    assert r.json()["commits"][0]["sha"] == "(dry-run)"
    assert (git_out(origin, "rev-parse", "main"), git_out(work, "rev-parse", "HEAD")) == (before, here)


def test_a_dismiss_forged_on_another_branch_dismisses_nothing(tmp_path: Path) -> None:
    work, origin = setup(tmp_path)
    analyze_write(work)
    git_out(work, "push", "-q")
    # Someone who may push branches, not the authority branch, copies the act onto one.
    mallory = clone(tmp_path, origin, "mallory")
    git_out(mallory, "switch", "-q", "-c", "feedback/messagewall-dev/lambdaTimeout")
    text = (mallory / DEV_SIDECAR).read_text()
    (mallory / DEV_SIDECAR).write_text(text.replace("status: pending-review", "status: dismissed"))
    message = (
        "feedbackctl: dismiss messagewall-dev lambdaTimeout recommendation\n\n"
        "Feedback-Kind: dismiss\nFeedback-Claim: messagewall-dev\nFeedback-Field: spec.lambdaTimeout\n"
    )
    git_out(mallory, "commit", "-qam", message)
    git_out(mallory, "push", "-q", "origin", "HEAD")
    fresh = clone(tmp_path, origin, "fresh")
    assert status(fresh, "HEAD", DEV_SIDECAR, "lambdaTimeout") == "pending-review"
    analyze_write(fresh)
    assert status(fresh, "HEAD", DEV_SIDECAR, "lambdaTimeout") == "pending-review"
    # The real act, from the authority branch's side, still works.
    assert act(fresh, "dismiss", "messagewall-dev", "lambdaTimeout").code == 0
    assert status(origin, "main", DEV_SIDECAR, "lambdaTimeout") == "dismissed"


def test_a_second_dismiss_writes_nothing_and_a_recommendation_that_differs_on_origin_is_refused(
    tmp_path: Path,
) -> None:
    work, origin = setup(tmp_path)
    analyze_write(work)
    assert act(work, "dismiss", "messagewall-dev", "lambdaTimeout").code == 0
    before = git_out(origin, "rev-parse", "main")
    again = act(work, "dismiss", "messagewall-dev", "lambdaTimeout")
    assert again.code == 0 and again.json()["commits"] == [], again.stdout + again.stderr
    assert "dismissed at origin/main already" in again.json()["events"][0]["message"]
    assert git_out(origin, "rev-parse", "main") == before
    # Origin's sidecar now recommends another value than this clone shows: which one did the human mean?
    other = clone(tmp_path, origin, "other")
    git_out(work, "push", "-q", "origin", "HEAD:refs/heads/scratch")  # bring the local sidecar over
    git_out(other, "fetch", "-q", "origin", "scratch")
    git_out(other, "checkout", "-q", "FETCH_HEAD", "--", PROD_SIDECAR)
    text = (other / PROD_SIDECAR).read_text()
    (other / PROD_SIDECAR).write_text(text.replace("recommendedValue: 384", "recommendedValue: 320"))
    git_out(other, "add", PROD_SIDECAR)
    git_out(other, "commit", "-qm", "A hand-edited recommendation")
    git_out(other, "push", "-q")
    refused = act(work, "accept", "messagewall-prod", "lambdaMemory")
    assert refused.code == 1, refused.stdout + refused.stderr
    assert "origin/main recommends lambdaMemory 256 -> 320, this clone 256 -> 384" in refused.stderr
    assert "bring them together" in refused.stderr
