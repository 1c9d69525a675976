"""XRD schema checks: the core clamps to the XRD's range, the writer refuses any value that breaks it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.snapshot import Snapshot, load_snapshot
from feedbackctl.authority.writer import Staging
from feedbackctl.authority.xrd import load_xrds
from feedbackctl.core.decide import recommend
from feedbackctl.core.models import Outcome
from feedbackctl.core.schema import FieldSchema, value_range, violation
from feedbackctl.errors import ClaimError
from tests.clirun import cli
from tests.corefix import NOW, SOURCE, claim, healthy, inputs, policy
from tests.gitutil import RepoFactory, git_out
from tests.kustomizefix import NOW as FIXTURE_NOW
from tests.kustomizefix import XRD, corpus_repo, metrics_dir, replace_in

XRD_SOURCE = f"xrd {XRD}"
MEMORY_MAX = "                  minimum: 128\n                  maximum: 10240\n"


def xrd_with_memory_max(maximum: int) -> str:
    return replace_in(
        XRD, MEMORY_MAX, f"                  minimum: 128\n                  maximum: {maximum}\n"
    )


def snap(work: Path) -> Snapshot:
    return load_snapshot(GitRepo.open(work), None)


# -- reading the XRD ------------------------------------------------------------------------


def test_the_corpus_xrd_gives_its_claims_their_schema(repo_factory: RepoFactory) -> None:
    work = corpus_repo(repo_factory)
    index = load_xrds(GitRepo.open(work), git_out(work, "rev-parse", "HEAD"))
    assert index.errors == []
    rules = index.schemas[("messagewall.demo", "v1alpha1", "ServerlessEventAppClaim")]
    memory = rules["lambdaMemory"]
    assert (memory.type, memory.minimum, memory.maximum, memory.source) == ("integer", 128, 10240, XRD_SOURCE)
    assert rules["region"].enum == ("us-east-1", "us-west-2", "eu-west-1")
    assert rules["awsAccountId"].pattern == "^[0-9]{12}$"
    # The composite kind itself is matched too (Crossplane v2 has no claims).
    assert ("messagewall.demo", "v1alpha1", "ServerlessEventApp") in index.schemas
    for c in snap(work).claims:  # plain and rendered claims alike
        assert c.schema["lambdaMemory"][0] == memory
        assert c.schema["lambdaMemory"][1].source == "policy fields.lambdaMemory"


def test_an_xrd_applies_only_to_its_group_kind_and_version(repo_factory: RepoFactory) -> None:
    moved = replace_in(XRD, "    - name: v1alpha1\n", "    - name: v1beta1\n")
    s = snap(corpus_repo(repo_factory, {XRD: moved}))
    for c in s.claims:
        assert [r.source for r in c.schema["lambdaMemory"]] == ["policy fields.lambdaMemory"]
        assert "region" not in c.schema


def test_a_broken_xrd_is_reported_and_the_policy_still_applies(repo_factory: RepoFactory) -> None:
    broken = replace_in(XRD, "                  maximum: 10240\n", "                  maximum: lots\n")
    s = snap(corpus_repo(repo_factory, {XRD: broken}))
    assert [str(e) for e in s.errors] == [
        f"{XRD}:7: spec.versions[0] spec.lambdaMemory: maximum must be a number, not 'lots'; fix the XRD"
    ]
    east = s.claim("messagewall-prod-east")
    assert east is not None
    with pytest.raises(ClaimError, match=r"maximum 10240 \(policy fields.lambdaMemory\): 20000 is above it"):
        Staging(s.repo, s.commit).set_value(east, "lambdaMemory", 20000)


# -- the writer's final check ---------------------------------------------------------------------


@pytest.mark.parametrize(("claim_name", "field", "value", "message"), [
    ("messagewall-prod-east", "lambdaMemory", 4096,
     f"schema: spec.lambdaMemory maximum 3008 ({XRD_SOURCE}): 4096 is above it; not written"),
    ("messagewall-prod", "lambdaMemory", 64,
     f"schema: spec.lambdaMemory minimum 128 ({XRD_SOURCE}): 64 is below it; not written"),
    ("messagewall-prod", "lambdaMemory", 320.5,
     f"schema: spec.lambdaMemory type integer ({XRD_SOURCE}): 320.5 is not an integer; not written"),
    ("messagewall-prod-west", "lambdaTimeout", "30",
     f"schema: spec.lambdaTimeout type integer ({XRD_SOURCE}): '30' is not an integer; not written"),
    ("messagewall-dev-east", "region", "ap-south-1",
     f"schema: spec.region enum [us-east-1, us-west-2, eu-west-1] ({XRD_SOURCE}): 'ap-south-1' is not one"),
    ("messagewall-dev", "awsAccountId", "12345",
     f"schema: spec.awsAccountId pattern ^[0-9]{{12}}$ ({XRD_SOURCE}): '12345' does not match"),
])  # fmt: skip
def test_a_write_that_breaks_the_xrd_is_blocked_naming_the_rule(
    repo_factory: RepoFactory, claim_name: str, field: str, value: object, message: str
) -> None:
    s = snap(corpus_repo(repo_factory, {XRD: xrd_with_memory_max(3008)}))
    c = s.claim(claim_name)
    assert c is not None
    staging = Staging(s.repo, s.commit)
    with pytest.raises(ClaimError) as err:
        staging.set_value(c, field, value, batch=True)  # type: ignore[arg-type]
    assert str(err.value).startswith(f"{claim_name}: {message}")
    assert staging.texts == {}


def test_a_value_inside_the_xrd_is_written(repo_factory: RepoFactory) -> None:
    s = snap(corpus_repo(repo_factory, {XRD: xrd_with_memory_max(3008)}))
    east = s.claim("messagewall-prod-east")
    assert east is not None
    assert (
        Staging(s.repo, s.commit).set_value(east, "lambdaMemory", 3008)
        == "infra/claims/overlays/prod-east/kustomization.yaml"
    )


def test_without_an_xrd_the_policy_bounds_apply(repo_factory: RepoFactory) -> None:
    s = snap(corpus_repo(repo_factory, {XRD: None}))
    c = s.claim("messagewall-prod")
    assert c is not None and "region" not in c.schema
    staging = Staging(s.repo, s.commit)
    with pytest.raises(ClaimError, match=r"maximum 900 \(policy fields.lambdaTimeout\): 901 is above it"):
        staging.set_value(c, "lambdaTimeout", 901)
    with pytest.raises(ClaimError, match=r"minimum 128 \(policy fields.lambdaMemory\): 64 is below it"):
        staging.set_value(c, "lambdaMemory", 64)
    staging.set_value(c, "region", "ap-south-1")  # no XRD: no enum to break


# -- the core clamps and blocks with the XRD's range --------------------------------------------------


def test_a_recommendation_above_the_xrd_maximum_is_blocked(repo_factory: RepoFactory, tmp_path: Path) -> None:
    work = corpus_repo(repo_factory, {XRD: xrd_with_memory_max(256)})
    metrics = str(metrics_dir(tmp_path))
    r = cli("analyze", "--repo", str(work), "--metrics", metrics, "--now", FIXTURE_NOW, "--output", "json")
    assert r.code == 0, r.stderr
    for name in ("messagewall-prod-east", "messagewall-prod"):
        d = next(x for x in r.json()["decisions"] if (x["claim"], x["field"]) == (name, "spec.lambdaMemory"))
        assert (d["outcome"], d["current"], d["recommended"], d["blockedBy"]) == (
            "blocked",
            256,
            256,
            ["schema"],
        )
        assert d["reason"] == (
            f"schema: spec.lambdaMemory maximum 256 ({XRD_SOURCE}): already at the limit, wanted 384"
        )
    table = cli("analyze", "--repo", str(work), "--metrics", metrics, "--now", FIXTURE_NOW)
    assert "schema: spec.lambdaMemory maximum 256" in " ".join(table.stdout.split())


def test_a_recommendation_is_clamped_to_the_xrd_maximum(repo_factory: RepoFactory, tmp_path: Path) -> None:
    work = corpus_repo(repo_factory, {XRD: xrd_with_memory_max(320)})
    metrics = str(metrics_dir(tmp_path))
    r = cli("analyze", "--repo", str(work), "--metrics", metrics, "--now", FIXTURE_NOW, "--output", "json")
    d = next(
        x
        for x in r.json()["decisions"]
        if (x["claim"], x["field"]) == ("messagewall-prod-east", "spec.lambdaMemory")
    )
    assert (d["outcome"], d["recommended"], d["uncapped"]) == ("change", 320, 384)
    assert {
        "rule": "schema",
        "effect": "shaped",
        "detail": f"clamped to the schema range 128-320 (maximum 320 ({XRD_SOURCE})); wanted 384",
    } in d["notes"]


def rules(*schemas: FieldSchema) -> dict[str, tuple[FieldSchema, ...]]:
    out: dict[str, tuple[FieldSchema, ...]] = {}
    for s in schemas:
        out[s.field] = (*out.get(s.field, ()), s)
    return out


def test_core_clamps_to_the_narrowest_range_and_names_its_source() -> None:
    c = replace(claim(), schema=rules(FieldSchema("lambdaMemory", "xrd x.yaml", "integer", maximum=300)))
    d = next(x for x in recommend(inputs(c, healthy()), policy(), NOW, SOURCE) if x.field == "lambdaMemory")
    assert (d.outcome, d.recommended, d.uncapped) == (Outcome.CHANGE, 300, 384)
    assert d.notes[-1].detail == "clamped to the schema range 128-300 (maximum 300 (xrd x.yaml)); wanted 384"


def test_core_blocks_when_already_at_the_xrd_limit() -> None:
    c = replace(claim(), schema=rules(FieldSchema("lambdaMemory", "xrd x.yaml", maximum=256)))
    d = next(x for x in recommend(inputs(c, healthy()), policy(), NOW, SOURCE) if x.field == "lambdaMemory")
    assert d.outcome == Outcome.BLOCKED and d.blocked_by == ("schema",)
    assert d.reason == "schema: spec.lambdaMemory maximum 256 (xrd x.yaml): already at the limit, wanted 384"


def test_core_blocks_when_the_claim_is_already_past_the_limit() -> None:
    c = replace(claim(), schema=rules(FieldSchema("lambdaMemory", "xrd x.yaml", maximum=200)))
    d = next(x for x in recommend(inputs(c, healthy()), policy(), NOW, SOURCE) if x.field == "lambdaMemory")
    assert d.outcome == Outcome.BLOCKED and d.recommended == 256
    assert "the current 256 is already outside it; fix the claim by hand" in d.reason


def test_core_rounds_to_an_integer_schema_in_the_direction_of_the_change() -> None:
    schema = (FieldSchema("lambdaTimeout", "xrd x.yaml", "integer", maximum=37.5),)
    got = value_range(schema, 1, 900, "policy")
    assert (got.low, got.high, got.integer) == (1, 37, True)
    exclusive = (FieldSchema("lambdaTimeout", "xrd x.yaml", "integer", maximum=10, exclusive_maximum=True),)
    assert value_range(exclusive, 1, 900, "policy").high == 9
    s = healthy()
    s["duration_p99"] = s["duration_p99"].__class__(
        "duration_p99", s["duration_p99"].ts, s["duration_p99"].values * 0 + 26000
    )
    c = replace(claim(), schema={"lambdaTimeout": schema})
    d = next(x for x in recommend(inputs(c, s), policy(), NOW, SOURCE) if x.field == "lambdaTimeout")
    assert (d.outcome, d.recommended) == (Outcome.CHANGE, 37)


ABOVE_1 = FieldSchema("f", "s", minimum=1, exclusive_minimum=True)
BELOW_9 = FieldSchema("f", "s", maximum=9, exclusive_maximum=True)


@pytest.mark.parametrize(("schema", "value", "problem"), [
    (FieldSchema("f", "s", "integer"), True, "spec.f type integer (s): True is not an integer"),
    (FieldSchema("f", "s", "integer"), 384.0, None),
    (FieldSchema("f", "s", "number"), float("nan"), "spec.f type number (s): nan is not a number"),
    (FieldSchema("f", "s", "boolean"), 1, "spec.f type boolean (s): 1 is not a boolean"),
    (FieldSchema("f", "s", enum=(128, 256)), 256.0, None),
    (FieldSchema("f", "s", enum=("1", "2")), 1, "spec.f enum [1, 2] (s): 1 is not one of them"),
    (FieldSchema("f", "s", enum=(True,)), 1, "spec.f enum [True] (s): 1 is not one of them"),
    (ABOVE_1, 1, "spec.f exclusiveMinimum 1 (s): 1 is below it"),
    (BELOW_9, 9, "spec.f exclusiveMaximum 9 (s): 9 is above it"),
    (FieldSchema("f", "s", maximum=10), 10, None),
    (FieldSchema("f", "s", pattern="^[a-z]+$"), "abc", None),
    (FieldSchema("f", "s", pattern="^[a-z]+$"), "ab1", "spec.f pattern ^[a-z]+$ (s): 'ab1' does not match"),
])  # fmt: skip
def test_violation(schema: FieldSchema, value: object, problem: str | None) -> None:
    assert violation([schema], value) == problem  # type: ignore[arg-type]


def test_json_schema_exclusive_bounds_are_read_as_numbers(repo_factory: RepoFactory) -> None:
    xrd = replace_in(
        XRD, MEMORY_MAX, "                  exclusiveMinimum: 64\n                  exclusiveMaximum: 4096\n"
    )
    s = snap(corpus_repo(repo_factory, {XRD: xrd}))
    east = s.claim("messagewall-prod-east")
    assert east is not None
    memory = east.schema["lambdaMemory"][0]
    assert (memory.minimum, memory.exclusive_minimum, memory.maximum, memory.exclusive_maximum) == (
        64,
        True,
        4096,
        True,
    )
    with pytest.raises(ClaimError, match=r"exclusiveMaximum 4096 \(xrd .*\): 4096 is above it"):
        Staging(s.repo, s.commit).set_value(east, "lambdaMemory", 4096)
