"""``audit verify``: replay the authority branch and prove each feedback commit allowed.

For every commit reachable from the branch (through any parent) that carries
``Feedback-*`` trailers, the claim
and the policy are read *as they were at its parent*, the field's history as
git had it then (with the commit's own date as "now"), and the change is run
through the same guard functions ``autotune`` uses. The checks are pure and
live in the core (``core/commitcheck.py`` per commit, ``core/runreplay.py``
for a run's changes); this module reads git for them. Metrics are not in git,
so the audit proves what git can prove: schema and bounds, one step, the
baseline cap, cooldowns, settling, rate limits, the risk ceiling, flap
freezes, shared values, trailers that match the diff, and that no automated commit touched
the human-authored bounds (a claim's ``autoTune`` block, the policy files or
``.feedbackctl.yaml``). Rules whose evidence is metrics (sustained windows,
guardrails) cannot be re-proved and are not claimed.

``unfreeze`` lives here too: it writes the marker commit that lifts a flap
freeze (``Feedback-Kind: unfreeze``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from feedbackctl.authority import acts, cas
from feedbackctl.authority.commits import Commit
from feedbackctl.authority.config import CONFIG_FILE
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.history import load_histories
from feedbackctl.authority.replay import Replay
from feedbackctl.authority.snapshot import Snapshot, branch_of, load_snapshot
from feedbackctl.authority.writer import ACKNOWLEDGED_KEY, Plan, trailer
from feedbackctl.core import flap, rules
from feedbackctl.core.commitcheck import Inputs, Protected, Violation, check_commit, misplaced
from feedbackctl.core.models import Acknowledgement, FieldHistory
from feedbackctl.core.results import JSON_SCHEMA_VERSION, FlapResult, Report
from feedbackctl.errors import ConflictError, FeedbackError, UsageError
from feedbackctl.patterns import staging
from feedbackctl.patterns.inputs import Problem
from feedbackctl.patterns.proposal_acts import human_identity

# What the audit re-proves from git alone, in the order it reports them (core/rules.py).
PROVABLE = rules.PROVABLE


@dataclass
class AuditResult:
    branch: str
    head: str
    since: str | None
    commits: int = 0  # commits with feedbackctl trailers
    changes: int = 0  # trailer groups checked
    violations: list[Violation] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def audit_json(r: AuditResult) -> dict[str, Any]:
    """``audit verify --output json``'s document (also the dashboard's audit panel)."""
    return {
        "schemaVersion": JSON_SCHEMA_VERSION,
        "command": "audit verify",
        "branch": r.branch,
        "head": r.head,
        "since": r.since,
        "commits": r.commits,
        "changes": r.changes,
        "checked": list(PROVABLE),
        "ok": not r.violations,
        "violations": [v.json() for v in r.violations],
        "problems": [{"claim": p.where or None, "message": p.message} for p in r.problems],
    }


def _inputs(repo: GitRepo, replay: Replay, c: Commit, parent: Snapshot) -> Inputs:
    """What the checks of ``c`` need from git, read at its ``parent``."""
    policy = parent.settings.policy

    def acknowledge(g: Mapping[str, str]) -> Acknowledgement | str | None:
        """The ack an auto-tune commit names, replayed as the guard input it was (or why it is forged)."""
        named = g.get(ACKNOWLEDGED_KEY)
        if not named:
            return None
        claim, name = g["Feedback-Claim"], g["Feedback-Field"].removeprefix("spec.")
        return acts.verify_acknowledgement(repo, named, c.sha, claim, name)

    return Inputs(
        policy=policy,
        protected=Protected(CONFIG_FILE, parent.settings.config.policies_dir),
        histories=lambda claims: replay.histories(claims, policy, c.at),
        acknowledge=acknowledge,
        validated_in=lambda g: staging.validated_in_problem(repo, parent, c.at, g),
    )


def verify(repo: GitRepo, ref: str | None, since: str | None, now: datetime | None = None) -> AuditResult:
    """Replay ``ref`` (after ``since``); commits dated after ``now`` are not yet known: left out."""
    branch = branch_of(repo, ref)
    head = repo.resolve(branch)
    rev = head
    if since is not None:
        base = repo.resolve(since)
        if not repo.is_ancestor(base, head):
            raise UsageError(f"--since {since} is not an ancestor of {branch}; pass a commit on the branch")
        rev = f"{base}..{head}"
    result = AuditResult(branch, head, since)
    audited = set(repo.rev_list(rev))
    subjects = repo.subjects(rev) if audited else {}
    replay = Replay(repo)
    try:
        for c, parent, after, unreadable in replay.walk(head):
            if c.sha not in audited or not (c.changes or c.stray) or (now is not None and c.at > now):
                continue
            result.commits += 1
            result.changes += len(c.changes)
            subject = subjects.get(c.sha, "")
            result.violations += misplaced(c, subject)
            if c.changes:
                inputs = _inputs(repo, replay, c, parent) if parent is not None else None
                why = str(unreadable) if unreadable is not None else None
                result.violations += check_commit(c, parent, after, why, subject, inputs)
    except FeedbackError as e:
        result.problems.append(Problem("", f"cannot replay {branch}: {e}"))
    order: dict[str, int] = {rule.value: i for i, rule in enumerate(PROVABLE)}
    result.violations.sort(key=lambda v: (v.at, v.commit, order.get(v.rule, len(order))))
    return result


# --- unfreeze -------------------------------------------------------------------


def unfreeze(
    repo: GitRepo,
    ref: str | None,
    claim_name: str,
    field_name: str,
    now: datetime,
    *,
    dry_run: bool,
    reason: str = "",
    remote: str | None = None,
) -> Report:
    """Lift a flap freeze with a marker commit (``Feedback-Kind: unfreeze``).

    Like every act, it goes to the remote (``--remote``, else the branch's
    upstream) as an empty commit on the remote's tip, so a fresh clone sees the
    freeze lifted; a repo with remotes but no upstream needs ``--remote``. A
    freeze made by commits the remote lacks is lifted here, beside them.
    """
    name = field_name.removeprefix("spec.")
    target = acts.act_remote(repo, branch_of(repo, ref), remote, "unfreeze")
    who = human_identity(repo)  # a person lifts the freeze: the commit is theirs

    def attempt(_: int) -> Report | cas.Moved:
        snapshot = load_snapshot(repo, ref)
        claim = snapshot.claim(claim_name)
        if claim is None:
            raise UsageError(f"claim '{claim_name}' not found at {snapshot.branch}; check the name")
        policy = snapshot.settings.policy
        if name not in policy.tuned_fields:
            tuned = ", ".join(policy.tuned_fields)
            raise UsageError(f"{name} is not a tuned field (tuned: {tuned}); nothing can be frozen")
        histories = load_histories(repo, snapshot.commit, [claim], policy, now)
        history = histories.for_claim(claim.name).get(name, FieldHistory(claim.name, name))
        status = flap.assess(history.changes, now, policy.limits)
        report = Report("unfreeze", now, snapshot.branch, snapshot.commit, dry_run=dry_run)
        report.result = FlapResult(claim.name, name, status.flapping, status.percent, status.reversals)
        if not status.flapping:
            report.events.append(
                {"message": f"{claim.name} spec.{name} is not frozen ({status.detail}); nothing to do"}
            )
            return report
        value = claim.value(name)
        plan = Plan(
            subject=f"feedbackctl: unfreeze {claim.name} {name}",
            body=reason or f"A human lifted the flap freeze ({status.detail}).",
            trailers=[
                trailer(
                    "unfreeze",
                    claim.name,
                    name,
                    old=value if isinstance(value, int | float | str | bool) else None,
                    evidence=f"flapping: {status.reversals} reversals, {status.percent:.1f}% state change",
                )
            ],
            edits={},
        )
        if dry_run:
            report.commits.append(acts.commit_entry("(dry-run)", snapshot.branch, plan))
            return report
        try:
            tip = acts.holding(repo, target, snapshot.branch, snapshot.commit)
            sha, pushed = acts.record(repo, snapshot.branch, snapshot.commit, plan, now, who, tip)
        except ConflictError:
            return cas.MOVED
        report.commits.append(acts.commit_entry(sha, snapshot.branch, plan, pushed))
        return report

    return cas.retry(attempt)
