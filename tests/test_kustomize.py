"""Kustomize overlays on copies of the real corpus: claims, tracing, edits where the value is set."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.overlay_trace import RenderedLocation
from feedbackctl.authority.snapshot import Snapshot, load_snapshot
from feedbackctl.authority.writer import Plan, Staging, trailer, write
from feedbackctl.errors import ClaimError
from tests.gitutil import RepoFactory, git_out
from tests.kustomizefix import (
    BASE,
    OVERLAYS,
    PLAIN,
    RENDERED,
    corpus_files,
    corpus_repo,
    overlay,
    render_all,
)

NOW = datetime(2026, 11, 8, tzinfo=UTC)
PROD_EAST = overlay("prod-east")


def snap(work: Path) -> Snapshot:
    return load_snapshot(GitRepo.open(work), None)


def loc(s: Snapshot, claim: str, field: str) -> RenderedLocation:
    c = s.claim(claim)
    assert c is not None, f"{claim} not in {[x.name for x in s.claims]}"
    got = c.locations[f"spec.{field}"]
    assert isinstance(got, RenderedLocation)
    return got


def commit_edit(s: Snapshot, edits: list[tuple[str, str, object]], *, batch: bool = False) -> str:
    staging = Staging(s.repo, s.commit)
    plan = Plan(subject="feedbackctl: auto-tune")
    for claim, field, value in edits:
        c = s.claim(claim)
        assert c is not None
        old = c.value(field)
        staging.set_value(c, field, value, batch=batch)  # type: ignore[arg-type]
        plan.trailers.append(trailer("auto-tune", claim, field, old=old, new=value))  # type: ignore[arg-type]
    plan.edits = staging.edits()
    return write(s.repo, s.branch, s.commit, plan, NOW)


# -- overlays are claims -------------------------------------------------------------------


def test_overlays_render_claims_named_by_rendered_metadata_name(repo_factory: RepoFactory) -> None:
    s = snap(corpus_repo(repo_factory))
    assert s.errors == []
    assert sorted(c.name for c in s.claims) == sorted((*PLAIN, *RENDERED))
    # The base is only used by the overlays: its claim `messagewall` is not an effective claim.
    assert s.claim("messagewall") is None
    east = s.claim("messagewall-prod-east")
    assert east is not None and east.path == PROD_EAST
    assert (east.value("lambdaMemory"), east.value("lambdaTimeout"), east.value("region")) == (
        256,
        30,
        "us-east-1",
    )
    assert east.labels["environment"] == "prod" and east.is_production
    dev = s.claim("messagewall-dev-west")
    assert dev is not None and (dev.value("lambdaMemory"), dev.value("region")) == (128, "us-west-2")


def test_an_unreferenced_base_is_an_overlay_of_its_own(repo_factory: RepoFactory) -> None:
    gone = {overlay(o): None for o in OVERLAYS}
    s = snap(corpus_repo(repo_factory, gone))
    assert sorted(c.name for c in s.claims) == sorted((*PLAIN, "messagewall"))


def test_inline_json6902_op_is_traced_inside_the_block_scalar(repo_factory: RepoFactory) -> None:
    work = corpus_repo(repo_factory)
    s = snap(work)
    memory = loc(s, "messagewall-prod-east", "lambdaMemory")
    text = (work / PROD_EAST).read_text()
    lines = text.splitlines()
    assert (memory.path, memory.line) == (PROD_EAST, 29)
    assert text[memory.start : memory.end] == "256"
    assert lines[memory.line - 1] == "        value: 256"
    assert lines[memory.line - 2] == "        path: /spec/lambdaMemory"
    assert memory.column == lines[memory.line - 1].index("256") + 1
    assert memory.setter == "JSON 6902 patch patches[0] op 5" and memory.shared_by == ()
    timeout = loc(s, "messagewall-prod-east", "lambdaTimeout")
    assert text[timeout.start : timeout.end] == "30" and timeout.line == 32


def test_values_from_the_base_are_shared_by_the_overlays_that_keep_them(repo_factory: RepoFactory) -> None:
    work = corpus_repo(repo_factory)
    s = snap(work)
    memory = loc(s, "messagewall-dev-east", "lambdaMemory")
    base = (work / BASE).read_text()
    assert (memory.path, memory.line, base[memory.start : memory.end]) == (BASE, 19, "128")
    assert memory.shared_by == ("messagewall-dev-east", "messagewall-dev-west")
    event = loc(s, "messagewall-prod-west", "eventSource")
    assert event.path == BASE and event.shared_by == tuple(sorted(RENDERED))


# -- the edit goes where the value is set ------------------------------------------------------


def test_autotune_edit_of_prod_east_changes_one_line_of_its_overlay(repo_factory: RepoFactory) -> None:
    work = corpus_repo(repo_factory)
    before = render_all(work)
    s = snap(work)
    sha = commit_edit(s, [("messagewall-prod-east", "lambdaMemory", 384)])

    assert git_out(work, "diff", "--name-only", s.commit, sha) == PROD_EAST
    diff = git_out(work, "diff", "-U1", s.commit, sha).splitlines()
    changed = [ln for ln in diff if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    assert changed == ["-        value: 256", "+        value: 384"]
    assert "         path: /spec/lambdaMemory" in diff  # the context line right above
    # The checked-out branch advanced like a fast-forward: work tree clean, file updated.
    assert git_out(work, "status", "--porcelain") == ""
    after = render_all(work)
    assert after["prod-east"][0]["spec"]["lambdaMemory"] == 384
    expected = {o: docs for o, docs in before.items()}
    expected["prod-east"][0]["spec"]["lambdaMemory"] = 384
    assert after == expected
    assert git_out(work, "log", "-1", "--format=%(trailers:key=Feedback-Claim,valueonly)") == (
        "messagewall-prod-east"
    )


def test_dev_overlays_and_base_stay_byte_identical(repo_factory: RepoFactory) -> None:
    work = corpus_repo(repo_factory)
    s = snap(work)
    sha = commit_edit(
        s, [("messagewall-prod-east", "lambdaMemory", 384), ("messagewall-prod-east", "lambdaTimeout", 35)]
    )
    for path in (
        BASE,
        "infra/claims/base/kustomization.yaml",
        *(overlay(o) for o in OVERLAYS if o != "prod-east"),
    ):
        assert git_out(work, "rev-parse", f"{s.commit}:{path}") == git_out(work, "rev-parse", f"{sha}:{path}")
    after = snap(work)
    east = after.claim("messagewall-prod-east")
    assert east is not None and (east.value("lambdaMemory"), east.value("lambdaTimeout")) == (384, 35)


def test_plain_claim_files_work_beside_overlays(repo_factory: RepoFactory) -> None:
    work = corpus_repo(repo_factory)
    s = snap(work)
    sha = commit_edit(s, [("messagewall-prod", "lambdaMemory", 384)])
    diff = git_out(work, "diff", "-U0", s.commit, sha).splitlines()
    changed = [ln for ln in diff if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    assert changed == [
        "-  lambdaMemory: 256    # Higher memory for production",
        "+  lambdaMemory: 384    # Higher memory for production",
    ]
    assert git_out(work, "diff", "--name-only", s.commit, sha) == "examples/claims/messagewall-prod.yaml"


def test_a_shared_base_value_is_never_a_silent_single_claim_edit(repo_factory: RepoFactory) -> None:
    work = corpus_repo(repo_factory)
    s = snap(work)
    dev = s.claim("messagewall-dev-east")
    assert dev is not None
    staging = Staging(s.repo, s.commit)
    with pytest.raises(
        ClaimError, match=r"shared with messagewall-dev-west: .*batch change.*structural edit"
    ):
        staging.set_value(dev, "lambdaMemory", 256)
    assert staging.texts == {} and staging.rendered == {}


def test_a_batch_edit_of_the_base_changes_every_sharing_overlay_and_no_other(
    repo_factory: RepoFactory,
) -> None:
    work = corpus_repo(repo_factory)
    before = render_all(work)
    s = snap(work)
    sha = commit_edit(s, [("messagewall-dev-east", "lambdaMemory", 256)], batch=True)
    assert git_out(work, "diff", "--name-only", s.commit, sha) == BASE
    after = render_all(work)
    for o in ("dev-east", "dev-west"):
        before[o][0]["spec"]["lambdaMemory"] = 256
    assert after == before  # prod overlays set their own value: unchanged


def test_verification_refuses_an_edit_that_lands_in_the_wrong_place(repo_factory: RepoFactory) -> None:
    s = snap(corpus_repo(repo_factory))
    east, west = s.claim("messagewall-prod-east"), s.claim("messagewall-prod-west")
    assert east is not None and west is not None
    # A wrong trace (prod-west's op for prod-east's value) must be caught by re-rendering.
    wrong = replace(
        east, locations={**east.locations, "spec.lambdaMemory": west.locations["spec.lambdaMemory"]}
    )
    staging = Staging(s.repo, s.commit)
    with pytest.raises(ClaimError) as err:
        staging.set_value(wrong, "lambdaMemory", 384)
    message = str(err.value)
    assert "would also change messagewall-prod-west spec.lambdaMemory (256 -> 384)" in message
    assert message.endswith("nothing was written")
    assert staging.texts == {} and staging.rendered == {}


def test_an_edit_that_does_not_reach_the_claim_is_refused(repo_factory: RepoFactory) -> None:
    s = snap(corpus_repo(repo_factory))
    east, plain = s.claim("messagewall-prod-east"), s.claim("messagewall-prod")
    assert east is not None and plain is not None
    # A wrong trace into a file no overlay reads: the splice works, rendering shows it is useless.
    into_plain = replace(
        loc(s, "messagewall-prod-east", "lambdaMemory"),
        path=plain.path,
        doc_index=plain.doc_index,
        key_path=("spec", "lambdaMemory"),
        inner_key_path=None,
    )
    bogus = replace(east, locations={**east.locations, "spec.lambdaMemory": into_plain})
    staging = Staging(s.repo, s.commit)
    with pytest.raises(ClaimError) as err:
        staging.set_value(bogus, "lambdaMemory", 384)
    assert str(err.value).endswith("no overlay renders a changed messagewall-prod-east; nothing was written")
    assert staging.texts == {}


# -- patch files and untraceable values ------------------------------------------------------------

JSON6902_FILE = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
patches:
  - target: {kind: ServerlessEventAppClaim, name: messagewall}
    patch: |
      - op: replace
        path: /metadata/name
        value: messagewall-prod-east
      - op: replace
        path: /spec/environment
        value: prod
  - path: memory.yaml
    target:
      kind: ServerlessEventAppClaim
"""
MEMORY_OPS = "# tuned by feedbackctl\n- op: replace\n  path: /spec/lambdaMemory\n  value: 512  # MB\n"
SMP_FILE = JSON6902_FILE.replace(
    "  - path: memory.yaml\n    target:\n      kind: ServerlessEventAppClaim\n", "  - path: memory.yaml\n"
)
MEMORY_SMP = """\
apiVersion: messagewall.demo/v1alpha1
kind: ServerlessEventAppClaim
metadata:
  name: messagewall-prod-east
spec:
  lambdaMemory: 512  # MB
"""


MEMORY_FILE = "infra/claims/overlays/prod-east/memory.yaml"


@pytest.mark.parametrize(("kustomization", "patch", "setter"), [
    (JSON6902_FILE, MEMORY_OPS, f"JSON 6902 patch patches[1] ({MEMORY_FILE}) op 0"),
    (SMP_FILE, MEMORY_SMP, f"strategic-merge patch patches[1] ({MEMORY_FILE})"),
])  # fmt: skip
def test_values_set_in_patch_files_are_edited_there(
    repo_factory: RepoFactory, kustomization: str, patch: str, setter: str
) -> None:
    memory_file = MEMORY_FILE
    work = corpus_repo(repo_factory, {PROD_EAST: kustomization, memory_file: patch})
    s = snap(work)
    assert s.errors == []
    memory = loc(s, "messagewall-prod-east", "lambdaMemory")
    assert (memory.path, memory.setter) == (memory_file, setter)
    sha = commit_edit(s, [("messagewall-prod-east", "lambdaMemory", 640)])
    diff = git_out(work, "diff", "-U0", s.commit, sha).splitlines()
    changed = [ln for ln in diff if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    assert changed == ["-  value: 512  # MB", "+  value: 640  # MB"] or changed == [
        "-  lambdaMemory: 512  # MB",
        "+  lambdaMemory: 640  # MB",
    ]
    east = snap(work).claim("messagewall-prod-east")
    assert east is not None and east.value("lambdaMemory") == 640


def test_a_value_kustomize_sets_another_way_is_untraced_and_never_edited(repo_factory: RepoFactory) -> None:
    replacements = (
        "replacements:\n"
        "  - source: {kind: ServerlessEventAppClaim, fieldPath: spec.lambdaTimeout}\n"
        "    targets:\n"
        "      - select: {kind: ServerlessEventAppClaim}\n"
        "        fieldPaths: [spec.lambdaTimeout]\n"
    )
    text = corpus_files()[PROD_EAST] + replacements
    s = snap(corpus_repo(repo_factory, {PROD_EAST: text}))
    east = s.claim("messagewall-prod-east")
    assert east is not None and s.errors == []
    memory = loc(s, "messagewall-prod-east", "lambdaMemory")
    assert memory.reason == f"{PROD_EAST} uses replacements"
    with pytest.raises(ClaimError, match=r"cannot be traced to where it is set \(.* uses replacements\)"):
        Staging(s.repo, s.commit).set_value(east, "lambdaMemory", 384)


def test_override_in_one_overlay_adds_an_op_there_and_changes_only_that_claim(
    repo_factory: RepoFactory,
) -> None:
    work = corpus_repo(repo_factory)
    before = render_all(work)
    s = snap(work)
    dev = s.claim("messagewall-dev-east")
    assert dev is not None
    staging = Staging(s.repo, s.commit)
    path = staging.set_value(dev, "lambdaTimeout", 5, override=True)
    assert path == overlay("dev-east")
    plan = Plan("proposal", trailers=[trailer("proposal", dev.name, "lambdaTimeout", old=10, new=5)])
    plan.edits = staging.edits()
    sha = write(s.repo, s.branch, s.commit, plan, NOW)
    assert git_out(work, "diff", "--name-only", s.commit, sha) == overlay("dev-east")
    diff = git_out(work, "diff", "-U0", s.commit, sha).splitlines()
    assert [ln for ln in diff if ln[:1] in "+-" and not ln.startswith(("+++", "---"))] == [
        "+      - op: replace",
        "+        path: /spec/lambdaTimeout",
        "+        value: 5",
    ]
    before["dev-east"][0]["spec"]["lambdaTimeout"] = 5
    assert render_all(work) == before
    after = loc(snap(work), "messagewall-dev-east", "lambdaTimeout")
    assert (after.path, after.shared_by) == (overlay("dev-east"), ())


def test_override_needs_an_inline_json6902_patch_that_targets_the_claim(repo_factory: RepoFactory) -> None:
    smp_only = "resources:\n  - ../../base\npatches:\n  - path: name.yaml\n"
    rename = (
        "apiVersion: messagewall.demo/v1alpha1\nkind: ServerlessEventAppClaim\n"
        "metadata:\n  name: messagewall\nspec:\n  region: us-west-2\n"
    )
    work = corpus_repo(
        repo_factory,
        {overlay("dev-west"): smp_only, "infra/claims/overlays/dev-west/name.yaml": rename},
    )
    s = snap(work)
    assert s.errors == []
    base_claim = s.claim("messagewall")  # dev-west now renders the base's name
    assert base_claim is not None
    staging = Staging(s.repo, s.commit)
    with pytest.raises(
        ClaimError, match=r"no inline JSON 6902 patch there targets messagewall; add the op by hand"
    ):
        staging.set_value(base_claim, "lambdaTimeout", 5, override=True)
    assert staging.texts == {}


def test_a_bare_repo_renders_and_edits_its_overlays(repo_factory: RepoFactory, tmp_path: Path) -> None:
    work = corpus_repo(repo_factory)
    bare = tmp_path / "authority.git"
    git_out(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    s = load_snapshot(GitRepo.open(bare), "main")
    assert sorted(c.name for c in s.claims) == sorted((*PLAIN, *RENDERED))
    sha = commit_edit(s, [("messagewall-prod-west", "lambdaTimeout", 45)])
    assert git_out(bare, "diff", "--name-only", s.commit, sha) == overlay("prod-west")
    west = load_snapshot(GitRepo.open(bare), "main").claim("messagewall-prod-west")
    assert west is not None and west.value("lambdaTimeout") == 45
