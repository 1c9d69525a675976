"""Flap detection (Nagios percent state change + reversals), the freeze, and lifting it."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.history import load_histories
from feedbackctl.authority.snapshot import load_snapshot
from feedbackctl.core import flap
from feedbackctl.core.decide import autotune, recommend
from feedbackctl.core.models import Outcome
from feedbackctl.core.policy import Limits
from tests.clirun import cli
from tests.corefix import NOW, SOURCE, change, claim, healthy, inputs, policy
from tests.gitutil import HUMAN_EMAIL, HUMAN_NAME, RepoFactory, commit_files, git_out
from tests.test_audit import PATH, T0, claim_yaml, forge, mem, tune


def seesaw(n: int, start_days: float = 20.0, kind: str = "auto-tune") -> list:
    """``n`` alternating changes, one a day, ending ``start_days - n + 1`` days ago."""
    out = []
    for i in range(n):
        up = i % 2 == 0
        out.append(change((start_days - i) * 1440, 256 if up else 384, 384 if up else 256, kind=kind))
    return out


# --- Nagios percent state change ----------------------------------------------------------


def test_no_reversal_is_zero_and_all_reversals_is_one_hundred() -> None:
    assert flap.percent_state_change([1] * 21) == 0
    assert flap.percent_state_change([1, -1] * 10 + [1]) == pytest.approx(100.0)


def test_weights_grow_from_0_8_oldest_to_1_2_newest() -> None:
    oldest = [1, -1] + [-1] * 19
    newest = [1] * 20 + [-1]
    assert flap.percent_state_change(oldest) == pytest.approx(0.8 * 100 / 20)
    assert flap.percent_state_change(newest) == pytest.approx(1.2 * 100 / 20)
    # Short histories are right-aligned: their newest transition weighs 1.2 too.
    assert flap.percent_state_change([1, -1]) == pytest.approx(6.0)


def test_only_the_last_21_states_count() -> None:
    assert flap.percent_state_change([1, -1, 1, -1] + [1] * 21) == 0


def test_hysteresis_starts_at_20_percent_and_stops_below_5() -> None:
    four = [1, -1, 1, -1, 1]  # 4 newest reversals: 1.2 + 1.179 + 1.158 + 1.137 -> 23.4 %
    assert flap.hysteresis(four) == (True, pytest.approx(23.37, abs=0.01))
    three = [1, -1, 1, -1]
    assert flap.hysteresis(three) == (False, pytest.approx(17.68, abs=0.01))
    # The same recent pattern after a flap: still flapping between 5 % and 20 % ...
    calmer = four + [1] * 18  # two reversals left in the last 21 states
    flapping, pct = flap.hysteresis(calmer)
    assert 5 <= pct < 20 and flapping
    assert flap.hysteresis([1] * 9 + [1, -1, 1]) == (False, pytest.approx(11.89, abs=0.01))
    # ... and stops once the reversals weigh less than 5 %.
    flapping, pct = flap.hysteresis(four + [1] * 19)
    assert pct < 5 and not flapping


def test_percent_alone_freezes_when_reversals_are_allowed() -> None:
    lim = Limits(flap_reversals=10)
    assert flap.assess(seesaw(5), NOW, lim).flapping  # 4 reversals, 23.4 %
    status = flap.assess(seesaw(4), NOW, lim)
    assert not status.flapping and status.reversals == 3


# --- reversals inside the window ------------------------------------------------------------


def test_two_reversals_in_30_days_freeze() -> None:
    status = flap.assess(seesaw(3), NOW, Limits())
    assert (status.flapping, status.reversals) == (True, 2)
    assert not flap.assess(seesaw(2), NOW, Limits()).flapping


def test_a_freeze_never_expires_when_its_reversals_leave_the_window() -> None:
    # Frozen 38 days ago; a frozen field makes no new changes, so the window empties.
    status = flap.assess(seesaw(3, start_days=40), NOW, Limits())
    assert status.flapping and status.reversals == 0
    assert flap.frozen_at(seesaw(3, start_days=40), NOW, Limits()) == NOW - timedelta(days=38)


def test_reversals_never_two_inside_one_window_do_not_freeze() -> None:
    # Alternating every 20 days for 80 days: each window of 30 days holds one reversal.
    spaced = [
        change((100 - 20 * i) * 1440, 256 if i % 2 == 0 else 384, 384 if i % 2 == 0 else 256)
        for i in range(5)
    ]
    assert not flap.assess(spaced, NOW, Limits()).flapping
    assert flap.frozen_at(spaced, NOW, Limits()) is None


def test_a_reset_neither_lifts_the_freeze_nor_counts() -> None:
    reset = change(10 * 1440, 384, 256, kind="reset")
    assert flap.assess(seesaw(3) + [reset], NOW, Limits()).flapping
    assert not flap.assess(seesaw(2) + [reset], NOW, Limits()).flapping


@pytest.mark.parametrize("kind", ["human", "unfreeze", "approve"])
def test_a_human_act_or_unfreeze_lifts_the_freeze(kind: str) -> None:
    lifted = seesaw(3) + [change(10 * 1440, 384, 384 if kind == "unfreeze" else 256, kind=kind)]
    assert flap.assess(seesaw(3), NOW, Limits()).flapping
    status = flap.assess(lifted, NOW, Limits())
    assert (status.flapping, status.reversals, status.changes) == (False, 0, 0)


def test_a_drift_capture_does_not_lift_the_freeze() -> None:
    changes = seesaw(3) + [change(10 * 1440, 256, 512, kind="drift-capture")]
    assert flap.assess(changes, NOW, Limits()).flapping


changes = st.lists(
    st.builds(
        change,
        st.floats(-1440, 60 * 1440),
        st.sampled_from([128, 256, 384, "x"]),
        st.sampled_from([128, 256, 384, None]),
        st.sampled_from(["auto-tune", "auto-tune", "reset", "human", "unfreeze", "drift-capture"]),
    ),
    max_size=30,
).map(lambda cs: sorted(cs, key=lambda c: c.at))


@settings(max_examples=300, deadline=None)
@given(changes, st.integers(0, 3), st.integers(1, 40))
def test_flapping_is_assess_when_it_flaps(history: list, reversals: int, days: int) -> None:
    limits = Limits(flap_reversals=reversals, flap_window_days=days)
    status = flap.assess(history, NOW, limits)
    assert flap.flapping(history, NOW, limits) == (status if status.flapping else None)


# --- the guard and the reports ---------------------------------------------------------------


def test_flapping_field_is_frozen_and_analyze_says_so() -> None:
    i = inputs(claim(), healthy(), {"lambdaMemory": seesaw(3)}, baseline=256)
    tuned = next(d for d in autotune(i, policy(), NOW, SOURCE) if d.field == "lambdaMemory")
    assert tuned.outcome == Outcome.BLOCKED and tuned.blocked_by == ("flap-freeze",)
    assert "feedbackctl unfreeze app-prod lambdaMemory" in tuned.reason
    assert "% state change" in tuned.reason
    assert [n.rule for n in tuned.notes].count("flap-freeze") == 1
    advised = next(d for d in recommend(i, policy(), NOW, SOURCE) if d.field == "lambdaMemory")
    assert advised.outcome == Outcome.CHANGE  # analyze still says what the signals say ...
    assert any(n.rule == "flap-freeze" and n.effect == "info" for n in advised.notes)  # ... and warns


def test_a_quiet_field_gets_no_flap_note() -> None:
    i = inputs(claim(), healthy(), {"lambdaMemory": seesaw(2)}, baseline=256)
    advised = next(d for d in recommend(i, policy(), NOW, SOURCE) if d.field == "lambdaMemory")
    assert all(n.rule != "flap-freeze" for n in advised.notes)


def test_flap_limits_come_from_the_policy() -> None:
    p = replace(policy(), limits=replace(policy().limits, flap_reversals=3))
    i = inputs(claim(), healthy(), {"lambdaMemory": seesaw(3)}, baseline=256)
    tuned = next(d for d in autotune(i, p, NOW, SOURCE) if d.field == "lambdaMemory")
    assert tuned.outcome == Outcome.CHANGE


# --- from git: flapping commits, a human commit, `feedbackctl unfreeze` ---------------------


def _flapping_repo(repo_factory: RepoFactory):
    work, _ = repo_factory({PATH: claim_yaml()})
    values = [256, 384, 256, 384]
    for i, (a, b) in enumerate(zip(values, values[1:], strict=False)):
        forge(work, T0 + timedelta(days=i), mem(a, b), [tune(a, b)])
    return work


def _status(work, now):
    repo = GitRepo.open(work)
    snap = load_snapshot(repo, None)
    h = load_histories(repo, snap.commit, snap.claims, snap.settings.policy, now)
    return flap.assess(h.for_claim("app-prod")["lambdaMemory"].changes, now, snap.settings.policy.limits)


def test_unfreeze_writes_a_marker_commit_that_lifts_the_freeze(repo_factory: RepoFactory) -> None:
    work = _flapping_repo(repo_factory)
    now = T0 + timedelta(days=4)
    assert _status(work, now).flapping
    before = git_out(work, "rev-parse", "HEAD")
    dry = cli(
        "unfreeze",
        "app-prod",
        "spec.lambdaMemory",
        "--repo",
        str(work),
        "--now",
        now.isoformat(),
        "--dry-run",
    )
    assert dry.code == 0 and git_out(work, "rev-parse", "HEAD") == before
    done = cli(
        "unfreeze", "app-prod", "lambdaMemory", "--repo", str(work), "--now", now.isoformat(),
        "--reason", "tested 384 by hand", "--output", "json",
    )  # fmt: skip
    assert done.code == 0, done.stderr
    assert done.json()["flap"]["flapping"] is True and done.json()["commits"][0]["files"] == []
    body = git_out(work, "log", "-1", "--format=%B")
    assert "tested 384 by hand" in body
    assert "Feedback-Kind: unfreeze\nFeedback-Claim: app-prod\nFeedback-Field: spec.lambdaMemory" in body
    assert git_out(work, "diff", "--name-only", "HEAD~1", "HEAD") == ""
    assert git_out(work, "status", "--porcelain") == ""
    assert not _status(work, now + timedelta(minutes=1)).flapping
    again = cli("unfreeze", "app-prod", "lambdaMemory", "--repo", str(work), "--now", now.isoformat())
    assert again.code == 0 and "not frozen" in again.stdout
    assert git_out(work, "rev-list", "--count", "HEAD") == "5"  # no second marker


def test_a_human_commit_to_the_field_lifts_the_freeze(repo_factory: RepoFactory) -> None:
    work = _flapping_repo(repo_factory)
    commit_files(work, {PATH: claim_yaml(memory=512)}, "Pin memory after load test", "2026-01-08T12:00:00Z")
    assert not _status(work, T0 + timedelta(days=4)).flapping


def test_a_human_commit_elsewhere_does_not_lift_it(repo_factory: RepoFactory) -> None:
    work = _flapping_repo(repo_factory)
    text = claim_yaml(memory=384).replace("lambdaTimeout: 30", "lambdaTimeout: 45")
    commit_files(work, {PATH: text}, "Longer timeout", "2026-01-08T12:00:00Z")
    assert _status(work, T0 + timedelta(days=4)).flapping


def test_unfreeze_rejects_unknown_claims_and_fields(repo_factory: RepoFactory) -> None:
    work = _flapping_repo(repo_factory)
    nope = cli("unfreeze", "no-such-claim", "lambdaMemory", "--repo", str(work))
    assert nope.code == 2 and "no-such-claim" in nope.stderr
    bad = cli("unfreeze", "app-prod", "region", "--repo", str(work))
    assert bad.code == 2 and "not a tuned field" in bad.stderr


def _pushed_flapping_repo(repo_factory: RepoFactory):
    work, origin = repo_factory({PATH: claim_yaml()})
    values = [256, 384, 256, 384]
    for i, (a, b) in enumerate(zip(values, values[1:], strict=False)):
        forge(work, T0 + timedelta(days=i), mem(a, b), [tune(a, b)])
    git_out(work, "push", "-q", "origin", "HEAD")
    return work, origin


def test_unfreeze_goes_to_the_remote_so_a_fresh_clone_sees_the_freeze_lifted(
    repo_factory: RepoFactory, tmp_path
) -> None:
    work, origin = _pushed_flapping_repo(repo_factory)
    now = T0 + timedelta(days=4)
    done = cli("unfreeze", "app-prod", "lambdaMemory", "--repo", str(work), "--now", now.isoformat(),
               "--output", "json")  # fmt: skip
    assert done.code == 0, done.stderr
    assert done.json()["commits"][0].get("pushed") is True
    assert "Feedback-Kind: unfreeze" in git_out(origin, "log", "-1", "--format=%B")
    # A person lifted it: the commit is theirs, like every other act.
    assert git_out(origin, "log", "-1", "--format=%an <%ae>") == f"{HUMAN_NAME} <{HUMAN_EMAIL}>"
    fresh = tmp_path / "fresh"
    git_out(tmp_path, "clone", "-q", str(origin), str(fresh))
    assert not _status(fresh, now).flapping


def test_unfreeze_in_a_repo_with_a_remote_but_no_upstream_names_the_flag(repo_factory: RepoFactory) -> None:
    work, origin = _pushed_flapping_repo(repo_factory)
    git_out(work, "branch", "--unset-upstream")
    now = T0 + timedelta(days=4)
    refused = cli("unfreeze", "app-prod", "lambdaMemory", "--repo", str(work), "--now", now.isoformat())
    assert refused.code == 2 and "--remote origin" in refused.stderr, refused.stderr
    assert "unfreeze" not in git_out(origin, "log", "-1", "--format=%B")
    done = cli("unfreeze", "app-prod", "lambdaMemory", "--repo", str(work), "--now", now.isoformat(),
               "--remote", "origin")  # fmt: skip
    assert done.code == 0, done.stderr
    assert "Feedback-Kind: unfreeze" in git_out(origin, "log", "-1", "--format=%B")
