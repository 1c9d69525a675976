"""The review dashboard's data model: what waits on a human, built from plain values (pure).

The shell (``dashboard.gather``) reads git through the existing readers
(proposal branches, sidecars, the audit trail, ``audit verify``, flap
histories) and hands the results here as plain values; this module decides
what the page shows and in which order. No git, clock, files or printing:
the same inputs always give the same document, which is what makes the page
byte-identical across re-runs. ``--output json`` prints this document as it
is; docs/dashboard.md describes its schema.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from feedbackctl.core.proposal import iso

SCHEMA_VERSION = 1
RISK_ORDER = ("HIGH", "MEDIUM", "LOW")
# A proposal's record carries the window that fired; the chart shows it with
# as much context again before it, so the shaded window reads as "the part that counted".
CONTEXT_FACTOR = 1.0
MAX_POINTS = 240  # per chart: a page for 375 px phones, not a data export
RECENT_CHANGES = 50
ESCALATION = timedelta(hours=8)
_SUMMARY = re.compile(r"=(?P<value>[-+0-9.e]+)(?: vs threshold (?P<threshold>[-+0-9.e]+))?")

Points = Sequence[tuple[int, float]]


@dataclass(frozen=True)
class ProposalInput:
    """One open proposal: its ``proposals list`` entry, its record document and its claim diff."""

    entry: Mapping[str, Any]
    record: Mapping[str, Any] | None
    diff: Sequence[str] = ()


@dataclass(frozen=True)
class SidecarInput:
    claim: str
    path: str
    entries: Sequence[Mapping[str, Any]]
    made_at: Mapping[str, datetime] = field(default_factory=dict)  # field -> commit time of its entry


@dataclass(frozen=True)
class HeldInput:
    """A field a human must act on before feedbackctl may change it (frozen, at a bound, blocked)."""

    claim: str
    field: str
    value: Any
    reason: str
    guards: Sequence[str] = ()
    wanted: Any = None
    command: str | None = None


@dataclass(frozen=True)
class DashboardInputs:
    ref: str
    commit: str
    now: datetime
    remote: str | None = None
    proposals: Sequence[ProposalInput] = ()
    sidecars: Sequence[SidecarInput] = ()
    history: Sequence[Mapping[str, Any]] = ()  # history_view.entry_json entries, newest first
    audit: Mapping[str, Any] = field(default_factory=dict)  # audit_json's document
    frozen: Sequence[HeldInput] = ()
    at_bounds: Sequence[HeldInput] = ()
    blocked: Sequence[HeldInput] | None = None  # None: no metrics to decide with
    series: Mapping[tuple[str, str], Points] = field(default_factory=dict)  # (claim, metric) -> points
    problems: Sequence[str] = ()


def parse_iso(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 1)


def _minutes(period: Any) -> int:
    if isinstance(period, int):
        return period
    text = str(period or "").strip()
    if text.endswith("m") and text[:-1].isdigit():
        return int(text[:-1])
    if text.endswith("h") and text[:-1].isdigit():
        return int(text[:-1]) * 60
    return int(text) if text.isdigit() else 0


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v)


def thin(points: Points, limit: int = MAX_POINTS) -> list[list[float]]:
    """At most ``limit`` points, each bucket's peak kept: spikes that fired must stay visible."""
    pts = sorted(points)
    if len(pts) <= limit:
        return [[t, v] for t, v in pts]
    out = []
    for j in range(limit):
        bucket = pts[j * len(pts) // limit : (j + 1) * len(pts) // limit]
        t, v = max(bucket, key=lambda p: (p[1], -p[0]))
        out.append([t, v])
    return out


def evidence(
    raw: Mapping[str, Any], claim: str, end: datetime | None, series: Mapping[tuple[str, str], Points]
) -> dict[str, Any]:
    """One piece of evidence with the window that fired and, when known, the series around it."""
    minutes = _minutes(raw.get("period", raw.get("windowMinutes")))
    summary = str(raw.get("summary") or "")
    value, threshold = _number(raw.get("value")), _number(raw.get("threshold"))
    parsed = _SUMMARY.search(summary)
    if parsed and value is None:
        value = float(parsed.group("value"))
    if parsed and threshold is None and parsed.group("threshold"):
        threshold = float(parsed.group("threshold"))
    metric = str(raw.get("metric") or "")
    out: dict[str, Any] = {
        "metric": metric,
        "statistic": raw.get("statistic"),
        "windowMinutes": minutes,
        "points": raw.get("points"),
        "value": value,
        "threshold": threshold,
        "summary": summary,
        "windowStart": None,
        "windowEnd": None,
        "series": None,
    }
    if end is None or minutes <= 0:
        return out
    start = end - timedelta(minutes=minutes)
    out["windowStart"], out["windowEnd"] = iso(start), iso(end)
    known = series.get((claim, metric))
    if known:
        first = (start - timedelta(minutes=minutes * CONTEXT_FACTOR)).timestamp()
        shown = [(t, v) for t, v in known if first <= t <= end.timestamp()]
        out["series"] = thin(shown) if shown else None
    return out


def _flag(remote: str | None) -> str:
    return f" --remote {remote}" if remote else ""


def _ack(e: Mapping[str, Any], created: datetime | None, now: datetime) -> dict[str, Any]:
    base = str(e.get("riskClass") or e.get("risk") or "")
    if e.get("acknowledgedBy"):
        return {
            "state": "acknowledged",
            "by": e["acknowledgedBy"],
            "detail": f"acknowledged by {e['acknowledgedBy']}",
        }
    if base != "MEDIUM":
        need = "approve or reject" if base == "HIGH" else "no acknowledgment needed"
        return {"state": "not-needed", "by": None, "detail": need}
    if e.get("escalated"):
        return {"state": "escalated", "by": None, "detail": "unacknowledged for 8h: escalated to HIGH"}
    left = _hours(created + ESCALATION - now) if created else None
    detail = "awaiting acknowledgment" + (f" (escalates to HIGH in {left:g}h)" if left is not None else "")
    return {"state": "awaiting", "by": None, "detail": detail}


def _commands(e: Mapping[str, Any], ref: str, remote: str | None) -> dict[str, str | None]:
    claim, name = e.get("claim"), str(e.get("field") or "").removeprefix("spec.")
    tail = f" --ref {ref}{_flag(remote)}"
    status = e.get("status")
    if status == "handed-off":
        git = f"git log {ref}..{e.get('branch')}  # a human committed on it: review and merge with git"
        return {"approve": git, "reject": None, "ack": None}
    approve = f"feedbackctl proposals approve {claim} {name}{tail}" if status == "pending" else None
    ack = None
    if (
        status == "pending"
        and e.get("riskClass") == "MEDIUM"
        and not e.get("acknowledgedBy")
        and not e.get("escalated")
    ):
        ack = f"feedbackctl proposals ack {claim} {name}{tail}"
    reject = f"feedbackctl proposals reject {claim} {name}{tail} --reason '...'" if claim else None
    return {"approve": approve, "reject": reject, "ack": ack}


def proposal(p: ProposalInput, inputs: DashboardInputs) -> dict[str, Any]:
    e, now = p.entry, inputs.now
    spec = (p.record or {}).get("spec") or {}
    rationale = spec.get("rationale") or {}
    created, expires = parse_iso(e.get("createdAt")), parse_iso(e.get("expiresAt"))
    claim = str(e.get("claim") or "")
    return {
        "branch": e.get("branch"),
        "risk": e.get("risk") or "UNKNOWN",
        "riskClass": e.get("riskClass"),
        "riskRationale": e.get("riskRationale"),
        "claim": claim or None,
        "field": e.get("field"),
        "from": e.get("from"),
        "to": e.get("to"),
        "status": e.get("status"),
        "detail": e.get("detail"),
        "stale": e.get("status") == "stale",
        "handedOff": e.get("status") == "handed-off",
        "createdAt": e.get("createdAt"),
        "expiresAt": e.get("expiresAt"),
        "ageHours": _hours(now - created) if created else None,
        "expiresInHours": _hours(expires - now) if expires else None,
        "ack": _ack(e, created, now),
        "reviewReason": e.get("reviewReason"),
        "policyResult": e.get("policyResult"),
        "tip": e.get("tip"),
        "diff": list(p.diff),
        "summary": rationale.get("summary") or "",
        "rule": rationale.get("rule"),
        "source": rationale.get("source"),
        "evidence": [evidence(r, claim, created, inputs.series) for r in rationale.get("evidence") or []],
        "commands": _commands(e, inputs.ref, inputs.remote),
    }


def _risk_key(p: Mapping[str, Any]) -> tuple[int, str, str]:
    rank = RISK_ORDER.index(p["risk"]) if p["risk"] in RISK_ORDER else len(RISK_ORDER)
    return rank, str(p.get("claim") or ""), str(p.get("field") or p.get("branch") or "")


def recommendations(inputs: DashboardInputs) -> list[dict[str, Any]]:
    out = []
    for s in sorted(inputs.sidecars, key=lambda s: s.claim):
        for r in s.entries:
            if r.get("status", "pending-review") != "pending-review":
                continue
            name = str(r.get("field") or "")
            proposer = r.get("proposer") if isinstance(r.get("proposer"), Mapping) else None
            made = s.made_at.get(name)
            who = f" --proposer {proposer.get('id')}" if proposer and proposer.get("type") == "agent" else ""
            tail = f" --ref {inputs.ref}{who}"
            out.append(
                {
                    "claim": s.claim,
                    "field": f"spec.{name}",
                    "from": r.get("currentValue"),
                    "to": r.get("recommendedValue"),
                    "rule": r.get("rule"),
                    "risk": r.get("risk"),
                    "confidence": r.get("confidence"),
                    "proposer": proposer.get("id") if proposer else "feedbackctl",
                    "path": s.path,
                    "madeAt": iso(made),
                    "evidence": [
                        evidence(ev, s.claim, made, inputs.series) for ev in r.get("evidence") or []
                    ],
                    "commands": {
                        "accept": f"feedbackctl recommendations accept {s.claim} {name}{tail}",
                        "dismiss": f"feedbackctl recommendations dismiss {s.claim} {name}{tail}",
                    },
                }
            )
    out.sort(key=lambda r: (r["claim"], r["field"], str(r["proposer"])))
    return out


def captures(inputs: DashboardInputs) -> list[dict[str, Any]]:
    out = []
    for h in inputs.history:
        if not h.get("pendingReview"):
            continue
        out.append(
            {
                "commit": h["commit"],
                "at": h["at"],
                "author": h["author"],
                "kind": h["kind"],
                "claim": h["claim"],
                "field": h["field"],
                "from": h["from"],
                "to": h["to"],
                "source": h["source"],
                "tags": list(h["tags"]),
                "evidence": h["evidence"],
                "command": f"feedbackctl review {h['commit'][:12]} --ref {inputs.ref} --note '...'",
            }
        )
    return out


def held(items: Sequence[HeldInput]) -> list[dict[str, Any]]:
    return [
        {
            "claim": h.claim,
            "field": f"spec.{h.field}",
            "value": h.value,
            "wanted": h.wanted,
            "guards": list(h.guards),
            "reason": h.reason,
            "command": h.command,
        }
        for h in sorted(items, key=lambda h: (h.claim, h.field))
    ]


def automated(inputs: DashboardInputs) -> list[dict[str, Any]]:
    broken: dict[str, list[Mapping[str, Any]]] = {}
    for v in inputs.audit.get("violations") or []:
        broken.setdefault(str(v.get("commit")), []).append(v)
    out = []
    for h in [h for h in inputs.history if h.get("kind") != "human"][:RECENT_CHANGES]:
        found = broken.get(str(h["commit"]), [])
        mine = [
            v for v in found if v.get("claim") in (None, h["claim"]) and v.get("field") in (None, h["field"])
        ]
        out.append(
            {
                **{k: h[k] for k in ("commit", "at", "author", "kind", "claim", "field", "from", "to")},
                **{k: h[k] for k in ("source", "rule", "risk", "evidence")},
                "tags": list(h["tags"]),
                "audit": "violation" if mine else "ok",
                "violations": sorted({str(v.get("rule")) for v in mine}),
            }
        )
    return out


def build(inputs: DashboardInputs) -> dict[str, Any]:
    """The whole page as one JSON-able document (see docs/dashboard.md)."""
    proposals = sorted((proposal(p, inputs) for p in inputs.proposals), key=_risk_key)
    by_risk = {r: sum(1 for p in proposals if p["risk"] == r) for r in RISK_ORDER}
    recs = recommendations(inputs)
    caps = captures(inputs)
    frozen, bounds = held(inputs.frozen), held(inputs.at_bounds)
    blocked = None if inputs.blocked is None else held(inputs.blocked)
    recent = automated(inputs)
    audit = inputs.audit
    violations = list(audit.get("violations") or [])
    return {
        "schemaVersion": SCHEMA_VERSION,
        "command": "dashboard",
        "ref": inputs.ref,
        "commit": inputs.commit,
        "remote": inputs.remote,
        "generatedAt": iso(inputs.now),
        "counts": {
            "proposals": len(proposals),
            "proposalsByRisk": by_risk,
            "stale": sum(1 for p in proposals if p["stale"]),
            "handedOff": sum(1 for p in proposals if p["handedOff"]),
            "recommendations": len(recs),
            "captures": len(caps),
            "frozen": len(frozen),
            "atBounds": len(bounds),
            "blocked": None if blocked is None else len(blocked),
            "automatedChanges": len(recent),
            "violations": len(violations),
        },
        "proposals": proposals,
        "recommendations": recs,
        "captures": caps,
        "frozen": frozen,
        "atBounds": bounds,
        "blocked": blocked,
        "automated": recent,
        "audit": {
            "ok": not violations and not audit.get("problems"),
            "commits": audit.get("commits", 0),
            "changes": audit.get("changes", 0),
            "violations": violations,
            "problems": list(audit.get("problems") or []),
        },
        "problems": sorted(inputs.problems),
    }
