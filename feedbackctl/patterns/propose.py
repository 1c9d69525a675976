"""Pattern 1, proposal-gated feedback: ``feedbackctl propose``.

Every decision that needs a human becomes one branch, ``<prefix><claim>/<field>``,
holding one commit on top of the authority branch: the minimal claim edit
plus a ``ConfigurationProposal`` record at ``<dir>/<claim>/<field>.yaml``.
The decision core says what needs review (``autotune`` routes a change to
``Outcome.PROPOSE`` when its risk is above the ceiling, it goes beyond the
bounds or the baseline cap, or its source may only propose); ``--all`` adds
every change ``recommend`` would make.

Renovate-style, without a database: the branches are the state. The same
proposal again writes nothing; a new value rewrites the same branch; a moved
base with an unmoved field regenerates it on the new base; a branch a human
committed to is never rewritten. Limits on open and new proposals are
counted from the branches and their records, and what they hold back is
reported. The authority branch and the checkout are never touched: commits
are built with one ``git fast-import`` stream and the branches move in one
compare-and-swap transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from feedbackctl.authority import acts, cas
from feedbackctl.authority.fastimport import RefUpdate, update_refs, write_commits
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.proposal_branches import ProposalConfig, fetch_branches, proposal_config
from feedbackctl.authority.shard import ALL, Shard
from feedbackctl.authority.snapshot import Snapshot, branch_of, load_snapshot
from feedbackctl.core.candidates import Candidate, candidates_for
from feedbackctl.core.results import ProposalsResult, Report
from feedbackctl.core.risk import SchemaCheck
from feedbackctl.errors import ClaimError, ConflictError, UsageError
from feedbackctl.patterns import staging
from feedbackctl.patterns.inputs import Problem, gather
from feedbackctl.patterns.proposal_plan import (
    WRITES,
    Action,
    Item,
    ProposalPlan,
    plan_candidates,
    proposals_of,
)

DEFAULT_REMOTE = "origin"


class _LeaseLost(Exception):
    """A push lost its lease: the remote moved; fetch, re-plan, retry."""


# --- writing -----------------------------------------------------------------------------


def _write(repo: GitRepo, items: Sequence[Item]) -> None:
    todo = [i for i in items if i.action in WRITES and i.commit is not None]
    shas = write_commits(repo, [i.commit for i in todo if i.commit is not None])
    updates = []
    for item, sha in zip(todo, shas, strict=True):
        item.sha = sha
        old = item.existing.local if item.existing else None
        updates.append(RefUpdate(f"refs/heads/{item.branch}", sha, old))
    update_refs(repo, updates, reason="feedbackctl propose")


def _push(repo: GitRepo, cfg: ProposalConfig, items: Sequence[Item]) -> None:
    remote = cfg.remote
    assert remote is not None
    for item in items:
        s = item.existing
        sha = item.sha
        if sha is None and item.action == Action.UNCHANGED and s is not None and s.remote is None:
            sha = s.tip  # proposed by an earlier run without --push
        if sha is None:
            continue
        if not repo.push(remote, item.branch, sha, s.remote if s else None):
            raise _LeaseLost(item.branch)
        item.pushed = True


# --- the run -----------------------------------------------------------------------------


def carry_out(repo: GitRepo, plan: ProposalPlan, *, dry_run: bool = False) -> Report:
    """Write the plan: one fast-import stream, one ref transaction, then pushes (with a remote)."""
    report, items = plan.report, plan.items
    report.dry_run = dry_run
    if dry_run:
        for item in items:
            if item.action in WRITES and item.commit is not None:
                subject = item.commit.message.splitlines()[0]
                report.commits.append({"sha": "(dry-run)", "branch": item.branch, "subject": subject})
        return report
    _write(repo, items)
    if plan.cfg.remote:
        _push(repo, plan.cfg, items)
    for item in items:
        if item.sha is not None and item.commit is not None:
            subject = item.commit.message.splitlines()[0]
            files = sorted(item.commit.edits)
            report.commits.append(
                {"sha": item.sha, "branch": item.branch, "subject": subject, "files": files}
            )
    proposals_of(report).proposals = [i.json() for i in items]
    return report


def propose_candidates(
    repo: GitRepo,
    snapshot: Snapshot,
    candidates: Sequence[Candidate],
    now: datetime,
    *,
    dry_run: bool = False,
    remote: str | None = None,
    checks: Sequence[SchemaCheck] = (),
    report: Report | None = None,
) -> Report:
    """Turn candidates into proposal branches (one attempt; ConflictError/_LeaseLost mean retry).

    The entry point for other producers of proposals (e.g. observations from
    push sources): give each candidate its proposer type and id.
    """
    plan = plan_candidates(repo, snapshot, candidates, now, remote=remote, checks=checks, report=report)
    return carry_out(repo, plan, dry_run=dry_run)


def authority_snapshot(repo: GitRepo, ref: str | None, remote: str | None) -> Snapshot:
    """The commit proposals are built on: what the shared authority branch holds.

    With a remote (``--push``) that is the remote's tip, fetched now; else,
    when the branch tracks an upstream, the upstream as last fetched. Local
    commits nobody pushed never become part of a proposal, where merging the
    proposal would slip them in unreviewed.
    """
    branch = branch_of(repo, ref)
    if remote is not None:
        there = repo.fetch(remote, branch)
        if there is None:
            raise UsageError(f"remote '{remote}' has no branch {branch}; push it once by hand, then rerun")
        return load_snapshot(repo, branch, at=there)
    tracked = acts.upstream(repo, branch)
    seen = repo.list_refs(f"refs/remotes/{tracked}/{branch}") if tracked else {}
    there = seen.get(f"refs/remotes/{tracked}/{branch}")
    return load_snapshot(repo, branch, at=there) if there else load_snapshot(repo, branch)


def propose(
    repo: GitRepo,
    ref: str | None,
    metrics: str | None,
    now: datetime,
    *,
    all_changes: bool = False,
    push: bool = False,
    dry_run: bool = False,
    remote: str = DEFAULT_REMOTE,
    checks: Sequence[SchemaCheck] = (),
    shard: Shard = ALL,
) -> Report:
    """Decide, then open or refresh one proposal branch per change that needs review.

    With a shard, only its claims are decided on; the limits still count every
    proposal branch (concurrent shards may overshoot them by a few).
    """

    def attempt(_: int) -> Report | cas.Moved:
        snapshot = authority_snapshot(repo, ref, remote if push and not dry_run else None)
        if push and not dry_run:
            fetch_branches(repo, proposal_config(snapshot, remote))
        gathered = gather(snapshot.restrict(shard), metrics, now)
        report = Report("propose", now, snapshot.branch, snapshot.commit, problems=gathered.problems,
                        warnings=gathered.warnings, dry_run=dry_run, metrics_cost=gathered.metrics_cost,
                        result=ProposalsResult())  # fmt: skip
        candidates: list[Candidate] = []
        passed_over: list[dict[str, Any]] = []
        for inputs in gathered.inputs:
            try:
                candidates += candidates_for(
                    inputs, snapshot.settings.policy, now, gathered.source, all_changes=all_changes,
                    passed_over=passed_over,
                )  # fmt: skip
            except ClaimError as e:
                report.problems.append(Problem.of(e, inputs.claim))
        checked = staging.with_validation(
            snapshot, gathered.histories, gathered.inputs, [c.decision for c in candidates], now
        )
        candidates = [replace(c, decision=d) for c, d in zip(candidates, checked, strict=True)]
        try:
            plan = plan_candidates(
                repo, snapshot, candidates, now, remote=remote if push else None, checks=checks,
                report=report, shard=shard,
            )  # fmt: skip
            plan.report.result_as(ProposalsResult).passed_over = passed_over
            return carry_out(repo, plan, dry_run=dry_run)
        except (ConflictError, _LeaseLost) as e:
            return cas.Moved(e)

    return cas.retry(attempt, cas.kept_moving("proposal branches"))
