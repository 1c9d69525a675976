"""``audit verify``: replay the authority branch and prove each feedback commit allowed.

For every commit reachable from the branch (through any parent) that carries
``Feedback-*`` trailers, the claim
and the policy are read *as they were at its parent*, the field's history as
git had it then (with the commit's own date as "now"), and the change is run
through the same guard functions ``autotune`` uses. Metrics are not in git,
so the audit proves what git can prove: schema and bounds, one step, the
baseline cap, cooldowns, settling, rate limits, the risk ceiling, flap
freezes, trailers that match the diff, and that no automated commit touched
the human-authored bounds (a claim's ``autoTune`` block, the policy files or
``.feedbackctl.yaml``). Rules whose evidence is metrics (sustained windows,
guardrails) cannot be re-proved and are not claimed.

``unfreeze`` lives here too: it writes the marker commit that lifts a flap
freeze (``Feedback-Kind: unfreeze``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from feedbackctl.authority import acts, cas
from feedbackctl.authority.commits import Commit
from feedbackctl.authority.config import CONFIG_FILE
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.history import Histories, load_histories
from feedbackctl.authority.replay import Replay
from feedbackctl.authority.snapshot import Snapshot, branch_of, load_snapshot
from feedbackctl.authority.writer import ACKNOWLEDGED_KEY, Plan, trailer
from feedbackctl.core import flap, guards, rules
from feedbackctl.core.models import (
    AUTOMATED_KINDS,
    HUMAN_KINDS,
    MARKER_KINDS,
    Acknowledgement,
    Claim,
    Decision,
    FieldChange,
    FieldHistory,
    FleetHistory,
    Outcome,
    Scalar,
)
from feedbackctl.core.policy import Limits, Policy
from feedbackctl.core.results import JSON_SCHEMA_VERSION, FlapResult, Report
from feedbackctl.core.rules import RuleId
from feedbackctl.core.tuning import parse_autotune
from feedbackctl.errors import ClaimError, ConflictError, FeedbackError, UsageError
from feedbackctl.patterns import staging
from feedbackctl.patterns.inputs import Problem
from feedbackctl.patterns.proposal_acts import human_identity

KIND = "auto-tune"
# What the audit re-proves from git alone, in the order it reports them (core/rules.py).
PROVABLE = rules.PROVABLE
DRIFT_TAGS = ("break-glass", "requires-review")


@dataclass(frozen=True)
class Violation:
    commit: str
    at: datetime
    rule: str
    detail: str
    claim: str | None = None
    field: str | None = None
    kind: str | None = None
    subject: str = ""

    def json(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "subject": self.subject,
            "kind": self.kind,
            "claim": self.claim,
            "field": f"spec.{self.field}" if self.field else None,
            "rule": self.rule,
            "detail": self.detail,
        }


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


# --- reading the branch ------------------------------------------------------


def _text(value: Scalar) -> str:
    """A value as the writer spells it in a trailer."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _scalars(claim: Claim) -> dict[str, Scalar]:
    return {k: v for k, v in claim.spec.items() if v is None or isinstance(v, int | float | str | bool)}


def _number(value: Scalar) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


# --- the checks ---------------------------------------------------------------


class _Check:
    """Checks one commit against its parent; collects violations."""

    def __init__(self, repo: GitRepo, c: Commit, parent: Snapshot, after: Snapshot, subject: str) -> None:
        self.repo = repo
        self.c = c
        self.parent = parent
        self.after = after
        self.subject = subject
        self.found: list[Violation] = []

    def flag(self, rule: str, detail: str, group: Mapping[str, str] | None = None) -> None:
        g = group or {}
        f = g.get("Feedback-Field")
        self.found.append(
            Violation(
                self.c.sha,
                self.c.at,
                rule,
                detail,
                claim=g.get("Feedback-Claim"),
                field=f.removeprefix("spec.") if f else None,
                kind=g.get("Feedback-Kind"),
                subject=self.subject,
            )
        )

    @property
    def kinds(self) -> set[str]:
        return {g.get("Feedback-Kind", "") for g in self.c.changes}

    def bounds_tampering(self) -> None:
        """Bounds are human-authored: only a human-decision kind may change them."""
        if self.kinds <= HUMAN_KINDS:
            return
        policies = self.parent.settings.config.policies_dir
        for p in self.c.paths:
            if p == CONFIG_FILE or p.startswith(f"{policies}/"):
                self.flag(
                    RuleId.BOUNDS_TAMPERING, f"an automated commit changed {p}; policy is human-authored"
                )
        before = {c.name: c for c in self.parent.claims}
        for claim in self.after.claims:
            old = before.get(claim.name)
            if old is not None and old.spec.get("autoTune") != claim.spec.get("autoTune"):
                self.flag(
                    RuleId.BOUNDS_TAMPERING,
                    f"an automated commit changed spec.autoTune of {claim.name} "
                    f"({old.spec.get('autoTune')} -> {claim.spec.get('autoTune')}); "
                    "bounds are human-authored",
                    {"Feedback-Claim": claim.name},
                )

    def diff(self) -> dict[tuple[str, str], tuple[Scalar, Scalar]]:
        """(claim, field) -> (old, new) for every spec scalar the commit changed."""
        before = {c.name: _scalars(c) for c in self.parent.claims}
        after = {c.name: _scalars(c) for c in self.after.claims}
        out: dict[tuple[str, str], tuple[Scalar, Scalar]] = {}
        for name in sorted(set(before) | set(after)):
            if name not in before or name not in after:
                state = "created" if name not in before else "deleted"
                self.flag(
                    RuleId.UNDECLARED_CHANGE,
                    f"claim {name} {state} by a feedbackctl commit",
                    {"Feedback-Claim": name},
                )
                continue
            for f in sorted(set(before[name]) | set(after[name])):
                old, new = before[name].get(f), after[name].get(f)
                if old != new:
                    out[(name, f)] = (old, new)
        return out

    def trailers(self, changed: dict[tuple[str, str], tuple[Scalar, Scalar]]) -> list[Mapping[str, str]]:
        """Every group complete and consistent with the diff; returns the value-changing groups."""
        declared: set[tuple[str, str]] = set()
        valued: list[Mapping[str, str]] = []
        for g in self.c.changes:
            kind, claim, f = g.get("Feedback-Kind"), g.get("Feedback-Claim"), g.get("Feedback-Field")
            if not kind:
                self.flag(RuleId.TRAILER_INCOMPLETE, "a Feedback-* trailer group has no Feedback-Kind", g)
                continue
            if kind in MARKER_KINDS:
                if claim and f and (claim, f.removeprefix("spec.")) in changed:
                    declared.add((claim, f.removeprefix("spec.")))  # reported once, here
                    self.flag(RuleId.TRAILER_DIFF, f"a {kind} marker changed spec value {f} of {claim}", g)
                continue
            if not claim or not f:
                if kind in AUTOMATED_KINDS:
                    self.flag(
                        RuleId.TRAILER_INCOMPLETE, f"{kind} without Feedback-Claim and Feedback-Field", g
                    )
                continue
            name = f.removeprefix("spec.")
            declared.add((claim, name))
            if self.parent.claim(claim) is None:
                self.flag(RuleId.TRAILER_DIFF, f"claim {claim} does not exist at the parent", g)
                continue
            old, new = changed.get((claim, name), (None, None))
            if (claim, name) not in changed:
                value = self.parent.claim(claim).value(name)  # type: ignore[union-attr]
                old = new = value if isinstance(value, int | float | str | bool) else None
            said_from, said_to = g.get("Feedback-From", ""), g.get("Feedback-To", g.get("Feedback-From", ""))
            if said_from != _text(old) or said_to != _text(new):
                self.flag(
                    RuleId.TRAILER_DIFF,
                    f"trailers say {f} {said_from or '(none)'} -> {said_to or '(none)'}, "
                    f"the diff says {_text(old) or '(none)'} -> {_text(new) or '(none)'}",
                    g,
                )
            if kind in AUTOMATED_KINDS or kind == "drift-capture":
                valued.append(g)
        for (claim, name), (old, new) in changed.items():
            if (claim, name) not in declared:
                self.flag(
                    RuleId.UNDECLARED_CHANGE,
                    f"spec.{name} of {claim} changed {_text(old)} -> {_text(new)} with no trailer for it",
                    {"Feedback-Claim": claim, "Feedback-Field": f"spec.{name}"},
                )
        return valued

    def beyond_trailers(self) -> None:
        """An automated commit may touch only the fields its trailers name.

        The scalar diff covers top-level values; this covers the rest of each
        claim: nested spec fields (``spec.concurrency.reserved``) and
        metadata annotations and labels (a baseline annotation would move the
        change cap).
        """
        if not self.kinds & AUTOMATED_KINDS:
            return
        before = {c.name: c for c in self.parent.claims}
        for claim in self.after.claims:
            old = before.get(claim.name)
            if old is None:
                continue
            for key in sorted(set(old.spec) | set(claim.spec)):
                a, b = old.spec.get(key), claim.spec.get(key)
                if (
                    key == "autoTune"
                    or a == b
                    or not (isinstance(a, Mapping | list) or isinstance(b, Mapping | list))
                ):
                    continue  # bounds-tampering and the scalar diff speak for these
                self.flag(
                    RuleId.UNDECLARED_CHANGE,
                    f"an automated commit changed spec.{key} of {claim.name}, which no trailer names",
                    {"Feedback-Claim": claim.name, "Feedback-Field": f"spec.{key}"},
                )
            for part in ("annotations", "labels"):
                a_meta, b_meta = getattr(old, part, None), getattr(claim, part, None)
                if a_meta != b_meta:
                    self.flag(
                        RuleId.UNDECLARED_CHANGE,
                        f"an automated commit changed metadata.{part} of {claim.name} "
                        f"({_meta_diff(a_meta, b_meta)}); only the named field may change",
                        {"Feedback-Claim": claim.name},
                    )

    def new_errors(self) -> None:
        known = {str(e) for e in self.parent.errors}
        for e in self.after.errors:
            if str(e) not in known:
                self.flag(RuleId.SCHEMA, f"the commit left a claim unreadable: {e}")


def _meta_diff(a: object, b: object) -> str:
    old = dict(a) if isinstance(a, Mapping) else {}
    new = dict(b) if isinstance(b, Mapping) else {}
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(str(k) for k in keys)


def _as_of(histories: Histories, claim: str, now: datetime) -> dict[str, FieldHistory]:
    """Histories before ``now``: changes at the same instant belong to the same run."""
    return {
        f: replace(h, changes=tuple(ch for ch in h.changes if ch.at < now))
        for f, h in histories.for_claim(claim).items()
    }


def _in_run(ch: FieldChange, now: datetime, run: str | None) -> bool:
    """Was ``ch`` made by the run that wrote at ``now`` (with ``Feedback-Run`` ``run``)?

    The run id groups exactly: the shards of one cron slot share it whatever
    their dates, and two runs at one instant stay two. Commits from before the
    trailer existed have no id; for them one run is one date (one ``--now``).
    """
    return ch.run == run if run is not None else ch.at == now and ch.run is None


def _same_run(
    histories: Histories, now: datetime, run: str | None
) -> tuple[list[tuple[str, str, str]], list[FieldChange]]:
    """Changes already made by this run: (claim, field, kind), and the run's automated changes fleet-wide."""
    made = []
    for claim, fields in histories.fields.items():
        for f, h in fields.items():
            made += [(claim, f, ch.kind) for ch in h.changes if ch.automated and _in_run(ch, now, run)]
    return made, [ch for _, ch in histories.fleet.recent if ch.automated and _in_run(ch, now, run)]


def _before_run(fleet: FleetHistory, now: datetime, made: Sequence[FieldChange]) -> int:
    """Automated changes in the 24 h up to ``now`` that are not the run's own."""
    mine = {id(ch) for ch in made}
    return sum(
        1
        for _, ch in fleet.recent
        if ch.automated and now - ch.at < timedelta(hours=24) and ch.at <= now and id(ch) not in mine
    )


def _rate(check: _Check, limits: Limits, day: int, in_run: int, g: Mapping[str, str]) -> None:
    """The change after ``in_run`` of its run, with ``day`` other automated changes in the 24 h before it."""
    where = f"run {check.c.run}" if check.c.run else "one run"
    per_run, per_day = guards.rate_room(limits, in_run, day + in_run)  # autotune's own limit
    if per_run < 1:
        check.flag(
            RuleId.RATE_LIMIT, f"change {in_run + 1} of {where}; at most {limits.rate_per_run} per run", g
        )
    if per_day < 1:
        check.flag(
            RuleId.RATE_LIMIT,
            f"{day + in_run + 1} automated changes in the 24h up to this one; at most {limits.rate_per_24h}",
            g,
        )


def _replay_guards(check: _Check, g: Mapping[str, str], histories: Histories, policy: Policy) -> None:
    """Run the change through every per-claim guard as autotune would have at the parent."""
    now = check.c.at
    claim = check.parent.claim(g["Feedback-Claim"])
    assert claim is not None
    name = g["Feedback-Field"].removeprefix("spec.")
    old, new = claim.value(name), _after_value(check, claim.name, name)
    fp = policy.fields.get(name)
    if fp is None:
        check.flag(
            RuleId.SCHEMA, f"{name} is not a tunable field of the policy; auto-tune may not touch it", g
        )
        return
    lo, hi = _number(old), _number(new)
    if lo is None or hi is None:
        check.flag(RuleId.SCHEMA, f"spec.{name} is {_text(new) or 'unset'}, expected a number", g)
        return
    if not fp.min <= hi <= fp.max:
        check.flag(RuleId.SCHEMA, f"{hi:g} is outside the schema range {fp.min:g}-{fp.max:g}", g)
    try:
        tuning = parse_autotune(claim)
    except ClaimError as e:
        check.flag(RuleId.OPT_IN, f"spec.autoTune was invalid at the parent: {e}", g)
        return
    field_histories = _as_of(histories, claim.name, now)
    history = field_histories.get(name, FieldHistory(claim.name, name))
    d = Decision(
        claim.name,
        name,
        old,
        Outcome.CHANGE,
        recommended=new,
        uncapped=new,
        direction="increase" if hi > lo else "decrease",
        source=g.get("Feedback-Source"),
        rule=g.get("Feedback-Rule"),
    )
    ctx = guards.GuardContext(
        claim=claim,
        tuning=tuning,
        policy=policy,
        history=history,
        claim_histories=field_histories,
        now=now,
        source=policy.source(g.get("Feedback-Source") or "unknown"),
        acknowledgement=_acknowledgement(check, g),
    )
    for guard in guards.PER_CLAIM_GUARDS:
        if guard is guards.bounds and not tuning.allows(name):
            continue  # opt-in already said so
        out = guard(ctx, d)
        for note in out.notes[len(d.notes) :]:
            if note.effect in ("blocked", "shaped"):
                check.flag(note.rule, note.detail, g)
    if g.get("Feedback-Risk") == "HIGH":
        check.flag(RuleId.RISK_CEILING, "the commit itself records HIGH risk; HIGH never auto-applies", g)
    if hi == lo:
        check.flag(RuleId.TRAILER_DIFF, "an auto-tune commit that does not change the value", g)


def _acknowledgement(check: _Check, g: Mapping[str, str]) -> Acknowledgement | None:
    """The ack an auto-tune commit names, replayed as the guard input it was; forged ones flagged."""
    named = g.get(ACKNOWLEDGED_KEY)
    if not named:
        return None
    found = acts.verify_acknowledgement(
        check.repo, named, check.c.sha, g["Feedback-Claim"], g["Feedback-Field"].removeprefix("spec.")
    )
    if isinstance(found, str):
        check.flag(RuleId.RISK_CEILING, f"{found}: it lifts no risk ceiling", g)
        return None
    return found


def _after_value(check: _Check, claim: str, name: str) -> Scalar:
    c = check.after.claim(claim)
    v = c.value(name) if c is not None else None
    return v if isinstance(v, int | float | str | bool) else None


def _check_reset(check: _Check, g: Mapping[str, str], histories: Histories) -> None:
    name = g["Feedback-Field"].removeprefix("spec.")
    baseline = histories.for_claim(g["Feedback-Claim"]).get(name)
    target = _after_value(check, g["Feedback-Claim"], name)
    if baseline is not None and baseline.baseline is not None and _text(baseline.baseline) != _text(target):
        check.flag(
            RuleId.RESET_TARGET,
            f"reset to {_text(target)}, but the tested baseline was {_text(baseline.baseline)}",
            g,
        )


def _misplaced(c: Commit, subject: str) -> list[Violation]:
    return [
        Violation(
            c.sha,
            c.at,
            RuleId.TRAILER_MISPLACED,
            f"Feedback-Kind: {kind} outside the final trailer block (git does not read it as a trailer); "
            "the commit counts as automated but declares nothing",
            kind=kind,
            subject=subject,
        )
        for kind in c.stray
    ]


def _check_commit(
    repo: GitRepo,
    c: Commit,
    parent: Snapshot | None,
    after: Snapshot,
    unreadable: FeedbackError | None,
    replay: Replay,
    subject: str,
) -> list[Violation]:
    if parent is None:
        detail = "a root commit carries feedbackctl trailers; there is no parent to compare with"
        return [Violation(c.sha, c.at, RuleId.TRAILER_DIFF, detail, subject=subject)]
    if unreadable is not None:
        check = _Check(repo, c, parent, parent, subject)
        check.bounds_tampering()
        check.flag(RuleId.SCHEMA, f"the commit leaves the repo unreadable: {unreadable}")
        return check.found
    check = _Check(repo, c, parent, after, subject)
    check.new_errors()
    check.bounds_tampering()
    valued = check.trailers(check.diff())
    check.beyond_trailers()
    tuned = [
        g
        for g in valued
        if g.get("Feedback-Kind") in AUTOMATED_KINDS and parent.claim(g["Feedback-Claim"]) is not None
    ]
    if tuned:
        policy = parent.settings.policy
        names = {g["Feedback-Claim"] for g in tuned}
        claims = [cl for cl in parent.claims if cl.name in names]
        histories = replay.histories(claims, policy, c.at)
        earlier, made = _same_run(histories, c.at, c.run)
        day, in_run = _before_run(histories.fleet, c.at, made), len(made)
        for g in tuned:
            key = (g["Feedback-Claim"], g["Feedback-Field"].removeprefix("spec."))
            if g.get("Feedback-Kind") == "reset":
                _check_reset(check, g, histories)
                continue
            if any((cl, f) == key for cl, f, _ in earlier):
                check.flag(
                    RuleId.STEP_LIMIT, "a second change of this field in one run (two steps at once)", g
                )
            others = sorted({f for cl, f, kind in earlier if cl == key[0] and f != key[1] and kind == KIND})
            if others:
                check.flag(
                    RuleId.SOURCE_COOLDOWN,
                    f"this run already auto-tuned spec.{others[0]} of the claim (one change per claim a run)",
                    g,
                )
            _rate(check, policy.limits, day, in_run, g)
            earlier.append((*key, KIND))
            in_run += 1
            _replay_guards(check, g, histories, policy)
            problem = staging.validated_in_problem(repo, parent, c.at, g)
            if problem is not None:
                check.flag(RuleId.VALIDATED_IN, problem, g)
    for g in valued:
        if g.get("Feedback-Kind") == "drift-capture":
            tags = {t.strip() for t in g.get("Feedback-Tags", "").split(",")}
            missing = [t for t in DRIFT_TAGS if t not in tags]
            if missing:
                check.flag(RuleId.DRIFT_TAGS, f"a drift capture must be tagged {', '.join(missing)}", g)
    return check.found


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
            result.violations += _misplaced(c, subject)
            if c.changes:
                result.violations += _check_commit(repo, c, parent, after, unreadable, replay, subject)
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
