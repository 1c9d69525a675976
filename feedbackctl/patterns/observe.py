"""Push sources: observations from outside agents become recommendations, never auto-tune.

An agent (a registered ``type: push`` source) hands in observations: claim,
field, recommended value, confidence, evidence. Each is checked against the
source registry, the claim, the policy's field limits and the claim's
human-written ``spec.autoTune`` bounds. One bad observation rejects the whole
batch and nothing is written. Accepted ones become entries in the claim's
``ConfigurationRecommendation`` sidecar attributed to the agent
(``proposer.type: agent``), in one commit with ``Feedback-Kind:
recommendation`` and ``Feedback-Source: <source>`` per observation. A source
that recorded a recommendation for a claim within its cooldown is held back for
that claim (reported as blocked by ``source-cooldown``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from feedbackctl.authority import cas
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.history import load_histories
from feedbackctl.authority.recommendation_record import (
    PENDING,
    proposer_id,
    render_sidecar,
    sidecar_entries,
    sidecar_path,
)
from feedbackctl.authority.snapshot import Snapshot, load_snapshot
from feedbackctl.authority.writer import Plan, Staging, commit_plan, decision_trailer
from feedbackctl.authority.yamldoc import load_documents
from feedbackctl.core import guards
from feedbackctl.core.models import Decision, FieldChange, Note, Outcome, Scalar
from feedbackctl.core.policy import Policy, Source
from feedbackctl.core.results import ObserveResult, Report
from feedbackctl.core.risk import Change, classify
from feedbackctl.core.rules import RuleId
from feedbackctl.core.tuning import parse_autotune
from feedbackctl.errors import ClaimError, FeedbackError, UsageError

KEYS = ("source", "agent", "claim", "field", "recommendedValue", "currentValue", "confidence", "evidence")
REQUIRED = ("claim", "field", "recommendedValue", "confidence", "evidence")
EVIDENCE_KEYS = ("type", "source", "metric", "period", "summary")
# Kinds that count as a source having acted on a claim for its cooldown.
ACTING_KINDS = frozenset({"recommendation", "proposal", "auto-tune"})
SHOWN_PROBLEMS = 3


@dataclass(frozen=True)
class Observation:
    index: int  # 1-based position in the input, for messages
    source: str
    agent: str
    claim: str
    field: str
    recommended: int | float
    confidence: float
    evidence: tuple[Mapping[str, str], ...]
    current: Scalar = None  # what the agent saw; must match the claim when given

    @property
    def summary(self) -> str:
        return "; ".join(e.get("summary", "") for e in self.evidence)


class ObservationError(UsageError):
    """A rejected batch: exit 2, nothing written."""


# --- reading -------------------------------------------------------------------------------------


def read_observations(text: bytes, where: str, source: str) -> list[Observation]:
    """Observations out of JSON or YAML: one, a list, ``{observations: [...]}``, or documents."""
    try:
        decoded = text.decode("utf-8")
        docs = [d.data for d in load_documents(where, decoded)]
    except UnicodeDecodeError:
        raise ObservationError(f"{where}: not UTF-8 text; send JSON or YAML") from None
    except FeedbackError as exc:
        raise ObservationError(str(exc)) from None
    raw: list[Any] = []
    for doc in docs:
        if isinstance(doc, Mapping) and "observations" in doc:
            items = doc["observations"]
            if not isinstance(items, list):
                raise ObservationError(f"{where}: observations: expected a list of observations")
            defaults = {k: v for k, v in doc.items() if k in ("source", "agent")}
            raw.extend({**defaults, **i} if isinstance(i, Mapping) else i for i in items)
        elif isinstance(doc, list):
            raw.extend(doc)
        elif doc is not None:
            raw.append(doc)
    if not raw:
        raise ObservationError(f"{where}: no observations; send at least one")
    problems: list[str] = []
    out: list[Observation] = []
    for n, item in enumerate(raw, start=1):
        try:
            out.append(_observation(n, item, source))
        except ObservationError as exc:
            problems.append(f"observation {n}: {exc}")
    _raise_all(where, problems)
    return out


def _observation(n: int, item: Any, source: str) -> Observation:
    if not isinstance(item, Mapping):
        raise ObservationError(f"expected a mapping with {', '.join(REQUIRED)}")
    unknown = sorted(str(k) for k in item if k not in KEYS)
    if unknown:
        raise ObservationError(f"unknown key {unknown[0]!r} (known: {', '.join(KEYS)})")
    missing = [k for k in REQUIRED if item.get(k) in (None, "", [])]
    if missing:
        raise ObservationError(f"{missing[0]} is missing")
    if item.get("source", source) != source:
        raise ObservationError(f"source is {item['source']!r} but --source is {source!r}")
    claim, field_name = item["claim"], item["field"]
    if not isinstance(claim, str) or not isinstance(field_name, str):
        raise ObservationError("claim and field must be strings")
    value = item["recommendedValue"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ObservationError(f"recommendedValue must be a finite number, got {value!r}")
    confidence = item["confidence"]
    if isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 <= confidence <= 1:
        raise ObservationError(f"confidence must be a number from 0 to 1, got {confidence!r}")
    agent = item.get("agent", source)
    if not isinstance(agent, str) or not agent.strip():
        raise ObservationError(f"agent must be a non-empty string, got {agent!r}")
    return Observation(
        index=n,
        source=source,
        agent=agent.strip(),
        claim=claim,
        field=field_name.removeprefix("spec."),
        recommended=value,
        confidence=round(float(confidence), 4),
        evidence=_evidence(item["evidence"], source),
        current=item.get("currentValue"),
    )


def _evidence(raw: Any, source: str) -> tuple[Mapping[str, str], ...]:
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for e in items:
        if isinstance(e, str):
            e = {"summary": e}
        if not isinstance(e, Mapping):
            raise ObservationError("evidence must be text, a mapping with summary, or a list of them")
        unknown = sorted(str(k) for k in e if k not in EVIDENCE_KEYS)
        if unknown:
            raise ObservationError(
                f"evidence: unknown key {unknown[0]!r} (known: {', '.join(EVIDENCE_KEYS)})"
            )
        if not isinstance(e.get("summary"), str) or not e["summary"].strip():
            raise ObservationError("evidence needs a summary: what the agent saw")
        out.append({"type": "observation", "source": source, **{str(k): str(v) for k, v in e.items()}})
    return tuple(out)


def _raise_all(where: str, problems: list[str]) -> None:
    if not problems:
        return
    shown = "; ".join(problems[:SHOWN_PROBLEMS])
    more = len(problems) - SHOWN_PROBLEMS
    tail = f" (and {more} more)" if more > 0 else ""
    raise ObservationError(f"{where}: rejected, nothing written: {shown}{tail}")


# --- checking ------------------------------------------------------------------------------------


def registered_push_source(policy: Policy, name: str) -> Source:
    source = policy.sources.get(name)
    if source is None:
        raise ObservationError(
            f"source '{name}' is not registered; add it to feedbackSources in policies/sources.yaml "
            "with type: push"
        )
    if source.type != "push":
        raise ObservationError(
            f"source '{name}' is a {source.type} source; observe takes push sources (type: push) only"
        )
    return source


def check(observations: Sequence[Observation], snapshot: Snapshot) -> list[str]:
    """Why each bad observation is bad (empty: all good)."""
    policy = snapshot.settings.policy
    problems: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    for o in observations:
        try:
            _check_one(o, snapshot, policy)
        except (ObservationError, ClaimError) as exc:
            problems.append(f"observation {o.index}: {exc}")
            continue
        key = (o.claim, o.field, o.agent)
        if key in seen:
            problems.append(f"observation {o.index}: a second recommendation for {o.field} of {o.claim}")
        seen.add(key)
    return problems


def _check_one(o: Observation, snapshot: Snapshot, policy: Policy) -> None:
    claim = snapshot.claim(o.claim)
    if claim is None:
        raise ObservationError(f"claim '{o.claim}' not found at {snapshot.branch}")
    fp = policy.fields.get(o.field)
    if fp is None:
        known = ", ".join(sorted(policy.fields))
        raise ObservationError(f"field '{o.field}' is not a tunable field (known: {known})")
    current = claim.value(o.field)
    if isinstance(current, bool) or not isinstance(current, int | float):
        raise ObservationError(f"{o.claim} sets no numeric spec.{o.field}")
    if o.current is not None and o.current != current:
        raise ObservationError(
            f"the agent saw spec.{o.field} = {o.current} but {o.claim} has {current} now; observe again"
        )
    if o.recommended == current:
        raise ObservationError(f"recommends the current value {current}; nothing to recommend")
    if not fp.min <= o.recommended <= fp.max:
        raise ObservationError(
            f"{o.recommended:g} is outside the limits of {o.field} ({fp.min:g}-{fp.max:g}{fp.unit})"
        )
    bounds = parse_autotune(claim).bounds.get(o.field)
    if bounds is not None and not bounds.min <= o.recommended <= bounds.max:
        raise ObservationError(
            f"{o.recommended:g} is outside the human-written spec.autoTune bounds of {o.claim} "
            f"({bounds.min:g}-{bounds.max:g}); an agent cannot recommend past them"
        )


def _acts(c: FieldChange) -> bool:
    return c.kind in ACTING_KINDS


def _as_value(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


# --- writing -------------------------------------------------------------------------------------


def _decision(o: Observation, snapshot: Snapshot, source: Source) -> Decision:
    claim = snapshot.claim(o.claim)
    assert claim is not None
    risk = classify([Change(claim.name, o.field, claim.is_production)], snapshot.settings.policy.risk)
    current = claim.value(o.field)
    return Decision(
        claim=o.claim,
        field=o.field,
        current=_as_value(float(current)),
        outcome=Outcome.CHANGE,
        recommended=_as_value(float(o.recommended)),
        direction="increase" if o.recommended > current else "decrease",
        confidence=o.confidence,
        source=source.name,
        risk=risk.level,
        notes=(Note("observation", "fired", f"agent {o.agent}: {o.summary}"),),
    )


def _entry(o: Observation, d: Decision, source: Source) -> dict[str, Any]:
    return {
        "field": d.field,
        "currentValue": d.current,
        "recommendedValue": d.recommended,
        "confidence": d.confidence,
        "risk": d.risk,
        "proposer": {
            "type": "agent",
            "id": o.agent,
            "source": source.name,
            "trustLevel": source.trust_level,
            "confidence": d.confidence,
        },
        "evidence": [dict(e) for e in o.evidence],
        "status": PENDING,
    }


def _plan(snapshot: Snapshot, accepted: list[tuple[Observation, Decision]], source: Source) -> Plan:
    plan = Plan(subject="")
    staging = Staging(snapshot.repo, snapshot.commit)
    by_claim: dict[str, list[tuple[Observation, Decision]]] = {}
    for o, d in accepted:
        by_claim.setdefault(o.claim, []).append((o, d))
    for name, items in sorted(by_claim.items()):
        claim = snapshot.claim(name)
        assert claim is not None
        path = sidecar_path(snapshot, claim)
        text = staging.texts[path].encode() if path in staging.texts else snapshot.read(path)
        entries = sidecar_entries(text, path)
        for o, d in items:
            entries = [e for e in entries if not (e.get("field") == o.field and proposer_id(e) == o.agent)]
            entries.append(_entry(o, d, source))
            evidence = f"agent {o.agent} (confidence {o.confidence:g}): {o.summary}"
            plan.trailers.append(decision_trailer("recommendation", d, evidence=evidence))
        staging.put(path, render_sidecar(claim, entries))
    plan.edits = staging.edits()
    n = len(plan.trailers)
    agents = ", ".join(sorted({o.agent for o, _ in accepted}))
    plan.subject = f"feedbackctl: {n} agent recommendation{'s' if n != 1 else ''} from {agents}"
    return plan


def observe(
    repo: GitRepo,
    ref: str | None,
    source_name: str,
    text: bytes,
    where: str,
    now: datetime,
    *,
    dry_run: bool,
) -> Report:
    def attempt(_: int) -> Report | cas.Moved:
        snapshot = load_snapshot(repo, ref)
        policy = snapshot.settings.policy
        source = registered_push_source(policy, source_name)
        observations = read_observations(text, where, source_name)
        _raise_all(where, check(observations, snapshot))
        claims = [c for c in snapshot.claims if c.name in {o.claim for o in observations}]
        histories = load_histories(repo, snapshot.commit, claims, policy, now)
        report = Report("observe", now, snapshot.branch, snapshot.commit, dry_run=dry_run)
        report.result = ObserveResult(len(observations))
        accepted: list[tuple[Observation, Decision]] = []
        decided: list[Decision] = []
        for o in observations:
            d = _decision(o, snapshot, source)
            last = guards.last_source_act(histories.for_claim(o.claim).values(), source.name, _acts)
            ago = guards.source_cooling(now, last, source.cooldown_minutes)
            if ago is not None:
                detail = (
                    f"source {source.name} acted on {o.claim} {ago:.0f}m ago; "
                    f"its cooldown is {source.cooldown_minutes}m"
                )
                d = replace(
                    d,
                    outcome=Outcome.BLOCKED,
                    notes=d.notes + (Note(RuleId.SOURCE_COOLDOWN, "blocked", detail),),
                )
            else:
                accepted.append((o, d))
            decided.append(d)
        report.decisions = decided
        if not accepted:
            return report
        plan = _plan(snapshot, accepted, source)
        if commit_plan(repo, snapshot.branch, snapshot.commit, plan, now, report.commits, dry_run=dry_run):
            return report
        return cas.MOVED

    return cas.retry(attempt)
