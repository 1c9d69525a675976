"""``audit verify`` proves the shared-value rule: an auto-tune may not edit a value several claims share."""

from __future__ import annotations

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.snapshot import Snapshot
from feedbackctl.authority.writer import Plan, Staging, trailer, write
from feedbackctl.core.rules import PROVABLE, RuleId
from feedbackctl.patterns.audit import audit_json, verify
from tests.gitutil import RepoFactory, git_out
from tests.kustomizefix import BASE
from tests.test_kustomize import NOW, snap
from tests.test_kustomize_propose import corpus_with_autotune


def commit_edit(s: Snapshot, claim: str, value: int, *, batch: bool = False) -> str:
    """An auto-tune of spec.lambdaMemory written as autotune writes it (Staging, then the CAS write)."""
    c = s.claim(claim)
    assert c is not None
    staging = Staging(s.repo, s.commit)
    staging.set_value(c, "lambdaMemory", value, batch=batch)
    old = c.value("lambdaMemory")
    group = trailer(
        "auto-tune", claim, "lambdaMemory", old=old, new=value,  # type: ignore[arg-type]
        source="metric-fixtures", rule="memory-pressure", risk="LOW",
    )  # fmt: skip
    plan = Plan("feedbackctl: auto-tune", trailers=[group], edits=staging.edits())
    return write(s.repo, s.branch, s.commit, plan, NOW)


def found(work: object) -> list[tuple[str, str | None, str]]:
    result = verify(GitRepo.open(work), None, None)  # type: ignore[arg-type]
    assert not result.problems, result.problems
    return [(v.rule, v.claim, v.detail) for v in result.violations]


def test_shared_value_is_provable_and_listed_as_checked() -> None:
    assert RuleId.SHARED_VALUE in PROVABLE
    assert PROVABLE[-1] == RuleId.SHARED_VALUE  # appended: the report order of the others is unchanged


def test_a_forged_edit_of_a_shared_base_value_is_caught(repo_factory: RepoFactory) -> None:
    # The tool routes a shared value to a proposal; a commit that edits the base anyway, as
    # an auto-tune of one claim, changes every overlay that keeps the value.
    work = corpus_with_autotune(repo_factory, memory_max=1024)
    s = snap(work)
    sha = commit_edit(s, "messagewall-dev-east", 256, batch=True)
    assert git_out(work, "diff", "--name-only", s.commit, sha) == BASE
    shared = [(rule, claim, detail) for rule, claim, detail in found(work) if rule == RuleId.SHARED_VALUE]
    assert [(rule, claim) for rule, claim, _ in shared] == [(RuleId.SHARED_VALUE, "messagewall-dev-east")]
    assert f"spec.lambdaMemory is set in {BASE}:" in shared[0][2]
    assert "shared with messagewall-dev-west" in shared[0][2] and shared[0][2].endswith("proposal only")
    doc = audit_json(verify(GitRepo.open(work), None, None))
    assert doc["checked"][-1] == "shared-value" and not doc["ok"]


def test_an_edit_of_a_value_one_overlay_sets_passes(repo_factory: RepoFactory) -> None:
    work = corpus_with_autotune(repo_factory, memory_max=1024)
    s = snap(work)
    commit_edit(s, "messagewall-prod-east", 384)
    assert found(work) == []
