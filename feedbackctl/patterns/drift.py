"""Pattern 3, drift capture: live state that differs from git is captured, never fought.

``drift`` compares the observed live values of each claim with the claim at
the authority ref. In capture mode (the default) every difference becomes one
commit that sets the claim to the live value, tagged ``break-glass`` and
``requires-review`` (and ``out-of-bounds`` when reality is outside the
human-written bounds or the schema: reality wins, a human reviews it). The
captured value starts the field's settling window like any other change, so
auto-tune never reverts it while it settles.

Two things are deliberately *not* drift: a field the claim does not set (git
claims no authority over it, as in Argo CD's diff), and a live value equal to
what git held just before a recent change (the change is still rolling out;
``drift.syncGraceMinutes``, default 15).

The comparison (``compare``, ``hold_pending_sync``) is pure and lives in
core/drift.py; ``drift`` here is the shell: it reads git and the live
source, writes the commits (one chain, one compare-and-swap), optionally
pushes with a lease, and notifies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from feedbackctl.authority import cas
from feedbackctl.authority.config import CONFIG_FILE
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.history import (
    ValueMemo,
    _trailer_events,
    _value_events,
    claim_files,
    claim_values,
    read_log,
)
from feedbackctl.authority.runid import run_id
from feedbackctl.authority.shard import ALL, Shard
from feedbackctl.authority.snapshot import Snapshot, load_snapshot
from feedbackctl.authority.writer import Plan, Staging, change_subject, trailer
from feedbackctl.core.drift import (
    KIND,
    DriftResult,
    Finding,
    IgnoreRule,
    Status,
    coerce,
    compare,
    hold_pending_sync,
    same,
)
from feedbackctl.core.models import FieldChange
from feedbackctl.core.policy import PolicyError
from feedbackctl.core.results import Problem, Report
from feedbackctl.errors import ClaimError, ConflictError, FeedbackError, UsageError
from feedbackctl.notify import post_event
from feedbackctl.patterns.staging import never_ran
from feedbackctl.sources.live import (
    LIVE_POLICY_FILE,
    LivePolicy,
    LiveState,
    load_live_policy,
    needs_policy,
    open_live,
)

DEFAULT_SYNC_GRACE_MINUTES = 15


def parse_ignore(rules: Sequence[str]) -> tuple[IgnoreRule, ...]:
    out = []
    for raw in rules:
        text = raw.strip()
        claim, _, field_name = text.rpartition(":") if ":" in text else ("*", "", text)
        field_name = field_name.strip().removeprefix("spec.")
        if not field_name or not claim.strip():
            raise PolicyError(
                f"{CONFIG_FILE}: drift.ignore: '{raw}' is not FIELD or CLAIM:FIELD "
                "(e.g. spec.lambdaTimeout or messagewall-dev:spec.region); fix the file"
            )
        out.append(IgnoreRule(claim.strip(), field_name))
    return tuple(out)


def sync_grace_minutes(extra: Mapping[str, Any]) -> int:
    drift = extra.get("drift") or {}
    value = drift.get("syncGraceMinutes", DEFAULT_SYNC_GRACE_MINUTES) if isinstance(drift, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PolicyError(
            f"{CONFIG_FILE}: drift.syncGraceMinutes: expected a whole number >= 0, got {value!r}"
        )
    return value


# --- the shell ---------------------------------------------------------------------


@dataclass(frozen=True)
class DriftRequest:
    live: str
    mode: str = "capture"  # capture | report
    branch: str | None = None  # capture to this review branch instead of the authority branch
    webhook: str | None = None
    push: bool = False
    dry_run: bool = False
    shard: Shard = ALL  # only the claims of this hash partition (live entries of others are skipped)
    run: str = field(default_factory=run_id)  # Feedback-Run of every capture (authority/runid.py)


def _recent_changes(
    snapshot: Snapshot, findings: Sequence[Finding], since: datetime
) -> dict[tuple[str, str], FieldChange]:
    """The newest change of each drifted field inside the grace window (one log pass)."""
    drifted = [f for f in findings if f.status == Status.DRIFT]
    if not drifted:
        return {}
    names = {f.claim for f in drifted}
    claims = [c for c in snapshot.claims if c.name in names]
    fields = sorted({f.field for f in drifted})
    commits = list(reversed(read_log(snapshot.repo, snapshot.commit, since=since)))
    memo = ValueMemo(claim_values, claims)
    events = _trailer_events(commits) + _value_events(
        snapshot.repo, commits, claim_files(claims), fields, memo
    )
    events.sort(key=lambda e: e[2].at)
    return {(claim, f): change for claim, f, change in events if change.old != change.new}


def _in_shard(state: LiveState, shard: Shard) -> LiveState:
    """The live entries of the shard's claims: other shards report their own (and unknown names)."""
    if shard.count == 1:
        return state
    return replace(
        state,
        observed={k: v for k, v in state.observed.items() if k in shard},
        problems={k: v for k, v in state.problems.items() if k in shard},
    )


def _observe(snapshot: Snapshot, spec: str) -> LiveState:
    override = None
    if needs_policy(spec):
        path = f"{snapshot.settings.config.policies_dir}/{LIVE_POLICY_FILE}"
        text = snapshot.read(path)
        override = (path, text) if text is not None else None
    policy = load_live_policy(override) if needs_policy(spec) else LivePolicy()
    return open_live(spec, policy).observe(snapshot.claims)


def _local_sha(repo: GitRepo, branch: str) -> str | None:
    name = repo.ref_name(branch)
    return repo.list_refs(name).get(name)


def _remote_of(repo: GitRepo, branch: str) -> str:
    remotes = repo.remotes()
    configured = repo.branch_remote(branch)
    remote = configured if configured in remotes else "origin"
    if remote not in remotes:
        raise UsageError(
            f"--push: {repo.display} has no remote 'origin'; add one (git remote add origin URL)"
        )
    return remote


def _sync(repo: GitRepo, remote: str, branch: str) -> str | None:
    """Fetch ``branch``; fast-forward the local one to it. The remote's sha (None: absent)."""
    theirs = repo.fetch(remote, branch)
    if theirs is None:
        return None
    ours = _local_sha(repo, branch)
    if ours is None:
        repo.update_ref(branch, theirs, None)
    elif ours != theirs and repo.is_ancestor(ours, theirs):
        repo.advance(branch, theirs, ours)
    elif ours != theirs and not repo.is_ancestor(theirs, ours):
        raise FeedbackError(
            f"{branch} and {remote}/{branch} have diverged; reconcile them, then rerun — nothing was changed"
        )
    return theirs


def _evidence(f: Finding, source: str, branch: str, commit: str) -> str:
    text = f"observed {f.observed} via {source}; desired {f.desired} at {branch}@{commit[:8]}"
    return text + ("; " + "; ".join(f.out_of_bounds) if f.out_of_bounds else "")


def _plan(f: Finding, source: str, authority: Snapshot, run: str | None = None) -> Plan:
    body = [
        f"Live state ({source}) has spec.{f.field} = {f.observed}; git had {f.desired}.",
        "Captured, not reverted: a break-glass change is recorded in the authority plane",
        "and awaits post-incident review (feedbackctl history --pending-review;",
        "feedbackctl review <commit>).",
    ]
    if f.out_of_bounds:
        body.append("")
        body.append("Outside what humans allowed: " + "; ".join(f.out_of_bounds) + ".")
    return Plan(
        subject=change_subject("capture drift", f.claim, f.field, f.desired, f.observed),
        body="\n".join(body),
        trailers=[
            trailer(
                KIND,
                f.claim,
                f.field,
                old=f.desired,
                new=f.observed,
                source=source,
                risk=f.risk,
                evidence=_evidence(f, source, authority.branch, authority.commit),
                tags=f.tags,
                run=run,
            )
        ],
    )


@dataclass
class _Chain:
    tip: str
    captured: list[Finding]


def _chain(
    repo: GitRepo,
    base: str,
    target: Snapshot,
    authority: Snapshot,
    captures: Sequence[Finding],
    source: str,
    now: datetime,
    problems: list[Problem],
    dry_run: bool,
    run: str | None = None,
) -> _Chain:
    """One commit per capture, each on the previous, built off to the side."""
    staging = Staging(repo, base)
    tip = base
    done: list[Finding] = []
    for f in captures:
        claim = target.claim(f.claim)
        if claim is None:
            problems.append(Problem(f.claim, f"{f.claim}: not found on {target.branch}; capture it by hand"))
            continue
        try:
            path = staging.set_value(claim, f.field, f.observed)
        except ClaimError as e:
            problems.append(Problem(f.claim, f"{f.claim}: cannot capture spec.{f.field}: {e.message}"))
            continue
        except FeedbackError as e:
            problems.append(Problem(f.claim, f"{f.claim}: cannot capture spec.{f.field}: {e}"))
            continue
        if dry_run:
            done.append(replace(f, status=Status.WOULD_CAPTURE, commit="(dry-run)"))
            continue
        plan = _plan(f, source, authority, run)
        # Each commit sits on the previous one, so only the file just edited changes.
        tip = repo.write_commit(tip, {path: staging.text(path).encode("utf-8")}, plan.message, now)
        done.append(replace(f, status=Status.CAPTURED, commit=tip))
    return _Chain(tip, done)


def _event(
    f: Finding, repo: GitRepo, branch: str, authority: str, source: str, now: datetime
) -> dict[str, Any]:
    return {
        "event": KIND,
        "at": now.isoformat().replace("+00:00", "Z"),
        "repo": repo.display,
        "branch": branch,
        "authority": authority,
        "commit": f.commit,
        "claim": f.claim,
        "field": f"spec.{f.field}",
        "desired": f.desired,
        "observed": f.observed,
        "source": source,
        "risk": f.risk,
        "tags": list(f.tags),
        "outOfBounds": list(f.out_of_bounds),
    }


def _existing_on_target(target: Snapshot, f: Finding) -> bool:
    claim = target.claim(f.claim)
    return claim is not None and same(claim.value(f.field), coerce(claim.value(f.field), f.observed))


def _move(repo: GitRepo, branch: str, new: str, old: str | None) -> None:
    if old is None:
        repo.update_ref(branch, new, None)
    else:
        repo.advance(branch, new, old)


def drift(repo: GitRepo, ref: str | None, request: DriftRequest, now: datetime) -> Report:
    """Compare live state with git; capture (or report) every difference."""
    if request.mode not in ("capture", "report"):
        raise UsageError(f"--mode {request.mode}: expected capture or report")
    state: LiveState | None = None
    writing = request.mode == "capture" and not request.dry_run

    def attempt(_: int) -> Report | cas.Moved:
        nonlocal state
        remote = remote_authority = None
        if request.push and writing:
            branch = ref or repo.default_ref()
            remote = _remote_of(repo, branch)
            remote_authority = _sync(repo, remote, branch)
        authority = load_snapshot(repo, ref).restrict(request.shard)
        settings = authority.settings
        ignore = parse_ignore(settings.config.drift_ignore)
        grace = sync_grace_minutes(settings.config.extra)
        if state is None:
            state = _in_shard(_observe(authority, request.live), request.shard)
        broken = frozenset(e.claim for e in authority.errors if isinstance(e, ClaimError))
        result = compare(authority.claims, state, settings.policy, ignore, broken)
        findings = result.findings
        if grace > 0:
            recent = _recent_changes(authority, findings, now - timedelta(minutes=grace))
            findings = hold_pending_sync(findings, recent, now, grace)
        drifted = [(f.claim, f.field, f.observed) for f in findings if f.status == Status.DRIFT]
        untested = never_ran(authority, drifted, now)
        findings = [replace(f, untested=True) if (f.claim, f.field) in untested else f for f in findings]
        problems = [Problem.of(e) for e in authority.errors] + result.problems
        target_branch = request.branch or authority.branch
        report = Report(
            "drift", now, authority.branch, authority.commit, problems=problems, dry_run=request.dry_run
        )
        shown = DriftResult(request.mode, state.source, target_branch, result.in_sync)
        report.result = shown
        captures = [f for f in findings if f.status == Status.DRIFT]
        if request.mode == "report" or not captures:
            shown.findings = findings
            return report
        if _local_sha(repo, authority.branch) is None:
            raise UsageError(
                f"--ref {authority.branch} is not a branch; captures are commits on a branch "
                "(use --mode report to compare with a tag or commit)"
            )

        target, base = authority, authority.commit
        remote_target = remote_authority
        if remote is not None and target_branch != authority.branch:
            remote_target = _sync(repo, remote, target_branch)
        local_target = _local_sha(repo, target_branch)
        if target_branch != authority.branch and local_target is not None:
            target = load_snapshot(repo, target_branch)
            base = target.commit
            already = [f for f in captures if _existing_on_target(target, f)]
            findings = [
                replace(f, status=Status.ALREADY_CAPTURED, detail=f"on {target_branch}, awaiting review")
                if f in already
                else f
                for f in findings
            ]
            captures = [f for f in captures if f not in already]
        chain = _chain(
            repo, base, target, authority, captures, state.source, now, report.problems, request.dry_run,
            request.run,
        )
        done = {(f.claim, f.field): f for f in chain.captured}
        findings = [done.get((f.claim, f.field), f) for f in findings]
        shown.findings = findings
        if request.dry_run or not chain.captured:
            return report
        if remote is None:
            try:
                _move(repo, target_branch, chain.tip, local_target)
            except ConflictError as e:
                return cas.Moved(e)  # the branch moved: re-read, re-evaluate, retry
        else:
            if not repo.push(remote, target_branch, chain.tip, remote_target):
                return cas.MOVED  # the remote moved: fetch, re-evaluate, retry
            try:
                _move(repo, target_branch, chain.tip, local_target)
            except FeedbackError as e:
                report.problems.append(
                    Problem(
                        "",
                        f"pushed to {remote}/{target_branch}, but the local branch was not "
                        f"updated ({e}); the next --push run fast-forwards it",
                    )
                )
        report.commits.extend(
            {"sha": f.commit, "branch": target_branch, "subject": _plan(f, state.source, authority).subject}
            for f in chain.captured
        )
        for f in chain.captured:
            report.events.append(
                _notify(request, report, _event(f, repo, target_branch, authority.branch, state.source, now))
            )
        return report

    # The last refusal says why (a lock a killed git left is not a branch that moves).
    return cas.retry(attempt)


def _notify(request: DriftRequest, report: Report, event: dict[str, Any]) -> dict[str, Any]:
    """POST the event; a failure is reported, and the capture stays committed."""
    if not request.webhook:
        return event
    error = post_event(request.webhook, event)
    notify: dict[str, Any] = {"webhook": request.webhook, "status": "failed" if error else "sent"}
    if error:
        notify["error"] = error
        report.problems.append(
            Problem(
                str(event["claim"]),
                f"{event['claim']}: webhook notification failed ({error}); the capture "
                f"{str(event['commit'])[:10]} is committed — tell the operators by hand",
            )
        )
    return {**event, "notify": notify}
