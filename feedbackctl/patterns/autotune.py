"""Pattern 2, bounded auto-tune: ``feedbackctl autotune`` for cron.

One run reads the authority branch at one commit, gathers metrics and the
history-derived memory (cooldowns, settling, flap windows, rate limits,
baselines), runs every opted-in field through the runaway guards of
``core/guards.py`` and commits each granted change as its own commit, with
``Feedback-*`` trailers, on top of the commit it read. The commits are chained
and the branch moves once, by compare-and-swap: a run applies all of its
changes or none. A run that loses the race re-reads and re-evaluates; the
winner's commit is now history, so its cooldown blocks and the loser exits 0
having changed nothing.

With ``push`` the remote's branch is the authority: fetch it, evaluate there,
build on the remote sha and push with an explicit-SHA lease; on rejection
fetch, re-evaluate and retry (bounded, with jitter), then fast-forward the
local branch when that is safe.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from feedbackctl.authority import acts, cas
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.runid import run_id
from feedbackctl.authority.shard import ALL, Shard
from feedbackctl.authority.snapshot import Snapshot, load_snapshot
from feedbackctl.authority.writer import Plan, Staging, change_subject, decision_trailer
from feedbackctl.core import guards
from feedbackctl.core.models import Decision, Outcome
from feedbackctl.core.results import AutotuneResult, Report
from feedbackctl.errors import ClaimError, ConflictError, FeedbackError, UsageError
from feedbackctl.patterns.evaluation import Evaluation, evaluate
from feedbackctl.patterns.inputs import Problem
from feedbackctl.patterns.staging import validated_trailer

KIND = "auto-tune"
# Backoff before retry n is uniform in [0, JITTER_SECONDS * 2**n): runs started by
# the same cron minute on several hosts spread out instead of colliding again.
JITTER_SECONDS = 0.2

# What happened to each decision, for people and scripts.
APPLIED = "applied"
WOULD_APPLY = "would-apply"  # --dry-run
NOT_APPLIED = "not-applied"  # granted, but the write was refused (dirty file, ...)
NEEDS_PROPOSAL = "needs-proposal"
BLOCKED = "blocked"
HOLD = "hold"
NOT_ENOUGH_DATA = "not-enough-data"
_STATUS = {
    Outcome.PROPOSE: NEEDS_PROPOSAL,
    Outcome.BLOCKED: BLOCKED,
    Outcome.HOLD: HOLD,
    Outcome.NOT_ENOUGH_DATA: NOT_ENOUGH_DATA,
}

Sleep = Callable[[float], None]


@dataclass(frozen=True)
class RunOptions:
    dry_run: bool = False
    push: bool = False
    remote: str | None = None  # None: the branch's upstream remote, else origin
    shard: Shard = ALL  # only these claims (the rate limits still count the whole fleet's trailers)
    sleep: Sleep = time.sleep  # tests pass a recorder; production waits
    run: str = field(default_factory=run_id)  # Feedback-Run: shared by the shards of one cron slot
    plan_fetch: bool = True  # False: read every metric (tests compare both; docs/cloudwatch.md)

    @property
    def slot(self) -> guards.RunSlot:
        return guards.RunSlot(self.run, self.shard.index, self.shard.count)


@dataclass
class Outcomes:
    """The run's result: a Report plus a status for every decision."""

    report: Report
    status: dict[tuple[str, str], str] = field(default_factory=dict)

    def status_of(self, d: Decision) -> str:
        return self.status.get((d.claim, d.field), _STATUS.get(d.outcome, d.outcome.value))


# --- writing --------------------------------------------------------------------


def subject(d: Decision) -> str:
    return change_subject("auto-tune", d.claim, d.field, d.current, d.recommended)


def _body(d: Decision) -> str:
    lines = [f"{n.rule} ({n.effect}): {n.detail}" for n in d.notes]
    if d.uncapped not in (None, d.recommended):
        lines.append(f"uncapped recommendation: {d.uncapped}")
    return "\n".join(lines)


def plan_for(snapshot: Snapshot, staging: Staging, d: Decision, run: str | None = None) -> Plan:
    """The minimal claim edit and audit record of one auto-tune.

    ``staging`` carries the edits of the changes before this one, so two
    changes to one file each see the other's result.
    """
    claim = snapshot.claim(d.claim)
    if claim is None:  # pragma: no cover - decisions come from the snapshot's claims
        raise ClaimError(d.claim, "vanished from the snapshot; rerun")
    path = staging.set_value(claim, d.field, d.recommended)
    return Plan(
        subject=subject(d),
        body=_body(d),
        trailers=[validated_trailer(decision_trailer(KIND, d, run=run), d)],
        edits={path: staging.text(path).encode("utf-8")},
    )


Built = list[tuple[Decision, str, Plan]]


def build_commits(
    snapshot: Snapshot,
    base: str,
    changes: Sequence[Decision],
    now: datetime,
    *,
    write: bool = True,
    run: str | None = None,
) -> tuple[Built, list[tuple[Decision, FeedbackError]]]:
    """One commit per change, chained on ``base``; no ref moves yet.

    A change whose edit cannot be made (the value is not a plain scalar, the
    file would break) is returned as failed; the others still go ahead.
    Without ``write`` the edits are made and verified in memory only, so a
    dry run leaves not even a loose object behind.
    """
    built: Built = []
    failed: list[tuple[Decision, FeedbackError]] = []
    staging = Staging(snapshot.repo, base)
    tip = base
    for d in changes:
        try:
            plan = plan_for(snapshot, staging, d, run)
        except FeedbackError as e:
            failed.append((d, e))
            continue
        if write:
            tip = snapshot.repo.write_commit(tip, plan.edits, plan.message, now)
        built.append((d, tip, plan))
    return built, failed


def granted(decisions: Sequence[Decision]) -> list[Decision]:
    return sorted(
        (d for d in decisions if d.outcome == Outcome.CHANGE and d.changes_value),
        key=lambda d: (d.claim, d.field),
    )


# --- reporting ------------------------------------------------------------------


def _report(ev: Evaluation, now: datetime, dry_run: bool) -> Outcomes:
    s = ev.snapshot
    report = Report(
        "autotune", now, s.branch, s.commit, list(ev.decisions), list(ev.problems), list(ev.warnings),
        dry_run=dry_run, metrics_cost=ev.metrics_cost, result=AutotuneResult(),
    )
    out = Outcomes(report)
    for d in ev.decisions:
        if d.outcome == Outcome.PROPOSE:
            report.events.append(
                {
                    "type": "needs-proposal",
                    "claim": d.claim,
                    "field": f"spec.{d.field}",
                    "current": d.current,
                    "recommended": d.recommended,
                    "reason": d.reason,
                    "message": (
                        f"needs a proposal: {d.claim} spec.{d.field} {d.current} -> "
                        f"{d.recommended} ({d.reason}); run feedbackctl propose"
                    ),
                }
            )
    return out


def _record(out: Outcomes, built: Built, branch: str, applied: bool) -> None:
    for d, sha, plan in built:
        status = APPLIED if applied else WOULD_APPLY
        out.status[(d.claim, d.field)] = status
        out.report.commits.append(
            {
                "sha": sha if applied else "(dry-run)",
                "branch": branch,
                "subject": plan.subject,
                "claim": d.claim,
                "field": f"spec.{d.field}",
                "from": d.current,
                "to": d.recommended,
                "risk": d.risk,
                "files": sorted(plan.edits),
                "trailers": plan.trailers[0],
            }
        )
        if d.risk == "MEDIUM":
            verb = "applied" if applied else "would apply"
            out.report.events.append(
                {
                    "type": "announce",
                    "claim": d.claim,
                    "field": f"spec.{d.field}",
                    "risk": d.risk,
                    "message": (
                        f"announce: MEDIUM-risk auto-tune {verb}: {d.claim} spec.{d.field} "
                        f"{d.current} -> {d.recommended}"
                    ),
                }
            )


def _summary(out: Outcomes) -> None:
    counts: dict[str, int] = {}
    for d in out.report.decisions:
        s = out.status_of(d)
        counts[s] = counts.get(s, 0) + 1
    out.report.result_as(AutotuneResult).summary = counts


def _not_applied(out: Outcomes, changes: Sequence[Decision], error: FeedbackError) -> None:
    for d in changes:
        out.status[(d.claim, d.field)] = NOT_APPLIED
    problem = Problem.of(error)
    if not problem.where and len({d.claim for d in changes}) == 1:
        problem = Problem(changes[0].claim, problem.message)
    out.report.problems.append(problem)


# --- one run --------------------------------------------------------------------


def _local(repo: GitRepo, ref: str | None, metrics: str | None, now: datetime, opts: RunOptions) -> Outcomes:
    def attempt_once(attempt: int) -> Outcomes | cas.Moved:
        snapshot = load_snapshot(repo, ref).restrict(opts.shard)
        if not opts.dry_run:
            repo.check_not_before(snapshot.commit, now)  # a back-dated run would corrupt later readers
        ev = evaluate(snapshot, metrics, now, opts.slot, plan_fetch=opts.plan_fetch)
        out = _report(ev, now, opts.dry_run)
        out.report.result_as(AutotuneResult).attempts = attempt + 1
        changes = granted(ev.decisions)
        if not changes:
            return out
        snap = ev.snapshot
        built, failed = build_commits(snap, snap.commit, changes, now, write=not opts.dry_run, run=opts.run)
        for d, error in failed:
            _not_applied(out, [d], error)
        if not built:
            return out
        try:
            if not opts.dry_run:
                repo.advance(snap.branch, built[-1][1], snap.commit)
        except ConflictError as e:
            return cas.Moved(e)
        except FeedbackError as e:
            _not_applied(out, [d for d, _, _ in built], e)
            return out
        _record(out, built, snap.branch, applied=not opts.dry_run)
        return out

    def gave_up(last: cas.Moved) -> FeedbackError:
        return FeedbackError(f"{last.why}; gave up after {cas.CAS_ATTEMPTS} attempts — rerun later")

    return cas.retry(attempt_once, gave_up, pause=lambda n: _jitter(opts, n))


def _jitter(opts: RunOptions, attempt: int) -> None:
    opts.sleep(random.uniform(0, JITTER_SECONDS * 2**attempt))


def _remote_of(repo: GitRepo, branch: str, remote: str | None) -> str:
    return remote or acts.upstream(repo, branch) or "origin"


def _fast_forward_local(repo: GitRepo, branch: str, tip: str, out: Outcomes) -> None:
    """Bring the local branch to what was pushed, when that is a fast-forward."""
    name = f"refs/heads/{branch}"
    local = repo.list_refs(name).get(name)
    if local is None or local == tip:
        return
    event = {"type": "local-branch", "branch": branch}
    if not repo.is_ancestor(local, tip):
        event["message"] = f"local {branch} has commits the remote does not; left as is (pushed {tip[:10]})"
        out.report.events.append(event)
        return
    try:
        repo.advance(branch, tip, local)
    except FeedbackError as e:
        event["message"] = f"local {branch} not fast-forwarded to {tip[:10]}: {e}"
        out.report.events.append(event)


def _refuse_unpushed(repo: GitRepo, branch: str, remote: str, remote_sha: str) -> None:
    """Local commits the remote lacks: deciding against the remote would silently strand them."""
    name = f"refs/heads/{branch}"
    local = repo.list_refs(name).get(name)
    if local is None or repo.is_ancestor(local, remote_sha):
        return
    ahead = repo.count_between(remote_sha, local)
    raise FeedbackError(
        f"local {branch} has {ahead} commit(s) {remote}/{branch} lacks (tip {local[:10]}); nothing was "
        f"decided or pushed: push them (git push {remote} {branch}) or drop them "
        f"(git reset --keep {remote}/{branch}), then rerun"
    )


def _pushed(repo: GitRepo, ref: str | None, metrics: str | None, now: datetime, opts: RunOptions) -> Outcomes:
    branch = (ref or repo.default_ref()).removeprefix("refs/heads/")
    remote = _remote_of(repo, branch, opts.remote)

    def attempt_once(attempt: int) -> Outcomes | cas.Moved:
        remote_sha = repo.fetch(remote, branch)
        if remote_sha is None:
            raise UsageError(f"remote '{remote}' has no branch {branch}; push it once by hand, then rerun")
        _refuse_unpushed(repo, branch, remote, remote_sha)
        snap = load_snapshot(repo, branch, at=remote_sha).restrict(opts.shard)
        if not opts.dry_run:
            repo.check_not_before(snap.commit, now)
        ev = evaluate(snap, metrics, now, opts.slot, plan_fetch=opts.plan_fetch)
        out = _report(ev, now, opts.dry_run)
        out.report.result = AutotuneResult(attempts=attempt + 1, remote=remote)
        changes = granted(ev.decisions)
        if not changes:
            if not opts.dry_run:
                _fast_forward_local(repo, branch, remote_sha, out)
            return out
        built, failed = build_commits(snap, remote_sha, changes, now, write=not opts.dry_run, run=opts.run)
        for d, error in failed:
            _not_applied(out, [d], error)
        if not built:
            return out
        if opts.dry_run:
            _record(out, built, branch, applied=False)
            return out
        if repo.push(remote, branch, built[-1][1], remote_sha):
            _record(out, built, branch, applied=True)
            _fast_forward_local(repo, branch, built[-1][1], out)
            return out
        return cas.MOVED

    def gave_up(_: cas.Moved) -> FeedbackError:
        return FeedbackError(
            f"{remote}/{branch} kept moving during {cas.CAS_ATTEMPTS} push attempts; "
            "nothing was pushed — rerun later"
        )

    return cas.retry(attempt_once, gave_up, pause=lambda n: _jitter(opts, n))


def run_autotune(
    repo: GitRepo, ref: str | None, metrics: str | None, now: datetime, opts: RunOptions | None = None
) -> Outcomes:
    opts = opts or RunOptions()
    if ref is not None:
        repo.ref_name(ref)  # a bad name fails with our message, before any work
    out = _pushed(repo, ref, metrics, now, opts) if opts.push else _local(repo, ref, metrics, now, opts)
    _summary(out)
    return out
