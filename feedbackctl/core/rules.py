"""Every safety rule by name: its id, what it means, where it is defined, and whether git proves it.

A rule id is the text decisions carry in their notes (``blockedBy`` in the
JSON reports) and ``audit verify`` reports in its violations. ``RuleId`` is a
``StrEnum``, so ``RuleId.COOLDOWN == "cooldown"`` and JSON, trailers and
tables print the same text as before the enum existed.

``REGISTRY`` is in report order: ``audit verify`` sorts the violations of one
commit by it and lists its ``provable`` rules (``PROVABLE``) in it. A rule is
provable when git alone can re-prove it (the claim, policy and history at the
commit's parent); rules whose evidence is metrics (sustained windows,
guardrails) are not.

``defined_by`` names the one function that decides the rule
(``module:function``, below ``feedbackctl``); tests resolve each name, so the
registry cannot point at code that has gone. Adding a rule: add its id here,
write its function (a guard in ``core/guards.py`` takes a context and a
decision and returns the decision, shaped or stopped), and register it.
Pure: no imports of the rest of the package, so every layer may read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RuleId(StrEnum):
    # What audit re-proves from git alone, in the order it reports them.
    TRAILER_MISPLACED = "trailer-misplaced"
    TRAILER_INCOMPLETE = "trailer-incomplete"
    TRAILER_DIFF = "trailer-diff"
    UNDECLARED_CHANGE = "undeclared-change"
    BOUNDS_TAMPERING = "bounds-tampering"
    SCHEMA = "schema"
    OPT_IN = "opt-in"
    TRUST = "trust"
    FLAP_FREEZE = "flap-freeze"
    COOLDOWN = "cooldown"
    SOURCE_COOLDOWN = "source-cooldown"
    SETTLING = "settling"
    STEP_LIMIT = "step-limit"
    BOUNDS = "bounds"
    CHANGE_CAP = "change-cap"
    RISK_CEILING = "risk-ceiling"
    RATE_LIMIT = "rate-limit"
    RESET_TARGET = "reset-target"
    DRIFT_TAGS = "drift-tags"
    VALIDATED_IN = "validated-in"
    SHARED_VALUE = "shared-value"  # provable since the claims' locations are replayed too
    # Rules that need what git does not hold (metrics, the live branches).
    STAGING_VALIDATION = "staging-validation"
    PROPOSAL_LIMITS = "proposal-limits"


@dataclass(frozen=True)
class Rule:
    id: RuleId
    meaning: str  # one line
    provable: bool  # audit verify re-proves it from git alone
    defined_by: str  # "module:function" below feedbackctl, the one definition


_P, _M = True, False
REGISTRY: tuple[Rule, ...] = (
    Rule(
        RuleId.TRAILER_MISPLACED,
        "a Feedback-Kind outside the final trailer block: automated, but declares nothing",
        _P,
        "core.commitcheck:misplaced",
    ),
    Rule(
        RuleId.TRAILER_INCOMPLETE,
        "a Feedback-* trailer group without its kind, claim or field",
        _P,
        "core.commitcheck:Check.trailers",
    ),
    Rule(
        RuleId.TRAILER_DIFF,
        "the trailers' from/to disagree with the commit's diff",
        _P,
        "core.commitcheck:Check.trailers",
    ),
    Rule(
        RuleId.UNDECLARED_CHANGE,
        "an automated commit changed something no trailer names",
        _P,
        "core.commitcheck:Check.beyond_trailers",
    ),
    Rule(
        RuleId.BOUNDS_TAMPERING,
        "an automated commit changed human-authored bounds, policy or config",
        _P,
        "core.commitcheck:Check.bounds_tampering",
    ),
    Rule(
        RuleId.SCHEMA,
        "the value is a number inside the field's schema range, and the claim stays readable",
        _P,
        "core.schema:value_range",
    ),
    Rule(
        RuleId.OPT_IN, "only claims and fields with spec.autoTune bounds auto-tune", _P, "core.guards:opt_in"
    ),
    Rule(
        RuleId.TRUST,
        "only registered sources the claim allows, with enough trust, auto-tune",
        _P,
        "core.guards:trust",
    ),
    Rule(
        RuleId.FLAP_FREEZE,
        "a field swinging back and forth is frozen until a human acts",
        _P,
        "core.guards:flap_freeze",
    ),
    Rule(RuleId.COOLDOWN, "one auto-tune of a field per cooldown", _P, "core.guards:cooldown"),
    Rule(
        RuleId.SOURCE_COOLDOWN,
        "one act of a source on a claim per source cooldown (one change per claim a run)",
        _P,
        "core.guards:source_cooling",
    ),
    Rule(RuleId.SETTLING, "no auto-tune while metrics settle after any change", _P, "core.guards:settling"),
    Rule(RuleId.STEP_LIMIT, "one step per action", _P, "core.guards:step_limit"),
    Rule(RuleId.BOUNDS, "auto-tune acts only inside the human-written bounds", _P, "core.guards:bounds"),
    Rule(
        RuleId.CHANGE_CAP,
        "a value stays inside the cap around its human baseline",
        _P,
        "core.guards:change_cap",
    ),
    Rule(
        RuleId.RISK_CEILING,
        "risk above the auto-apply ceiling needs a proposal (a human's ack lifts MEDIUM)",
        _P,
        "core.guards:risk_ceiling",
    ),
    Rule(
        RuleId.RATE_LIMIT,
        "at most perRun auto-tunes a run and per24h in any 24 h, fleet-wide",
        _P,
        "core.runlimits:rate_room",
    ),
    Rule(
        RuleId.RESET_TARGET,
        "a reset returns the field to its tested baseline",
        _P,
        "core.runreplay:_check_reset",
    ),
    Rule(
        RuleId.DRIFT_TAGS,
        "a drift capture is tagged break-glass and requires-review",
        _P,
        "core.commitcheck:check_commit",
    ),
    Rule(
        RuleId.VALIDATED_IN,
        "an auto-tune in a later stage names the validating claim that held the value",
        _P,
        "patterns.staging:validated_in_problem",
    ),
    Rule(
        RuleId.SHARED_VALUE,
        "a value several claims share never auto-tunes (a batch change): proposal only",
        _P,
        "core.guards:shared_value",
    ),
    Rule(
        RuleId.STAGING_VALIDATION,
        "a later stage takes only a value its validating claim ran healthily for the soak",
        _M,
        "core.guards:validated_stage",
    ),
    Rule(
        RuleId.PROPOSAL_LIMITS,
        "at most maxOpen open and maxNewPerHour new proposals",
        _M,
        "core.runlimits:proposal_limit",
    ),
)

BY_ID: dict[RuleId, Rule] = {r.id: r for r in REGISTRY}
# What ``audit verify`` re-proves from git alone, in the order it reports them.
PROVABLE: tuple[RuleId, ...] = tuple(r.id for r in REGISTRY if r.provable)
