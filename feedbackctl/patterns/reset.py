"""Reset to the tested baseline (the design's "periodic reset to tested baseline", docs/design.md).

Feedback-driven changes move a claim away from the configuration a human
tested. ``feedbackctl reset`` puts chosen fields back to their baseline: the
value last set by a human (README, "The runaway guards"), or the
``feedbackctl.io/baseline.<field>`` annotation. One commit per field, with
``Feedback-Kind: reset``; a reset starts settling (it is automated: it does not lift a flap freeze).


A drift capture reviewed with ``review --keep`` is the tested configuration
from then on: reset leaves it (and puts it back when automation moved off it).
``review --revert``, or no verdict, leaves the capture an untested change that
reset moves back. A human edit of the field after the capture wins over both.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from feedbackctl.authority import acts, cas
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.history import fill_baselines, load_histories, parse_scalar
from feedbackctl.authority.runid import run_id
from feedbackctl.authority.snapshot import load_snapshot
from feedbackctl.authority.writer import Plan, Staging, change_subject, trailer
from feedbackctl.core.models import Scalar
from feedbackctl.core.results import Report, ResetResult
from feedbackctl.core.risk import Change, classify
from feedbackctl.errors import ConflictError, FeedbackError
from feedbackctl.patterns.inputs import Problem


def tested_value(baseline: Scalar, verdict: acts.Verdict | None) -> tuple[Scalar, str]:
    """The value reset aims for, and why: a kept capture replaces the baseline it departed from."""
    if (
        verdict is not None
        and verdict.verdict == "keep"
        and baseline is not None
        and acts.text(baseline) == verdict.old
    ):
        value = parse_scalar(verdict.new)
        return value, f"baseline {value} (drift capture kept by review {verdict.sha[:10]})"
    return baseline, f"baseline {baseline} (last set by a human)"


@dataclass(frozen=True)
class Selection:
    claims: str = "*"  # fnmatch glob over claim names
    fields: tuple[str, ...] = ()  # empty: every tuned field


def reset(
    repo: GitRepo,
    ref: str | None,
    selection: Selection,
    now: datetime,
    *,
    dry_run: bool,
    run: str | None = None,
) -> Report:
    """One commit per field put back; ``run`` is their Feedback-Run (default: this invocation's)."""
    run = run or run_id()

    def attempt(_: int) -> Report | cas.Moved:
        snapshot = load_snapshot(repo, ref)
        policy = snapshot.settings.policy
        claims = [c for c in snapshot.claims if fnmatch.fnmatchcase(c.name, selection.claims)]
        fields = selection.fields or policy.tuned_fields
        report = Report("reset", now, snapshot.branch, snapshot.commit, dry_run=dry_run)
        report.problems.extend(Problem.of(e) for e in snapshot.errors)
        histories = fill_baselines(
            repo, snapshot.commit, claims, load_histories(repo, snapshot.commit, claims, policy, now)
        )
        kept = acts.review_verdicts(repo, snapshot.commit)
        rows: list[dict[str, Any]] = []
        base = snapshot.commit
        head = base
        for claim in claims:
            for name in fields:
                current = claim.value(name)
                baseline = histories.for_claim(claim.name).get(name)
                verdict = kept.get((claim.name, name))
                target, why = tested_value(baseline.baseline if baseline else None, verdict)
                if current is None or target is None or target == current:
                    continue
                risk = classify([Change(claim.name, name, claim.is_production)], policy.risk)
                rows.append(
                    {
                        "claim": claim.name,
                        "field": f"spec.{name}",
                        "from": current,
                        "to": target,
                        "risk": risk.level,
                    }
                )
                if dry_run:
                    continue
                staging = Staging(repo, head)
                try:
                    staging.set_value(claim, name, target)
                except FeedbackError as e:
                    report.problems.append(Problem(claim.name, str(e)))
                    rows.pop()
                    continue
                plan = Plan(
                    subject=change_subject("reset", claim.name, name, current, target) + " (baseline)",
                    trailers=[
                        trailer(
                            "reset",
                            claim.name,
                            name,
                            old=current,
                            new=target,
                            risk=risk.level,
                            evidence=why,
                            tags=["tested-baseline"],
                            run=run,
                        )
                    ],
                    edits=staging.edits(),
                )
                head = repo.write_commit(head, plan.edits, plan.message, now)
                report.commits.append({"sha": head, "branch": snapshot.branch, "subject": plan.subject})
        report.result = ResetResult(rows)
        if dry_run or head == base:
            return report
        try:
            repo.advance(snapshot.branch, head, base)
        except ConflictError:
            return cas.MOVED
        return report

    return cas.retry(attempt)
