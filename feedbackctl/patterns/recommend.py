"""Pattern 4, the recommendation sidecar: ``analyze`` and ``recommendations``.

``analyze`` reports what the signals say about every tuned field. With
``--write`` it commits one ``ConfigurationRecommendation`` document per claim
beside the claim (advisory; the claim itself is never touched). The file is
only rewritten when a recommendation materially changes (field, current,
recommended or rule), so cron runs on drifting metrics do not churn commits,
and a human's dismiss/accept status survives regeneration.

``recommendations dismiss|accept`` are a person's acts: they go to the remote
authority branch like reject and ack (``authority.acts``; docs/propose.md,
"Remotes").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from feedbackctl.authority import acts, cas
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.recommendation_record import (
    PENDING,
    proposer_id,
    render_sidecar,
    sidecar_entries,
    sidecar_path,
)
from feedbackctl.authority.shard import ALL, Shard
from feedbackctl.authority.snapshot import Snapshot, branch_of, load_snapshot
from feedbackctl.authority.writer import Plan, Staging, commit_plan, decision_trailer, trailer
from feedbackctl.core.decide import recommend
from feedbackctl.core.guards import guardrail_fields
from feedbackctl.core.models import Claim, Decision, Outcome
from feedbackctl.core.results import Report
from feedbackctl.errors import ClaimError, ConflictError, FeedbackError, UsageError
from feedbackctl.patterns import analyzecache
from feedbackctl.patterns.batches import long_lived, open_stream, whole_run
from feedbackctl.patterns.inputs import (
    Gathered,
    Problem,
    add_baselines,
    metric_source,
    needed_metrics,
)
from feedbackctl.patterns.packed import PackedDecisions
from feedbackctl.patterns.proposal_acts import human_identity, ident_text, outside_bounds, policy_check
from feedbackctl.sources.fixtures import FixtureSource


def _entry(d: Decision, status: str) -> dict[str, Any]:
    return {
        "field": d.field,
        "currentValue": d.current,
        "recommendedValue": d.recommended,
        "confidence": d.confidence,
        "rule": d.rule,
        "risk": d.risk,
        "evidence": [
            {
                "type": "metric",
                "source": d.source,
                "metric": e.metric,
                "statistic": e.statistic,
                "period": f"{e.window_minutes}m",
                "points": e.points,
                "summary": e.summary,
            }
            for e in d.evidence
        ],
        "status": status,
    }


def _material(entry: Mapping[str, Any]) -> tuple[Any, ...]:
    return (entry.get("field"), entry.get("currentValue"), entry.get("recommendedValue"), entry.get("rule"))


def actionable(decisions: Iterable[Decision]) -> list[Decision]:
    return [d for d in decisions if d.outcome in (Outcome.CHANGE, Outcome.PROPOSE) and d.changes_value]


def _plan_sidecars(snapshot: Snapshot, decisions: Iterable[Decision], problems: list[Problem]) -> Plan:
    by_claim: dict[str, list[Decision]] = {}
    for d in actionable(decisions):
        by_claim.setdefault(d.claim, []).append(d)
    plan = Plan(subject="")
    staging = Staging(snapshot.repo, snapshot.commit)
    for name, recs in sorted(by_claim.items()):
        claim = snapshot.claim(name)
        assert claim is not None
        path = sidecar_path(snapshot, claim)
        try:
            every = sidecar_entries(snapshot.read(path), path)
        except UsageError as e:
            # One unusable sidecar (or a claim file sitting at its path) is that claim's problem.
            problems.append(Problem(name, str(e)))
            continue
        # Entries from outside agents (feedbackctl observe) are theirs: kept as they are.
        from_agents = [e for e in every if proposer_id(e) is not None]
        old_entries = {e.get("field"): e for e in every if proposer_id(e) is None}
        new_entries = []
        changed = []
        for d in sorted(recs, key=lambda d: d.field):
            old = old_entries.get(d.field)
            if old is not None and _material(old) == _material(_entry(d, PENDING)):
                new_entries.append(old)
                continue
            status = (
                old.get("status", PENDING)
                if old and old.get("recommendedValue") == d.recommended
                else PENDING
            )
            new_entries.append(_entry(d, status))
            changed.append(d)
        if not changed and len(new_entries) == len(old_entries):
            continue
        staging.put(path, render_sidecar(claim, new_entries + from_agents))
        for d in changed:
            plan.trailers.append(decision_trailer("recommendation", d))
    plan.edits = staging.edits()
    n = len(plan.trailers)
    plan.subject = f"feedbackctl: {n} recommendation{'s' if n != 1 else ''} for review"
    return plan


def _recommend_batch(
    snapshot: Snapshot, part: Gathered, now: datetime, problems: list[Problem]
) -> list[Decision]:
    """One batch's decisions, with the baselines of the fields a guardrail is relative to.

    Baselines are looked up only for the claims where a change is recommended (a
    guardrail might otherwise wave one through on a tuned value); only those
    claims are decided again.
    """
    policy = snapshot.settings.policy
    results: list[list[Decision] | ClaimError] = []
    wanted: set[tuple[str, str]] = set()
    for inputs in part.inputs:
        try:
            decisions = recommend(inputs, policy, now, part.source)
        except ClaimError as e:
            results.append(e)
            continue
        results.append(decisions)
        for d in decisions:
            if d.outcome == Outcome.CHANGE and d.direction is not None:
                wanted |= {(d.claim, f) for f in guardrail_fields(policy, d.direction)}
    if wanted:
        add_baselines(snapshot, part, wanted)
        again = {claim for claim, _ in wanted}
        for k, inputs in enumerate(part.inputs):
            if inputs.claim.name in again:
                try:
                    results[k] = recommend(inputs, policy, now, part.source)
                except ClaimError as e:
                    results[k] = e
    out: list[Decision] = []
    for inputs, result in zip(part.inputs, results, strict=True):
        if isinstance(result, ClaimError):
            problems.append(Problem.of(result, inputs.claim))
        else:
            out.extend(result)
    return out


def _answer(snapshot: Snapshot, metrics: str | None, now: datetime) -> analyzecache.Answer:
    with long_lived():  # the claims' histories
        stream = open_stream(snapshot, metrics, now)
    # Packed as each batch is decided: a fleet's decisions never sit in memory as objects.
    decisions = PackedDecisions()
    decided: list[Problem] = []
    for part in stream.batches(now):
        decisions.extend(_recommend_batch(snapshot, part, now, decided))
        del part  # before the next batch is read
    return analyzecache.Answer(decisions, stream.problems + decided, stream.warnings, stream.metrics_cost)


def _answer_key(
    snapshot: Snapshot, metrics: str | None, now: datetime, shard: Shard
) -> analyzecache.Key | None:
    """The inputs' fingerprint; None where they cannot be fingerprinted (CloudWatch)."""
    source = metric_source(snapshot, metrics)
    if not isinstance(source, FixtureSource):
        return None
    parts = [snapshot.commit, snapshot.branch, now.isoformat(), repr(shard), source.display, str(source.root)]
    names = [c.name for c in snapshot.claims]
    return analyzecache.key_of(parts, str(source.root), names, needed_metrics(snapshot.settings.policy))


def analyze(
    repo: GitRepo,
    ref: str | None,
    metrics: str | None,
    now: datetime,
    *,
    write_sidecars: bool,
    dry_run: bool,
    shard: Shard = ALL,
) -> Report:
    def attempt(_: int) -> Report | cas.Moved:
        with long_lived():
            snapshot = load_snapshot(repo, ref).restrict(shard)
        key = _answer_key(snapshot, metrics, now, shard)
        answer = analyzecache.load(repo.git_dir, key) if key is not None else None
        if answer is None:
            answer = _answer(snapshot, metrics, now)
            if key is not None:
                analyzecache.save(repo.git_dir, key, answer)
        report = Report(
            "analyze",
            now,
            snapshot.branch,
            snapshot.commit,
            # Packed: read as a sequence (length, slices, iteration), never whole in memory.
            decisions=answer.decisions,
            problems=list(answer.problems),
            warnings=answer.warnings,
            dry_run=dry_run,
        )
        report.metrics_cost = answer.metrics_cost
        if not write_sidecars:
            return report
        plan = _plan_sidecars(snapshot, report.decisions, report.problems)
        if not plan.edits:
            return report
        if commit_plan(repo, snapshot.branch, snapshot.commit, plan, now, report.commits, dry_run=dry_run):
            return report
        return cas.Moved(where=snapshot.branch)

    with whole_run():
        return cas.retry(attempt)


@dataclass(frozen=True)
class StatusChange:
    claim: str
    field: str
    status: str  # dismissed | accepted
    proposer: str | None = None  # an agent's id; None: the rule-based entry (or the only one)


def _pick(entries: list[dict[str, Any]], change: StatusChange, path: str) -> dict[str, Any] | None:
    mine = [e for e in entries if e.get("field") == change.field]
    if change.proposer is not None:
        return next((e for e in mine if proposer_id(e) == change.proposer), None)
    own = next((e for e in mine if proposer_id(e) is None), None)
    if own is not None or len(mine) <= 1:
        return own or (mine[0] if mine else None)
    agents = ", ".join(sorted(str(proposer_id(e)) for e in mine))
    raise UsageError(
        f"{path}: {len(mine)} agents recommend {change.field} of {change.claim} ({agents}); "
        "pass --proposer ID"
    )


def _entries(snapshot: Snapshot, path: str) -> list[dict[str, Any]]:
    return sidecar_entries(snapshot.read(path), path)


def _in_order(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """As ``analyze --write`` lays a sidecar out: the tool's entries by field, then the agents'."""
    return sorted(
        entries, key=lambda e: (proposer_id(e) is not None, "" if proposer_id(e) else e.get("field"))
    )


def _acted_sidecar(
    target: Snapshot, local: Snapshot, claim: Claim, change: StatusChange, where: str
) -> tuple[str, list[dict[str, Any]], dict[str, Any], bool]:
    """(path, the sidecar's new entries, the entry acted on, whether ``target`` says so already).

    ``target`` is the remote's tip when the act goes to a remote. A recommendation
    that ``analyze --write`` committed only here is carried into the sidecar there;
    the other entries stay as the remote has them (another clone's decisions
    included). When both have it, they must recommend the same change.
    """
    path = sidecar_path(target, claim)
    entries = _entries(target, path)
    there = _pick(entries, change, path)
    mine = there
    local_claim = local.claim(change.claim) if local.commit != target.commit else None
    if local_claim is not None:
        local_path = sidecar_path(local, local_claim)
        mine = _pick(_entries(local, local_path), change, local_path) or there
    if mine is None:
        raise UsageError(
            f"{path}: no recommendation for {change.field} of {change.claim}; "
            "run feedbackctl analyze --write first"
        )
    if there is not None and _material(there) != _material(mine):
        raise FeedbackError(
            f"{path}: {where} recommends {change.field} {there.get('currentValue')} -> "
            f"{there.get('recommendedValue')}, this clone {mine.get('currentValue')} -> "
            f"{mine.get('recommendedValue')}; bring them together (git pull or git push) and rerun"
        )
    acted = {**(there or mine), "status": change.status}
    if there is None:
        return path, _in_order([*entries, acted]), acted, False
    return path, [acted if e is there else e for e in entries], acted, there.get("status") == change.status


def _act_trailer(kind: str, change: StatusChange, entry: Mapping[str, Any]) -> dict[str, str]:
    evidence = entry.get("evidence")
    first = evidence[0] if isinstance(evidence, list) and evidence and isinstance(evidence[0], dict) else {}

    def text(key: str, doc: Mapping[str, Any]) -> str | None:
        value = doc.get(key)
        return value if isinstance(value, str) and value else None

    return trailer(
        kind,
        change.claim,
        change.field,
        old=entry.get("currentValue"),
        new=entry.get("recommendedValue"),
        source=text("source", first),
        rule=text("rule", entry),
        risk=text("risk", entry),
    )


def set_status(
    repo: GitRepo,
    ref: str | None,
    change: StatusChange,
    now: datetime,
    *,
    dry_run: bool,
    reason: str = "",
    remote: str | None = None,
) -> Report:
    """Dismiss or accept one recommendation; accept also applies it to the claim.

    Both are a person's acts on the authority branch, and go where the other
    acts go (docs/propose.md, "Remotes"): to ``remote``, else the branch's
    upstream, built on the remote's tip and pushed with a lease; refused when
    the repo has remotes but the branch tracks none; here when it has none.
    Accept applies a value as approve does: inside the claim's autoTune bounds,
    through the schema and the policy, and only while the claim still holds
    the value the recommendation started from.
    """
    kind = "dismiss" if change.status == "dismissed" else "accept"
    who = human_identity(repo)  # a person decides: the commit is theirs
    target = acts.act_remote(
        repo, branch_of(repo, ref), remote, "dismissal" if kind == "dismiss" else "acceptance"
    )

    def attempt(_: int) -> Report | cas.Moved:
        local = load_snapshot(repo, ref)
        # A dry run reads this clone only: it contacts no remote.
        tip = acts.remote_tip(repo, target, local.branch) if target and not dry_run else None
        snapshot = load_snapshot(repo, ref, at=tip.sha) if tip else local
        where = f"{tip.remote}/{local.branch}" if tip else local.branch
        claim = snapshot.claim(change.claim)
        if claim is None:
            hint = (
                "push it first"
                if tip and local.claim(change.claim)
                else "check the name with feedbackctl analyze"
            )
            raise UsageError(f"claim '{change.claim}' not found at {where}; {hint}")
        path, entries, entry, already = _acted_sidecar(snapshot, local, claim, change, where)
        report = Report(f"recommendations {kind}", now, local.branch, snapshot.commit, dry_run=dry_run)
        if already:
            report.events.append({"message": f"{path}: {change.field} is {change.status} at {where} already"})
            return report
        old, new = entry.get("currentValue"), entry.get("recommendedValue")
        staging = Staging(repo, snapshot.commit)
        if kind == "accept":
            _check_accept(snapshot, claim, change, old, new, where)
            staging.set_value(claim, change.field, new)
        staging.put(path, render_sidecar(claim, entries))
        plan = Plan(
            subject=f"feedbackctl: {kind} {change.claim} {change.field} recommendation",
            body=f"{change.status.capitalize()} by {ident_text(who)}: {path}"
            + (f", agent {proposer_id(entry)}" if proposer_id(entry) is not None else "")
            + "."
            + (f"\n\n{reason}" if reason else ""),
            trailers=[_act_trailer(kind, change, entry)],
            edits=staging.edits(),
        )
        if dry_run:
            report.commits.append(acts.commit_entry("(dry-run)", local.branch, plan))
            return report
        try:
            sha, pushed = acts.record(repo, local.branch, local.commit, plan, now, who, tip)
        except ConflictError:
            return cas.MOVED
        report.commits.append(acts.commit_entry(sha, local.branch, plan, pushed))
        if tip is not None and repo.resolve(local.branch) != sha:
            report.events.append(
                {
                    "message": f"{local.branch} here has commits {tip.remote} lacks, so it did not follow; "
                    f"the {kind} is on {tip.remote} ({sha[:10]}): git pull brings it "
                    f"(where {path} conflicts, keep {tip.remote}'s version)"
                }
            )
        return report

    return cas.retry(attempt)


def _check_accept(
    snapshot: Snapshot, claim: Claim, change: StatusChange, old: Any, new: Any, where: str
) -> None:
    """What approve re-checks, for the value accept applies; raises naming the claim field."""
    current = claim.value(change.field)
    if current != old:
        raise FeedbackError(
            f"{change.claim}: spec.{change.field} is {current} at {where} now, "
            f"not {old} as recommended; the recommendation is stale, rerun analyze --write"
        )
    outside = outside_bounds(claim, change.field, new)
    if outside:
        raise FeedbackError(
            f"{change.claim}: {new} is outside the autoTune bounds {outside} of spec.{change.field}; "
            "accept applies values inside them only: widen the bounds (a human edit) or set the value by hand"
        )
    policy_check(snapshot, claim, change.field, new, f"accepting {change.field} {old} -> {new}")
