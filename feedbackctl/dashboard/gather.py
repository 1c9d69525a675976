"""Reading what the dashboard shows, through the readers the other commands use.

Proposals come from ``proposals list``/``show``, sidecars from the
recommendation reader, captures and automated changes from ``history``,
violations from ``audit verify``, freezes from the flap detector over the
fields' git histories, blocked decisions from the auto-tuner's own
evaluation (only with metrics). Everything is read from one authority
commit, so the page describes one repo state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.history import load_histories
from feedbackctl.authority.recommendation_record import read_sidecar, sidecar_path
from feedbackctl.authority.snapshot import Snapshot, load_snapshot
from feedbackctl.core import flap
from feedbackctl.core.dashboard import (
    CONTEXT_FACTOR,
    DashboardInputs,
    HeldInput,
    Points,
    ProposalInput,
    SidecarInput,
    evidence,
    parse_iso,
)
from feedbackctl.core.models import AUTOMATED_KINDS, HUMAN_KINDS, MARKER_KINDS, FieldHistory
from feedbackctl.core.results import ProposalShown, ProposalsResult
from feedbackctl.core.rules import RuleId
from feedbackctl.core.tuning import parse_autotune
from feedbackctl.errors import ClaimError, FeedbackError
from feedbackctl.patterns import proposals as lifecycle
from feedbackctl.patterns.audit import audit_json, verify
from feedbackctl.patterns.evaluation import evaluate
from feedbackctl.patterns.history_view import HistoryFilter, entry_json, read_history
from feedbackctl.patterns.inputs import metric_source
from feedbackctl.sources.base import MetricRequest

# Every kind feedbackctl writes (the history reader then skips the by-value search for humans).
FEEDBACK_KINDS = tuple(sorted((AUTOMATED_KINDS | HUMAN_KINDS | MARKER_KINDS | {"drift-capture"}) - {"human"}))


def _diff(repo: GitRepo, commits: Sequence[Mapping[str, Any]], record: Mapping[str, Any] | None) -> list[str]:
    """The claim lines the proposal commit changed (``-old`` / ``+new``)."""
    made = next((c["sha"] for c in reversed(commits) if c.get("kind") == "proposal"), None)
    path = ((record or {}).get("spec") or {}).get("target", {}).get("path")
    if made is None or not path:
        return []
    lines = repo.diff_text(f"{made}^", made, path).splitlines()
    return [line for line in lines if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def _proposals(
    repo: GitRepo, branch: str, now: datetime, remote: str | None, problems: list[str]
) -> list[ProposalInput]:
    listed = lifecycle.list_proposals(repo, branch, now, remote=remote)
    problems += [p.message for p in listed.problems]
    out = []
    for e in listed.result_as(ProposalsResult).proposals or []:
        if e.get("status") not in lifecycle.OPEN:
            continue
        if not e.get("claim"):
            out.append(ProposalInput(e, None))
            continue
        try:
            shown = lifecycle.show_proposal(
                repo, branch, e["claim"], str(e["field"]).removeprefix("spec."), now, remote=remote
            )
        except FeedbackError as err:
            problems.append(f"{e['branch']}: {err}")
            out.append(ProposalInput(e, None))
            continue
        record = shown.result_as(ProposalShown).record
        out.append(ProposalInput(e, record, _diff(repo, shown.result_as(ProposalShown).chain, record)))
    return out


def _sidecars(
    snapshot: Snapshot, history: Sequence[Mapping[str, Any]], problems: list[str]
) -> list[SidecarInput]:
    made: dict[tuple[str, str], datetime] = {}
    for h in history:  # newest first: the first recommendation commit seen is the entry's
        at = parse_iso(h.get("at"))
        if h.get("kind") == "recommendation" and h.get("claim") and h.get("field") and at is not None:
            made.setdefault((str(h["claim"]), str(h["field"]).removeprefix("spec.")), at)
    out = []
    for claim in sorted(snapshot.claims, key=lambda c: c.name):
        path = sidecar_path(snapshot, claim)
        try:
            doc = read_sidecar(snapshot.read(path), path)
        except FeedbackError as e:
            problems.append(str(e))
            continue
        if doc is None:
            continue
        entries = [e for e in (doc.get("spec") or {}).get("recommendations") or [] if isinstance(e, Mapping)]
        when = {f: at for (c, f), at in made.items() if c == claim.name}
        out.append(SidecarInput(claim.name, path, entries, when))
    return out


def _held(snapshot: Snapshot, now: datetime, problems: list[str]) -> tuple[list[HeldInput], list[HeldInput]]:
    """Fields frozen by flap detection, and fields sitting on a human-written bound."""
    policy = snapshot.settings.policy
    claims = sorted(snapshot.claims, key=lambda c: c.name)
    histories = load_histories(snapshot.repo, snapshot.commit, claims, policy, now)
    frozen, bounds = [], []
    for claim in claims:
        fields = histories.for_claim(claim.name)
        for name in policy.tuned_fields:
            status = flap.assess(fields.get(name, FieldHistory(claim.name, name)).changes, now, policy.limits)
            if status.flapping:
                frozen.append(
                    HeldInput(
                        claim.name,
                        name,
                        claim.value(name),
                        status.detail,
                        (RuleId.FLAP_FREEZE,),
                        command=f"feedbackctl unfreeze {claim.name} {name} --ref {snapshot.branch}",
                    )
                )
        try:
            tuning = parse_autotune(claim)
        except ClaimError as e:
            problems.append(str(e))
            continue
        if not tuning.enabled:
            continue
        for name, b in sorted(tuning.bounds.items()):
            value = claim.value(name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            side = "upper" if value >= b.max else "lower" if value <= b.min else None
            if side:
                bounds.append(
                    HeldInput(
                        claim.name,
                        name,
                        value,
                        f"at its {side} bound ({b.min:g}-{b.max:g}): further changes need a proposal",
                        (RuleId.BOUNDS,),
                    )
                )
    return frozen, bounds


def _blocked(snapshot: Snapshot, metrics: str | None, now: datetime, problems: list[str]) -> list[HeldInput]:
    """Decisions a guard blocks (a time gate, a limit, a validation), whatever the guard, by its name."""
    ev = evaluate(snapshot, metrics, now)
    problems += [p.message for p in ev.problems]
    out = []
    for d in ev.decisions:
        # A claim that never opted in is not held back: its changes go to proposals.
        if d.blocked_by and set(d.blocked_by) != {RuleId.OPT_IN}:
            wanted = d.uncapped if d.uncapped is not None else d.recommended
            out.append(HeldInput(d.claim, d.field, d.current, d.reason, d.blocked_by, wanted=wanted))
    return out


def _series(
    snapshot: Snapshot,
    metrics: str | None,
    proposals: Sequence[ProposalInput],
    sidecars: Sequence[SidecarInput],
    problems: list[str],
) -> dict[tuple[str, str], Points]:
    """The metric windows the evidence names, read from the metric source."""
    spans: dict[str, dict[str, tuple[float, float]]] = {}

    def want(claim: str, raw: Mapping[str, Any], end: datetime | None) -> None:
        e = evidence(raw, claim, end, {})
        start, stop = parse_iso(e["windowStart"]), parse_iso(e["windowEnd"])
        if start is None or stop is None or not e["metric"]:
            return
        first = (start - timedelta(minutes=e["windowMinutes"] * CONTEXT_FACTOR)).timestamp()
        lo, hi = spans.setdefault(claim, {}).get(e["metric"], (first, stop.timestamp()))
        spans[claim][e["metric"]] = (min(lo, first), max(hi, stop.timestamp()))

    for p in proposals:
        rationale = ((p.record or {}).get("spec") or {}).get("rationale") or {}
        for raw in rationale.get("evidence") or []:
            want(str(p.entry.get("claim")), raw, parse_iso(p.entry.get("createdAt")))
    for s in sidecars:
        for r in s.entries:
            for raw in r.get("evidence") or []:
                want(s.claim, raw, s.made_at.get(str(r.get("field"))))
    claims = {c.name: c for c in snapshot.claims}
    requests = [
        MetricRequest(
            claims[name],
            tuple(sorted(metric_spans)),
            min(lo for lo, _ in metric_spans.values()),
            max(hi for _, hi in metric_spans.values()),
        )
        for name, metric_spans in sorted(spans.items())
        if name in claims
    ]
    if not requests:
        return {}
    source = metric_source(snapshot, metrics)
    batch = source.fetch(requests, max(r.end for r in requests))
    for claim, messages in sorted(batch.problems.items()):
        problems += [f"{claim}: {m}" for m in messages]
    out: dict[tuple[str, str], Points] = {}
    for claim, by_metric in batch.series.items():
        for metric, got in by_metric.items():
            out[(claim, metric)] = [(int(t), float(v)) for t, v in zip(got.ts, got.values, strict=True)]
    return out


def gather(
    repo: GitRepo, ref: str | None, now: datetime, *, remote: str | None = None, metrics: str | None = None
) -> DashboardInputs:
    problems: list[str] = []
    snapshot = load_snapshot(repo, ref)
    branch = snapshot.branch
    problems += [str(e) for e in snapshot.errors]
    proposals = _proposals(repo, branch, now, remote, problems)
    history = [entry_json(e) for e in read_history(repo, branch, HistoryFilter(kinds=FEEDBACK_KINDS)).entries]
    sidecars = _sidecars(snapshot, history, problems)
    frozen, bounds = _held(snapshot, now, problems)
    audited = audit_json(verify(repo, branch, None))
    has_metrics = bool(metrics or snapshot.settings.config.metrics_source)
    blocked = _blocked(snapshot, metrics, now, problems) if has_metrics else None
    series = _series(snapshot, metrics, proposals, sidecars, problems) if has_metrics else {}
    # A line a group: where the page is from, what waits on a human, what is held back.
    return DashboardInputs(
        ref=branch, commit=snapshot.commit, now=now, remote=remote,
        proposals=proposals, sidecars=sidecars, history=history, audit=audited,
        frozen=frozen, at_bounds=bounds, blocked=blocked, series=series,
        # One line each (a YAML error's text spans several): cron logs are read with grep.
        problems=[" ".join(p.split()) for p in problems],
    )  # fmt: skip
