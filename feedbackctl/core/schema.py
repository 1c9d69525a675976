"""Schema limits of a claim field as plain values, and the check that always blocks.

The shell reads them from the repo's CompositeResourceDefinition (the XRD's
``openAPIV3Schema``) and from the policy's ``fields:`` ranges; the core only
sees :class:`FieldSchema` values on the claim. A value that breaks one of them
is never written (docs/propose.md: policy checks run first and always block).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from feedbackctl.core import regex
from feedbackctl.core.models import Claim, Scalar
from feedbackctl.core.risk import Change, SchemaCheck, Violation

_TYPES = ("integer", "number", "string", "boolean")


@dataclass(frozen=True)
class FieldSchema:
    """One source's rules for one spec field (OpenAPI v3 subset)."""

    field: str  # bare spec key, e.g. lambdaMemory
    source: str  # where the rules come from, e.g. "xrd platform/xrd/app.yaml"
    type: str | None = None  # integer | number | string | boolean
    enum: tuple[Scalar, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    pattern: str | None = None

    def rule(self, name: str, limit: object) -> str:
        """``spec.lambdaMemory maximum 3008 (xrd serverless-event-app.yaml)``."""
        shown = f"{limit:g}" if isinstance(limit, float) else str(limit)
        return f"spec.{self.field} {name} {shown} ({self.source})"


def _is_type(value: Scalar, type_: str) -> bool:
    if type_ == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if type_ == "string":
        return isinstance(value, str)
    if type_ == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return isinstance(value, int | float) and math.isfinite(float(value))


def _same(a: Scalar, b: Scalar) -> bool:
    """Enum membership: numbers compare by value, everything else by type and value."""
    if isinstance(a, bool | str | None) or isinstance(b, bool | str | None):
        return type(a) is type(b) and a == b
    return a == b


def violation(rules: Sequence[FieldSchema], value: Scalar) -> str | None:
    """The first rule ``value`` breaks, named with its source; None when it fits them all."""
    found = _first(rules, value)
    return found[1] if found is not None else None


def schema_check(claims: Sequence[Claim]) -> SchemaCheck:
    """The claims' XRD rules as a policy check for ``core.risk.assess`` (policy ranges it has)."""
    by_claim = {c.name: c.schema for c in claims}

    def check(change: Change) -> list[Violation]:
        if change.field is None or change.deletion:
            return []
        rules = by_claim.get(change.claim, {}).get(change.field, ())
        found = _first([r for r in rules if r.source.startswith("xrd ")], change.value)
        if found is None:
            return []
        keyword, message = found
        return [Violation(change.claim, change.field, f"schema.{keyword}", message.split(" ", 1)[1])]

    return check


def _first(rules: Sequence[FieldSchema], value: Scalar) -> tuple[str, str] | None:
    """(keyword, message) of the first rule ``value`` breaks."""
    for s in rules:
        if s.type in _TYPES and not _is_type(value, s.type):
            return "type", f"{s.rule('type', s.type)}: {value!r} is not {_article(s.type)}"
        if s.enum is not None and not any(_same(value, e) for e in s.enum):
            allowed = ", ".join(str(e) for e in s.enum)
            return "enum", f"{s.rule('enum', '[' + allowed + ']')}: {value!r} is not one of them"
        if isinstance(value, int | float) and not isinstance(value, bool):
            v = float(value)
            if s.minimum is not None and (v < s.minimum or (s.exclusive_minimum and v == s.minimum)):
                name = "exclusiveMinimum" if s.exclusive_minimum else "minimum"
                return name, f"{s.rule(name, s.minimum)}: {value!r} is below it"
            if s.maximum is not None and (v > s.maximum or (s.exclusive_maximum and v == s.maximum)):
                name = "exclusiveMaximum" if s.exclusive_maximum else "maximum"
                return name, f"{s.rule(name, s.maximum)}: {value!r} is above it"
        if s.pattern is not None and isinstance(value, str):
            matched = regex.search(s.pattern, value)
            if matched is None:
                continue  # the reader reports an unreadable pattern; it cannot be checked
            if not matched:
                return "pattern", f"{s.rule('pattern', s.pattern)}: {value!r} does not match"
    return None


@dataclass(frozen=True)
class Range:
    """The narrowest [low, high] all rules allow, with the rule that sets each end."""

    low: float
    high: float
    low_rule: str
    high_rule: str
    integer: bool = False


def value_range(rules: Sequence[FieldSchema], low: float, high: float, source: str) -> Range:
    """Intersect ``[low, high]`` (from ``source``) with every rule's minimum/maximum.

    For an integer field the ends are whole numbers inside the bounds (an
    exclusive maximum of 10 allows 9).
    """
    low_rule = f"minimum {low:g} ({source})"
    high_rule = f"maximum {high:g} ({source})"
    integer = any(s.type == "integer" for s in rules)
    for s in rules:
        if s.minimum is not None:
            lo = s.minimum
            if integer:
                lo = math.floor(lo) + 1 if s.exclusive_minimum else math.ceil(lo)
            if lo > low:
                low = lo
                name = "exclusiveMinimum" if s.exclusive_minimum else "minimum"
                low_rule = s.rule(name, s.minimum).removeprefix(f"spec.{s.field} ")
        if s.maximum is not None:
            hi = s.maximum
            if integer:
                hi = math.ceil(hi) - 1 if s.exclusive_maximum else math.floor(hi)
            if hi < high:
                high = hi
                name = "exclusiveMaximum" if s.exclusive_maximum else "maximum"
                high_rule = s.rule(name, s.maximum).removeprefix(f"spec.{s.field} ")
    return Range(low, high, low_rule, high_rule, integer)


def _article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word
