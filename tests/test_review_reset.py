"""``feedbackctl review COMMIT [--keep|--revert]`` closes the loop with ``reset``.

A drift capture (break-glass) moves lambdaTimeout 30 -> 60. ``--keep`` makes
60 the tested configuration, so reset stops planning to undo it; ``--revert``
has reset move it back; a plain review only closes the review.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.clirun import Result, cli
from tests.gitutil import git_out
from tests.test_history import PROD_CLAIM, story, trailers

__all__ = ["story"]  # the fixture, shared with test_history
NOW = "2026-11-08T00:00:00Z"


def review(work: Path, commit: str, *opts: str) -> Result:
    return cli("review", commit, "--repo", str(work), "--now", NOW, *opts)


def planned(work: Path) -> dict[str, Any]:
    opts = ("--claim", PROD_CLAIM, "--now", NOW, "--dry-run", "--output", "json")
    r = cli("reset", "--repo", str(work), *opts)
    assert r.code == 0, r.stderr
    return {row["field"]: (row["from"], row["to"]) for row in r.json()["resets"]}


def test_a_plain_review_only_closes_the_review(story: dict[str, Any]) -> None:
    work, captured = story["work"], story["captured"]
    assert planned(work)["spec.lambdaTimeout"] == (60, 30)
    assert review(work, captured, "--note", "keep 60s").code == 0
    assert planned(work)["spec.lambdaTimeout"] == (60, 30)  # reset still treats 60 as untested


def test_keep_makes_the_capture_the_tested_configuration(story: dict[str, Any]) -> None:
    work, captured = story["work"], story["captured"]
    r = review(work, captured, "--keep", "--note", "60s is right")
    assert r.code == 0, r.stderr
    t = trailers(work, "main")
    assert (t["Feedback-Kind"], t["Feedback-Review"], t["Feedback-To"]) == ("review", "keep", "60")
    plan = planned(work)
    assert "spec.lambdaTimeout" not in plan
    assert plan["spec.lambdaMemory"] == (384, 256)  # the auto-tune is still undone
    done = cli("reset", "--repo", str(work), "--claim", PROD_CLAIM, "--now", NOW)
    assert done.code == 0, done.stderr
    assert "lambdaTimeout: 60" in git_out(work, "show", "main:claims/messagewall-prod.yaml")


def test_revert_after_keep_has_reset_move_it_back(story: dict[str, Any]) -> None:
    work, captured = story["work"], story["captured"]
    assert review(work, captured, "--keep").code == 0
    assert "spec.lambdaTimeout" not in planned(work)
    r = review(work, captured, "--revert", "--note", "the incident is over")
    assert r.code == 0, r.stderr
    assert trailers(work, "main")["Feedback-Review"] == "revert"
    assert planned(work)["spec.lambdaTimeout"] == (60, 30)


def test_keep_and_revert_together_is_a_usage_error(story: dict[str, Any]) -> None:
    work, captured = story["work"], story["captured"]
    head = git_out(work, "rev-parse", "main")
    r = review(work, captured, "--keep", "--revert")
    assert r.code == 2 and "--keep and --revert" in r.stderr
    assert git_out(work, "rev-parse", "main") == head


def test_a_review_of_a_pushed_capture_reaches_the_remote(story: dict[str, Any]) -> None:
    work, origin, captured = story["work"], story["origin"], story["captured"]
    git_out(work, "push", "-q", "origin", "main")
    r = review(work, captured, "--keep")
    assert r.code == 0, r.stderr
    assert git_out(origin, "rev-parse", "main") == git_out(work, "rev-parse", "main")
    assert trailers(origin, "main")["Feedback-Review"] == "keep"
