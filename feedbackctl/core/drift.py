"""Drift, the pure part: live values against the claims in git, with reasons.

``compare`` sorts every observed field into a ``Finding`` (drift, ignored,
unmanaged) or a problem; ``hold_pending_sync`` turns a difference that is
only a rollout still under way into ``pending-sync``. Values in, findings
out: the shell that reads git and the live source and writes the captures is
patterns/drift.py.
"""

from __future__ import annotations

import fnmatch
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from feedbackctl.core.models import Claim, FieldChange, Scalar
from feedbackctl.core.policy import Policy
from feedbackctl.core.results import Problem
from feedbackctl.core.risk import Change, classify
from feedbackctl.core.tuning import parse_autotune
from feedbackctl.core.validation import UNTESTED
from feedbackctl.errors import ClaimError

KIND = "drift-capture"
TAGS = ("break-glass", "requires-review")
OUT_OF_BOUNDS = "out-of-bounds"


class Status(StrEnum):
    DRIFT = "drift"  # differs; report mode
    CAPTURED = "captured"
    WOULD_CAPTURE = "would-capture"  # --dry-run
    ALREADY_CAPTURED = "already-captured"  # --branch: the review branch already holds it
    PENDING_SYNC = "pending-sync"  # git changed it moments ago; live still shows the old value
    IGNORED = "ignored"  # drift.ignore
    UNMANAGED = "unmanaged"  # the claim does not set the field


# Live and git differ: the statuses that count as drift (and --detailed-exitcode 2).
DIFFERS = frozenset({Status.DRIFT, Status.CAPTURED, Status.WOULD_CAPTURE})


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


class Observed(Protocol):
    """Live state as the comparison reads it (``sources.live.LiveState``)."""

    @property
    def observed(self) -> Mapping[str, Mapping[str, Scalar]]: ...

    @property
    def problems(self) -> Mapping[str, Sequence[str]]: ...


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
    state: Observed,
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


@dataclass
class DriftResult:
    """drift: where the live state came from, what matched, and every finding."""

    mode: str
    source: str
    target: str
    in_sync: int
    findings: list[Finding] | None = None  # set once the run knows each finding's final status

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode, "source": self.source, "target": self.target}
        out["inSync"] = self.in_sync
        if self.findings is not None:
            out["drift"] = [finding_json(f) for f in self.findings]
        return out

    @property
    def differs(self) -> int:
        """Findings where live and git differ (reported, captured or to be captured)."""
        return sum(1 for f in self.findings or () if f.status in DIFFERS)
