"""``audit verify`` replays commits under a Kustomize root with the overlays re-rendered."""

from __future__ import annotations

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.replay import Replay
from feedbackctl.authority.snapshot import load_snapshot
from feedbackctl.core.rules import RuleId
from feedbackctl.patterns.audit import verify
from tests.gitutil import RepoFactory
from tests.kustomizefix import corpus_repo, overlay
from tests.test_kustomize import JSON6902_FILE, MEMORY_FILE, MEMORY_OPS, commit_edit, snap

EAST = "messagewall-prod-east"


def test_a_commit_that_changes_an_overlay_patch_is_replayed_with_the_overlay_rendered(
    repo_factory: RepoFactory,
) -> None:
    # The value lives in a patch file of the overlay, not in its kustomization: the commit
    # changes only that file, so the replay must re-render the overlay to see the new value.
    work = corpus_repo(repo_factory, {overlay("prod-east"): JSON6902_FILE, MEMORY_FILE: MEMORY_OPS})
    s = snap(work)
    sha = commit_edit(s, [(EAST, "lambdaMemory", 640)])
    repo = GitRepo.open(work)
    for c, _, after, error in Replay(repo).walk(sha):
        assert error is None
        if c.sha == sha:
            east = after.claim(EAST)
            assert east is not None and east.value("lambdaMemory") == 640
            full = load_snapshot(repo, None, at=sha)
            assert [(x.name, x.spec) for x in after.claims] == [(x.name, x.spec) for x in full.claims]
    result = verify(repo, None, None)
    stale = {RuleId.TRAILER_DIFF, RuleId.UNDECLARED_CHANGE, RuleId.SCHEMA}
    assert [v for v in result.violations if v.rule in stale] == []
