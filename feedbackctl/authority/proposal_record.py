"""Reading a ``ConfigurationProposal`` record back from a proposal branch.

The record is YAML anyone who can push the branch may have written, so it is
parsed with the bounded loader (``authority/yamldoc.py``) and every field is
checked; anything else raises ``ProposalError`` naming the file. The record's
shape and lifecycle rules are pure and live in ``core/proposal.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from feedbackctl.authority.yamldoc import YamlError, load_data
from feedbackctl.core.models import Evidence
from feedbackctl.core.proposal import KIND, Proposal, ProposalError, State


class _Fields:
    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, key: str, problem: str) -> ProposalError:
        return ProposalError(f"{self.where}: {key}: {problem}; regenerate it with feedbackctl propose")

    def map(self, m: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        v = m.get(key)
        if not isinstance(v, Mapping):
            raise self.fail(key, "missing or not a mapping")
        return v

    def text(self, m: Mapping[str, Any], key: str, *, optional: bool = False) -> str | None:
        v = m.get(key)
        if v is None and optional:
            return None
        if not isinstance(v, str) or not v:
            raise self.fail(key, f"expected a non-empty string, got {v!r}")
        return v

    def time(self, m: Mapping[str, Any], key: str, *, optional: bool = False) -> datetime | None:
        v = m.get(key)
        if v is None and optional:
            return None
        if isinstance(v, datetime):
            return v if v.tzinfo else v.replace(tzinfo=UTC)
        if isinstance(v, str):
            try:
                at = datetime.fromisoformat(v.replace("Z", "+00:00"))
            except ValueError:
                pass
            else:
                return at if at.tzinfo else at.replace(tzinfo=UTC)
        raise self.fail(key, f"expected an ISO-8601 time, got {v!r}")


def _evidence(raw: Any) -> tuple[Evidence, ...]:
    out = []
    for e in raw if isinstance(raw, list) else []:
        if not isinstance(e, Mapping):
            continue
        period = str(e.get("period", "0m")).removesuffix("m")
        threshold = e.get("threshold")
        try:
            out.append(
                Evidence(
                    metric=str(e.get("metric", "")),
                    statistic=str(e.get("statistic", "")),
                    window_minutes=int(period) if period.isdigit() else 0,
                    points=int(e.get("points") or 0),
                    value=float(e.get("value") or 0.0),
                    threshold=float(threshold) if threshold is not None else None,
                    unit=str(e.get("unit") or ""),
                )
            )
        except (TypeError, ValueError):
            continue
    return tuple(out)


def parse(text: bytes | str, where: str) -> Proposal:
    """A record back from its YAML text; ProposalError naming ``where`` when it is unusable."""
    try:
        doc = load_data(where, text)
    except YamlError as exc:
        raise ProposalError(f"{exc}; or regenerate it with feedbackctl propose") from None
    f = _Fields(where)
    if not isinstance(doc, Mapping) or doc.get("kind") != KIND:
        raise ProposalError(f"{where}: is not a {KIND}")
    spec, status = f.map(doc, "spec"), f.map(doc, "status")
    target, rationale = f.map(spec, "target"), f.map(spec, "rationale")
    raw_proposer = spec.get("proposer")
    proposer: Mapping[str, Any] = raw_proposer if isinstance(raw_proposer, Mapping) else {}
    change = spec.get("change")
    # Anyone can push a branch: an op that is not a string (`op: [1]`) is junk, not a crash.
    ops: dict[str, Mapping[str, Any]] = {}
    for op in change if isinstance(change, list) else []:
        if isinstance(op, Mapping) and isinstance(op.get("op"), str):
            ops[op["op"]] = op
    if "test" not in ops or "replace" not in ops or ops["replace"].get("path") != ops["test"].get("path"):
        raise f.fail("spec.change", "expected a JSON Patch with a test and a replace of one path")
    path = str(ops["replace"].get("path", ""))
    if not path.startswith("/spec/") or "/" in path.removeprefix("/spec/"):
        raise f.fail("spec.change", f"path {path!r} is not /spec/<field>")
    field_name = path.removeprefix("/spec/").replace("~1", "/").replace("~0", "~")
    state_text = status.get("state", State.PENDING.value)
    if not isinstance(state_text, str) or state_text not in {s.value for s in State}:
        raise f.fail("status.state", f"unknown state {state_text!r}")
    created = f.time(status, "createdAt")
    assert created is not None
    reason = rationale.get("reviewReason")
    confidence = proposer.get("confidence", 0.0)
    return Proposal(
        claim=str(f.text(target, "name")),
        field=field_name,
        old=ops["test"].get("value"),
        new=ops["replace"].get("value"),
        target_kind=str(f.text(target, "kind")),
        target_api_version=str(target.get("apiVersion") or ""),
        target_path=str(target.get("path") or ""),
        target_namespace=f.text(target, "namespace", optional=True),
        base_commit=str(target.get("baseCommit") or ""),
        risk=str(status.get("riskClass") or "HIGH"),
        risk_rationale=str(status.get("riskRationale") or ""),
        policy_result=str(status.get("policyResult") or ""),
        opened_at=f.time(status, "openedAt", optional=True) or created,
        created_at=created,
        rule=rationale.get("rule") if isinstance(rationale.get("rule"), str) else None,
        source=rationale.get("source") if isinstance(rationale.get("source"), str) else None,
        reason=reason if isinstance(reason, str) else "requested",
        summary=str(rationale.get("summary") or ""),
        evidence=_evidence(rationale.get("evidence")),
        proposer_type=str(proposer.get("type") or "runtime-feedback"),
        proposer_id=str(proposer.get("id") or "feedbackctl"),
        confidence=float(confidence) if isinstance(confidence, int | float) else 0.0,
        state=State(state_text),
        acknowledged_by=f.text(status, "acknowledgedBy", optional=True),
        acknowledged_at=f.time(status, "acknowledgedAt", optional=True),
        closed_by=f.text(status, "closedBy", optional=True),
        closed_at=f.time(status, "closedAt", optional=True),
        close_reason=str(status.get("reason") or ""),
    )
