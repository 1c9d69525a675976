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

The comparison (``compare``, ``hold_pending_sync``) is pure; ``drift`` is the
shell: it reads git and the live source, writes the commits (one chain, one
compare-and-swap), optionally pushes with a lease, and notifies.
"""

from __future__ import annotations

import fnmatch
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
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
from feedbackctl.authority.writer import Plan, Staging, trailer
from feedbackctl.core.models import Claim, FieldChange, Scalar
from feedbackctl.core.policy import Policy, PolicyError
from feedbackctl.core.risk import Change, classify
from feedbackctl.core.tuning import parse_autotune
from feedbackctl.core.validation import UNTESTED
from feedbackctl.errors import ClaimError, ConflictError, FeedbackError, UsageError
from feedbackctl.notify import post_event
from feedbackctl.patterns.inputs import Problem
from feedbackctl.patterns.staging import never_ran
from feedbackctl.render import Report
from feedbackctl.sources.live import (
    LIVE_POLICY_FILE,
    LivePolicy,
    LiveState,
    load_live_policy,
    needs_policy,
    open_live,
)

KIND = "drift-capture"
TAGS = ("break-glass", "requires-review")
OUT_OF_BOUNDS = "out-of-bounds"
DEFAULT_SYNC_GRACE_MINUTES = 15


class Status(StrEnum):
    DRIFT = "drift"  # differs; report mode
    CAPTURED = "captured"
    WOULD_CAPTURE = "would-capture"  # --dry-run
    ALREADY_CAPTURED = "already-captured"  # --branch: the review branch already holds it
    PENDING_SYNC = "pending-sync"  # git changed it moments ago; live still shows the old value
    IGNORED = "ignored"  # drift.ignore
    UNMANAGED = "unmanaged"  # the claim does not set the field


@dataclass(frozen=True)
class Finding:
    claim: str
    field: str
    desired: Scalar  # the claim at the authority ref
    observed: Scalar  # the live value (in the claim's type when that is lossless)
    status: Status
    out_of_bounds: tuple[str, ...] = ()
    risk: str | None = None
    commit: str | None = None
    detail: str = ""
    untested: bool = False  # a later stage's value its earlier stage never ran (docs/validation.md)

    @property
    def tags(self) -> tuple[str, ...]:
        extra = ((OUT_OF_BOUNDS,) if self.out_of_bounds else ()) + ((UNTESTED,) if self.untested else ())
        return TAGS + extra


# --- ignore rules (Argo CD's ignoreDifferences, by claim and field) ----------


@dataclass(frozen=True)
class IgnoreRule:
    """``spec.lambdaTimeout`` (every claim) or ``messagewall-dev:spec.region``; globs allowed."""

    claim: str
    field: str

    def matches(self, claim: str, field_name: str) -> bool:
        return fnmatch.fnmatchcase(claim, self.claim) and fnmatch.fnmatchcase(field_name, self.field)


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


# --- the pure comparison ----------------------------------------------------------


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def coerce(current: Scalar, observed: Scalar) -> Scalar:
    """The live value in the claim's type when that loses nothing (60.0 -> 60, 123 -> "123")."""
    if isinstance(current, bool) or observed is None or isinstance(observed, bool):
        return observed
    if isinstance(current, int) and isinstance(observed, float) and observed.is_integer():
        return int(observed)
    if _is_number(current) and isinstance(observed, str):
        for cast in (int, float):
            try:
                number = cast(observed.strip())
            except ValueError:
                continue
            return number if str(number) == observed.strip() else observed
    if isinstance(current, str) and _is_number(observed):
        return str(observed)
    return observed


def same(current: Scalar, observed: Scalar) -> bool:
    if isinstance(current, bool) or isinstance(observed, bool):
        return type(current) is type(observed) and current == observed
    if _is_number(current) and _is_number(observed):
        return float(current) == float(observed)  # type: ignore[arg-type]
    return current == observed


def out_of_bounds(claim: Claim, field_name: str, value: Scalar, policy: Policy) -> tuple[str, ...]:
    """Why a live value is outside what humans allowed (it is captured anyway)."""
    reasons = []
    current = claim.value(field_name)
    if _is_number(current) and not _is_number(value):
        reasons.append(f"{value!r} is not a number, as the schema requires")
    if isinstance(current, int) and not isinstance(current, bool) and isinstance(value, float):
        reasons.append(f"{value!r} is not a whole number")
    fp = policy.fields.get(field_name)
    if fp is not None and _is_number(value) and not fp.min <= float(value) <= fp.max:  # type: ignore[arg-type]
        reasons.append(f"outside the schema range {fp.min:g}-{fp.max:g}")
    try:
        bounds = parse_autotune(claim).bounds.get(field_name)
    except ClaimError:
        bounds = None
    if bounds is not None and _is_number(value) and not bounds.min <= float(value) <= bounds.max:  # type: ignore[arg-type]
        reasons.append(f"outside the autoTune bounds {bounds.min:g}-{bounds.max:g}")
    return tuple(reasons)


@dataclass(frozen=True)
class Comparison:
    findings: list[Finding]
    problems: list[Problem]
    in_sync: int


def unsafe_live_text(text: str) -> str | None:
    """What makes ``text`` unfit for a claim value and a commit trailer, or None.

    Control characters (NUL, newline, CR, escape...) and the Unicode line and
    paragraph separators would be dropped or folded on the way into
    ``Feedback-To``, so the commit would no longer say what was captured.
    """
    for i, ch in enumerate(text):
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            return f"a control character (U+{ord(ch):04X} at position {i + 1})"
    return None


def _shown(value: Scalar) -> str:
    """A live value as one printable line (non-printables escaped), cut to a sane length."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def compare(
    claims: Sequence[Claim],
    state: LiveState,
    policy: Policy,
    ignore: Sequence[IgnoreRule] = (),
    broken: frozenset[str] = frozenset(),
) -> Comparison:
    """Every observed field against git: differences, ignored, unmanaged, and problems.

    ``broken`` names claims that exist but could not be parsed (already reported).
    """
    by_name = {c.name: c for c in claims}
    problems = [Problem(name, msg) for name, msgs in sorted(state.problems.items()) for msg in msgs]
    findings: list[Finding] = []
    in_sync = 0
    for name in sorted(state.observed):
        claim = by_name.get(name)
        if claim is None:
            if name not in broken:
                problems.append(
                    Problem(
                        name,
                        f"{name}: the live state names a claim that is not in the repo; "
                        "fix the name or drop it from the live state",
                    )
                )
            continue
        for field_name, raw in sorted(state.observed[name].items()):
            bad_key = unsafe_live_text(field_name)
            unsafe = bad_key or (unsafe_live_text(raw) if isinstance(raw, str) else None)
            if unsafe:
                # The value would go into a claim file and a commit trailer verbatim.
                key = _shown(field_name) if bad_key else field_name
                problems.append(
                    Problem(
                        name,
                        f"{name}: live spec.{key} = {_shown(raw)} holds {unsafe}; "
                        "refusing to capture it (fix the live value)",
                    )
                )
                continue
            desired = claim.value(field_name)
            if any(rule.matches(name, field_name) for rule in ignore):
                findings.append(
                    Finding(name, field_name, desired, raw, Status.IGNORED, detail="drift.ignore")
                )
                continue
            if f"spec.{field_name}" not in claim.locations:
                if field_name in claim.spec:
                    problems.append(
                        Problem(
                            name,
                            f"{name}: spec.{field_name} is not a single value in {claim.path}; "
                            "live state can only be captured into a scalar field",
                        )
                    )
                else:
                    findings.append(
                        Finding(
                            name,
                            field_name,
                            None,
                            raw,
                            Status.UNMANAGED,
                            detail=f"{claim.path} does not set spec.{field_name}: git claims no authority",
                        )
                    )
                continue
            observed = coerce(desired, raw)
            if same(desired, observed):
                in_sync += 1
                continue
            risk = classify([Change(name, field_name, claim.is_production)], policy.risk).level
            findings.append(
                Finding(
                    name,
                    field_name,
                    desired,
                    observed,
                    Status.DRIFT,
                    out_of_bounds=out_of_bounds(claim, field_name, observed, policy),
                    risk=risk,
                )
            )
    return Comparison(findings, problems, in_sync)


def hold_pending_sync(
    findings: Sequence[Finding],
    recent: Mapping[tuple[str, str], FieldChange],
    now: datetime,
    grace_minutes: int,
) -> list[Finding]:
    """A live value that equals what git held before a change made moments ago is a rollout, not drift."""
    out = []
    for f in findings:
        last = recent.get((f.claim, f.field))
        if (
            f.status == Status.DRIFT
            and last is not None
            and now - last.at < timedelta(minutes=grace_minutes)
            and same(coerce(last.old, f.observed), last.old)
        ):
            who = "a human" if last.kind == "human" else last.kind
            f = replace(
                f,
                status=Status.PENDING_SYNC,
                detail=(
                    f"{who} changed it {(now - last.at).total_seconds() / 60:.0f}m ago ({last.commit[:8]}); "
                    f"live still shows the old value, waiting {grace_minutes}m for it to roll out"
                ),
            )
        out.append(f)
    return out


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
        subject=f"feedbackctl: capture drift {f.claim} spec.{f.field} {f.desired} -> {f.observed}",
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


def finding_json(f: Finding) -> dict[str, Any]:
    return {
        "claim": f.claim,
        "field": f"spec.{f.field}",
        "desired": f.desired,
        "observed": f.observed,
        "status": f.status.value,
        "outOfBounds": list(f.out_of_bounds),
        "untested": f.untested,
        "risk": f.risk,
        "commit": f.commit,
        "detail": f.detail,
    }


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
        report.extra.update(
            {"mode": request.mode, "source": state.source, "target": target_branch, "inSync": result.in_sync}
        )
        captures = [f for f in findings if f.status == Status.DRIFT]
        if request.mode == "report" or not captures:
            report.extra["drift"] = [finding_json(f) for f in findings]
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
        report.extra["drift"] = [finding_json(f) for f in findings]
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
