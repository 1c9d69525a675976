"""Junk proposal records and sidecars: a per-item problem naming the branch or file.

Anyone with push rights can push a branch under the proposal prefix or edit a
sidecar. A record with ``op: [1]`` used to give ``internal error: TypeError:
unhashable type`` in every proposal command; a sidecar with
``recommendations: 5`` or ``spec: hello`` stopped analyze for every claim.
Now each is that one item's problem, named, and the rest goes on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from feedbackctl.authority import proposal_record
from feedbackctl.authority.recommendation_record import read_sidecar
from feedbackctl.core import proposal as record
from feedbackctl.core.proposal import ProposalError
from feedbackctl.errors import UsageError
from tests.gitutil import git_out
from tests.security.hostile_world import (
    DEV,
    DEV_CLAIM,
    PROD,
    World,
    check,
    make_world,
    replace_on_branch,
)

BRANCH = f"feedback/{DEV}/lambdaMemory"
RECORD = f"proposals/{DEV}/lambdaMemory.yaml"
SIDECAR = f"claims/{DEV}.recommendation.yaml"


@pytest.fixture()
def w(tmp_path: Path) -> World:
    return make_world(tmp_path)


def _entries(doc: Any) -> list[dict[str, Any]]:
    """The rows of a proposals/propose JSON report (whatever the top-level key is called)."""
    for value in doc.values() if isinstance(doc, dict) else ():
        if isinstance(value, list) and value and isinstance(value[0], dict) and "branch" in value[0]:
            return value
    raise AssertionError(f"no rows in {doc}")


def _junk_record(w: World, edit: Any) -> str:
    """The real record on the dev branch, edited; written back as feedbackctl's own commit."""
    assert w.run(*w.propose()).code == 0
    text = git_out(w.work, "show", f"{BRANCH}:{RECORD}")
    new = edit(text)
    assert new != text
    replace_on_branch(w, BRANCH, RECORD, new)
    return new


JUNK_RECORDS = {
    "op-is-a-list": lambda t: t.replace("op: test", "op: [1]"),
    "both-ops-lists": lambda t: t.replace("op: test", "op: [1]").replace("op: replace", "op: {a: 1}"),
    "state-is-a-list": lambda t: t.replace("state: pending", "state: [pending]"),
    "change-is-a-string": lambda t: t.split("  change:")[0] + "  change: nope\n",
    "record-is-a-list": lambda t: "- 1\n- 2\n",
    "record-is-binary-junk": lambda t: "\x00\x01 not yaml",
    "record-python-tag": lambda t: "!!python/object/apply:os.system ['touch pwned']\n",
}


RECORD_RUNS = [
    *((name, "proposals") for name in JUNK_RECORDS),
    *((name, command) for name in ("op-is-a-list", "state-is-a-list") for command in ("propose", "autotune")),
]


@pytest.mark.parametrize("junk,command", RECORD_RUNS, ids=[f"{j}-{c}" for j, c in RECORD_RUNS])
def test_a_junk_record_is_that_branch_only(w: World, junk: str, command: str) -> None:
    edit = JUNK_RECORDS[junk]
    _junk_record(w, edit)
    argv = {
        "proposals": ["proposals", "list", "--repo", str(w.work)],
        "propose": w.propose(),
        "autotune": ["autotune", "--repo", str(w.work), "--metrics", str(w.metrics)],
    }[command]
    r = w.run(*argv, "--output", "json")
    assert r.code in (0, 1, 3), r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    assert not (w.tmp / "pwned").exists() and not (w.work / "pwned").exists()
    if command == "autotune":  # reads the records for settled proposals; prod's step is still taken
        assert "messagewall-prod" in r.stdout
        return
    rows = {row["branch"]: row for row in _entries(r.json())}
    assert rows[BRANCH]["detail"].startswith(f"{BRANCH}:{RECORD}"), rows[BRANCH]
    assert f"feedback/{PROD}/lambdaMemory" in rows  # the other proposals are still there
    assert rows[f"feedback/{PROD}/lambdaMemory"].get("status", "pending") in ("pending", "unchanged")


SIDECARS = {
    "recommendations-is-a-number": "kind: ConfigurationRecommendation\nspec:\n  recommendations: 5\n",
    "spec-is-a-string": "kind: ConfigurationRecommendation\nspec: hello\n",
    "entry-is-a-number": "kind: ConfigurationRecommendation\nspec:\n  recommendations: [5]\n",
    "field-is-a-list": "kind: ConfigurationRecommendation\nspec:\n  recommendations: [{field: [1]}]\n",
    "not-a-recommendation": "kind: Other\n",
    "another-claim-at-the-sidecar-path": DEV_CLAIM.replace(f"name: {DEV}", "name: squatter"),
}


@pytest.mark.parametrize("text", SIDECARS.values(), ids=SIDECARS.keys())
def test_a_bad_sidecar_stops_only_its_claim(w: World, text: str) -> None:
    w.commit({SIDECAR: text})
    before = w.refs()
    r = w.run(*w.analyze_write())
    check(w, r, code=1, line=lambda x: x.startswith(f"error: {SIDECAR}:"), before=before, processed=(PROD,))
    assert git_out(w.work, "show", f"main:{SIDECAR}") == text.rstrip("\n")  # left as it was


def test_accepting_from_a_bad_sidecar_is_one_line(w: World) -> None:
    w.commit({SIDECAR: SIDECARS["spec-is-a-string"]})
    before = w.refs()
    r = w.run("recommendations", "accept", DEV, "lambdaMemory", "--repo", str(w.work))
    check(w, r, code=2, line=f"feedbackctl: {SIDECAR}: spec is not a mapping", before=before)
    assert w.refs() == before


# --- properties: any record or sidecar document gives a value or one named problem ---------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8), st.floats())
DOCS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(["kind", "spec", "status", "op", "path", "value", "change",
                                         "target", "rationale", "state", "createdAt", "name",
                                         "recommendations", "field", "proposer"]), inner, max_size=5),
    ),
    max_leaves=20,
)  # fmt: skip


def _with_kind(doc: Any, kind: str) -> Any:
    return {**doc, "kind": kind} if isinstance(doc, dict) else doc


@settings(max_examples=300, deadline=None)
@given(DOCS)
def test_any_record_document_is_a_proposal_or_one_problem(doc: Any) -> None:
    text = yaml.safe_dump(_with_kind(doc, record.KIND))
    try:
        proposal_record.parse(text, "b:r.yaml")
    except ProposalError as e:
        assert str(e).startswith("b:r.yaml")


@settings(max_examples=300, deadline=None)
@given(DOCS)
def test_any_sidecar_document_is_entries_or_one_problem(doc: Any) -> None:
    text = yaml.safe_dump(_with_kind(doc, "ConfigurationRecommendation")).encode()
    try:
        got = read_sidecar(text, "s.yaml")
    except UsageError as e:
        assert str(e).startswith("s.yaml")
        return
    assert got is not None
    entries = got["spec"].get("recommendations") or []
    assert all(isinstance(e, dict) for e in entries)
