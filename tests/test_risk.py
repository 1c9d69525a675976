"""The risk taxonomy (SPEC section 4), table-driven, and the policy checks that run first."""

from __future__ import annotations

import pytest

from feedbackctl.core.policy import FieldPolicy, RiskPolicy
from feedbackctl.core.risk import Change, Violation, assess, check_policy, classify
from tests.corefix import policy

RISK = policy().risk
FIELDS = policy().fields


def dev(field: str | None, claim: str = "app-dev", **kw: object) -> Change:
    return Change(claim, field, production=False, **kw)  # type: ignore[arg-type]


def prod(field: str | None, claim: str = "app-prod", **kw: object) -> Change:
    return Change(claim, field, production=True, **kw)  # type: ignore[arg-type]


TABLE = [
    ("dev lambdaMemory", [dev("lambdaMemory")], "LOW", "LOW base"),
    ("prod lambdaMemory", [prod("lambdaMemory")], "MEDIUM", "LOW base + prod elevator"),
    ("prod region", [prod("region")], "HIGH", "MEDIUM base + prod elevator"),
    (
        "dev lambdaMemory + region",
        [dev("lambdaMemory"), dev("region")],
        "HIGH",
        "MEDIUM base + 2 concerns elevator",
    ),
    (
        "lambdaMemory in 3 prod claims",
        [prod("lambdaMemory", f"app-prod-{i}") for i in range(3)],
        "HIGH",
        "LOW base + prod elevator + batch of 3 claims elevator",
    ),
    ("resourcePrefix in prod", [prod("resourcePrefix")], "MEDIUM", "LOW base + prod elevator"),
    ("deletion of a dev claim", [dev(None, deletion=True)], "HIGH", "LOW base + deletion -> HIGH"),
    ("dev lambdaTimeout", [dev("lambdaTimeout")], "LOW", "LOW base"),
    ("dev eventSource", [dev("eventSource")], "LOW", "LOW base"),
    ("dev environment", [dev("environment")], "MEDIUM", "MEDIUM base"),
    ("dev awsAccountId", [dev("awsAccountId")], "HIGH", "HIGH base"),
    ("prod artifactBucket", [prod("artifactBucket")], "HIGH", "MEDIUM base + prod elevator"),
    ("dev unknown field", [dev("concurrency")], "MEDIUM", "MEDIUM base (unknown field concurrency)"),
    (
        "dev cross-account move",
        [dev("lambdaMemory", cross_account=True)],
        "HIGH",
        "LOW base + cross-account -> HIGH",
    ),
    (
        "lambdaMemory in 2 dev claims",
        [dev("lambdaMemory", "a"), dev("lambdaMemory", "b")],
        "MEDIUM",
        "LOW base + batch of 2 claims elevator",
    ),
    (
        "lambdaMemory in 6 dev claims",
        [dev("lambdaMemory", f"d{i}") for i in range(6)],
        "HIGH",
        "LOW base + batch of 6 claims -> HIGH",
    ),
    (
        "two compute fields in dev (one concern)",
        [dev("lambdaMemory"), dev("lambdaTimeout")],
        "LOW",
        "LOW base",
    ),
    (
        "capped at HIGH: prod region + memory in 3 claims",
        [prod("region", f"p{i}") for i in range(3)] + [prod("lambdaMemory", "p0")],
        "HIGH",
        "MEDIUM base + prod elevator + 2 concerns elevator + batch of 3 claims elevator",
    ),
]


@pytest.mark.parametrize(("name", "changes", "level", "rationale"), TABLE, ids=[t[0] for t in TABLE])
def test_risk_table(name: str, changes: list[Change], level: str, rationale: str) -> None:
    got = classify(changes, RISK)
    assert (got.level, got.rationale) == (level, rationale), name


def test_security_fields_are_high() -> None:
    risk = RiskPolicy(fields=RISK.fields, security_fields=frozenset({"lambdaMemory"}))
    got = classify([dev("lambdaMemory")], risk)
    assert (got.level, got.rationale) == ("HIGH", "LOW base + security-related -> HIGH")


def test_base_risk_comes_from_the_policy() -> None:
    risk = RiskPolicy(fields={"lambdaMemory": RISK.fields["region"]})
    assert classify([dev("lambdaMemory")], risk).level == "MEDIUM"


@pytest.mark.parametrize(
    ("value", "rule", "detail"),
    [
        (10241, "schema.maximum", "10241 is above 10240 MB"),
        (64, "schema.minimum", "64 is below 128 MB"),
        ("512", "schema.type", "'512' is not a finite number"),
        (True, "schema.type", "True is not a finite number"),
        (float("nan"), "schema.type", "nan is not a finite number"),
    ],
)
def test_policy_checks_always_block(value: object, rule: str, detail: str) -> None:
    # A LOW change in dev would auto-apply: the policy check blocks it anyway.
    got = assess([dev("lambdaMemory", value=value)], RISK, FIELDS)
    assert got.blocked and not got.at_most("HIGH")
    assert got.violations == (Violation("app-dev", "lambdaMemory", rule, detail),)
    assert got.policy_result == f"blocked: {rule}: {detail}"


def test_values_inside_the_schema_are_classified() -> None:
    got = assess([prod("lambdaMemory", value=384)], RISK, FIELDS)
    assert (got.level, got.rationale, got.policy_result) == ("MEDIUM", "LOW base + prod elevator", "passed")
    assert got.at_most("MEDIUM") and not got.at_most("LOW")


def test_more_schema_checks_plug_in() -> None:
    def even_only(c: Change) -> list[Violation]:
        if isinstance(c.value, int) and c.value % 2:
            return [Violation(c.claim, c.field or "", "xrd.multipleOf", f"{c.value} is odd")]
        return []

    assert check_policy([dev("lambdaMemory", value=385)], FIELDS, [even_only])[0].rule == "xrd.multipleOf"
    assert assess([dev("lambdaMemory", value=384)], RISK, FIELDS, [even_only]).level == "LOW"


def test_fields_without_a_policy_entry_are_not_schema_checked() -> None:
    fields = {"lambdaMemory": FieldPolicy("lambdaMemory", 128, 128, 512)}
    assert check_policy([dev("region", value="us-east-1")], fields) == ()
    assert check_policy([dev("lambdaMemory", value=640)], fields)[0].detail == "640 is above 512"
