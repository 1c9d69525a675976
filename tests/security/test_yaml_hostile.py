"""Hostile YAML wherever the tool reads YAML: one loader, one set of limits.

Alias bombs, deep nests, Python tags and stray documents planted in the
config, a policy, a sidecar, a claim file and the live-state file are each
refused with one line naming the file (and line), before anything expands;
the other claims still get their write when the problem is theirs alone.
Plus a property: any bytes through the loader give data or one YamlError.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedbackctl.authority.yamldoc import YamlError, load_data, load_documents
from tests.security.hostile_world import BOMB, DEEP, DEV, LIMITS, PROD, World, check, make_world


@pytest.fixture()
def w(tmp_path: Path) -> World:
    return make_world(tmp_path)


def _indented(text: str, by: str = "    ") -> str:
    return "".join(by + line + "\n" for line in text.splitlines())


CONFIG_CASES = {
    "config-alias-bomb": LIMITS + "bombs:\n" + _indented(BOMB, "  ") + "claims:\n  kinds: *a9\n",
    "config-deep-nest": LIMITS + "x: " + DEEP,
    "config-python-tag": LIMITS + "x: !!python/object/apply:os.system ['touch pwned']\n",
    "config-two-documents": LIMITS + "---\nclaims: {paths: [elsewhere]}\n",
    "config-merge-bomb": LIMITS
    + "a: &a {x0: 1}\n"
    + "".join(
        f"b{i}: &b{i} {{<<: [{', '.join(['*a' if i == 0 else f'*b{i - 1}'] * 9)}]}}\n" for i in range(8)
    ),
}


@pytest.mark.parametrize("text", CONFIG_CASES.values(), ids=CONFIG_CASES.keys())
def test_hostile_config_is_one_line_and_nothing_moves(w: World, text: str) -> None:
    w.commit({".feedbackctl.yaml": text})
    before = w.refs()
    r = w.run(*w.propose())
    check(w, r, code=2, line=lambda x: x.startswith("feedbackctl: .feedbackctl.yaml:"), before=before)
    assert w.refs() == before
    assert not (w.tmp / "pwned").exists() and not (w.work / "pwned").exists()


POLICY_CASES = {
    "policy-alias-bomb": ("policies/risk.yaml", BOMB),
    "policy-deep-nest": ("policies/feedback-rules.yaml", "rules: " + DEEP),
    "policy-custom-tag": ("policies/sources.yaml", "feedbackSources: !Ref Other\n"),
}


@pytest.mark.parametrize("path,text", POLICY_CASES.values(), ids=POLICY_CASES.keys())
def test_hostile_policy_is_one_line_naming_it(w: World, path: str, text: str) -> None:
    w.commit({path: text})
    before = w.refs()
    r = w.run(*w.propose())
    check(w, r, code=2, line=lambda x: x.startswith(f"feedbackctl: {path}:"), before=before)
    assert w.refs() == before


def test_a_claim_file_nested_too_deep_is_its_own_problem(w: World) -> None:
    w.commit({"claims/deep.yaml": "kind: ServerlessEventAppClaim\nspec: " + DEEP})
    before = w.refs()
    r = w.run(*w.propose())
    check(
        w,
        r,
        code=1,
        line="claims/deep.yaml:2: YAML nests deeper than 1000 levels; flatten the file",
        before=before,
        processed=(PROD, DEV),
    )


def test_a_sidecar_alias_bomb_stops_only_its_claim(w: World) -> None:
    sidecar = f"claims/{DEV}.recommendation.yaml"
    w.commit({sidecar: "kind: ConfigurationRecommendation\n" + BOMB})
    before = w.refs()
    r = w.run(*w.analyze_write())
    check(
        w,
        r,
        code=1,
        line=f"{sidecar}:2: YAML aliases expand too much (possible alias bomb); remove the anchors",
        before=before,
        processed=(PROD,),
    )
    assert sidecar not in r.stdout  # the bad sidecar was left as it was


def test_a_live_file_alias_bomb_is_one_line(w: World) -> None:
    w.live.write_text(f"{PROD}: {{lambdaTimeout: 60}}\n" + BOMB)
    before = w.refs()
    r = w.run(*w.drift())
    check(w, r, code=2, line=f"{w.live}:", before=before)
    assert "alias" in r.stderr and w.refs() == before


def test_a_proposal_record_alias_bomb_is_that_branch_only(w: World) -> None:
    from tests.security.hostile_world import replace_on_branch

    assert w.run(*w.propose()).code == 0
    branch = f"feedback/{DEV}/lambdaMemory"
    record = f"proposals/{DEV}/lambdaMemory.yaml"
    replace_on_branch(w, branch, record, "kind: ConfigurationProposal\n" + BOMB)
    r = w.run("proposals", "list", "--repo", str(w.work), "--output", "json")
    assert r.code == 0 and "Traceback" not in r.stderr, r.stderr
    rows = {row["branch"]: row for row in r.json()["proposals"]}
    assert rows[branch]["status"] == "invalid"
    assert rows[branch]["detail"].startswith(
        f"{branch}:{record}:2: YAML aliases expand too much (possible alias bomb)"
    )
    assert rows[f"feedback/{PROD}/lambdaMemory"]["status"] == "pending"  # the others still listed


# --- any bytes in: data or one YamlError naming the file --------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_any_bytes_through_the_loader_are_data_or_one_named_problem(raw: bytes) -> None:
    try:
        load_data("any.yaml", raw)
    except YamlError as e:
        assert str(e).startswith("any.yaml") and "\n" not in str(e)


YAML_PIECES = st.sampled_from(
    ["a:", " ", "\n", "- ", "[", "]", "{", "}", "&x ", "*x", "<<: ", "!!str ", "!t ", "'", '"', "#"]
    + ["---\n", "1", "\t", ",", "? ", "|\n", "\x00", "\ufeff"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(YAML_PIECES, max_size=40).map("".join))
def test_yaml_shaped_text_is_data_or_one_named_problem(text: str) -> None:
    try:
        load_documents("shaped.yaml", text)
    except YamlError as e:
        assert str(e).startswith("shaped.yaml") and "\n" not in str(e)
