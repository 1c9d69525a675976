"""Bad Kustomize input: each is one clear problem, and every other claim still runs."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.snapshot import load_snapshot
from feedbackctl.errors import UsageError
from tests.clirun import cli
from tests.gitutil import RepoFactory
from tests.kustomizefix import (
    BASE,
    NOW,
    PLAIN,
    RENDERED,
    corpus_cli,
    corpus_files,
    corpus_repo,
    metrics_dir,
    overlay,
    replace_in,
)

DEV_EAST = overlay("dev-east")
OTHERS = sorted({*PLAIN, *RENDERED} - {"messagewall-dev-east"})

BROKEN = {
    "malformed kustomization": (
        replace_in(DEV_EAST, "resources:\n  - ../../base\n", "resources:\n  - ../../base\n  bad: [\n"),
        rf"{DEV_EAST}:\d+: malformed YAML",
    ),
    "patch target matches nothing": (
        replace_in(DEV_EAST, "      name: messagewall\n", "      name: messagewal\n"),
        rf"{DEV_EAST}: patches\[0\]: target \{{kind=ServerlessEventAppClaim, name=messagewal\}} "
        "matches no resource, so kustomize would skip the patch silently; fix the target",
    ),
    "resource outside the repo": (
        replace_in(DEV_EAST, "  - ../../base\n", "  - ../../base\n  - ../../../../../etc\n"),
        rf"{DEV_EAST}: resources\[1\]: '../../../../../etc' points outside the repository",
    ),
    "missing resource": (
        replace_in(DEV_EAST, "  - ../../base\n", "  - ../../bsae\n"),
        rf"{DEV_EAST}: resources\[0\]: '../../bsae' does not exist at [0-9a-f]{{8}}; fix the path",
    ),
    "remote base": (
        replace_in(DEV_EAST, "  - ../../base\n", "  - https://github.com/acme/claims//base?ref=v1\n"),
        rf"{DEV_EAST}: resources\[0\]: remote .* is not supported",
    ),
    "kubectl refuses it": (
        replace_in(DEV_EAST, "kind: Kustomization\n", "kind: Kustomization\nnamePrefix: [1]\n"),
        r"infra/claims/overlays/dev-east/: kubectl kustomize failed: .*; fix the overlay",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_bad_overlay_is_one_problem_and_the_others_still_load(repo_factory: RepoFactory, case: str) -> None:
    text, message = BROKEN[case]
    s = load_snapshot(GitRepo.open(corpus_repo(repo_factory, {DEV_EAST: text})), None)
    assert len(s.errors) == 1, [str(e) for e in s.errors]
    assert re.search(message, str(s.errors[0])), str(s.errors[0])
    assert sorted(c.name for c in s.claims) == OTHERS


def test_a_broken_base_names_the_base_for_every_overlay_that_uses_it(repo_factory: RepoFactory) -> None:
    base = "infra/claims/base/kustomization.yaml"
    work = corpus_repo(repo_factory, {base: "resources:\n  - claim.yaml\n  - missing.yaml\n"})
    s = load_snapshot(GitRepo.open(work), None)
    assert sorted(c.name for c in s.claims) == sorted(PLAIN)
    # Once for the base itself, once for each overlay it leaves without claims.
    assert len(s.errors) == 5
    for e in s.errors:
        assert str(e).startswith(f"{base}: resources[1]: 'missing.yaml' does not exist")
    reached = sorted(str(e).rsplit("(reached from ", 1)[-1] for e in s.errors[1:])
    assert reached == [
        f"infra/claims/overlays/{o}/)" for o in ("dev-east", "dev-west", "prod-east", "prod-west")
    ]


def test_a_cycle_of_kustomizations_is_an_error_not_a_hang(repo_factory: RepoFactory) -> None:
    base = "infra/claims/base/kustomization.yaml"
    work = corpus_repo(repo_factory, {base: "resources:\n  - claim.yaml\n  - ../overlays/dev-east\n"})
    s = load_snapshot(GitRepo.open(work), None)
    assert any("refer to each other in a cycle" in str(e) for e in s.errors)
    assert sorted(c.name for c in s.claims) == sorted(PLAIN)


def test_a_name_defined_by_an_overlay_and_a_plain_file_is_used_by_neither(repo_factory: RepoFactory) -> None:
    plain = corpus_files()["examples/claims/messagewall-prod.yaml"].replace(
        "name: messagewall-prod\n", "name: messagewall-prod-east\n"
    )
    work = corpus_repo(repo_factory, {"examples/claims/messagewall-prod.yaml": plain})
    s = load_snapshot(GitRepo.open(work), None)
    assert s.claim("messagewall-prod-east") is None
    assert [str(e) for e in s.errors] == [
        "claim 'messagewall-prod-east' is defined twice: examples/claims/messagewall-prod.yaml and "
        "infra/claims/overlays/prod-east/kustomization.yaml; rename one"
    ]


def test_analyze_reports_a_bad_overlay_and_decides_for_every_other_claim(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    work = corpus_repo(repo_factory, {DEV_EAST: BROKEN["patch target matches nothing"][0]})
    r = corpus_cli("analyze", work, tmp_path)
    assert r.code == 1, r.stderr
    out = r.json()
    assert sorted({d["claim"] for d in out["decisions"]}) == OTHERS
    assert [p["message"] for p in out["problems"]] == [
        f"{DEV_EAST}: patches[0]: target {{kind=ServerlessEventAppClaim, name=messagewal}} matches no "
        "resource, so kustomize would skip the patch silently; fix the target"
    ]
    assert "Traceback" not in r.stderr


def test_missing_kubectl_is_a_usage_error(repo_factory: RepoFactory, tmp_path: Path) -> None:
    work = corpus_repo(repo_factory)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    git = next(Path(p, "git") for p in os.environ["PATH"].split(os.pathsep) if Path(p, "git").exists())
    (bin_dir / "git").symlink_to(git)
    r = cli(
        "analyze", "--repo", str(work), "--metrics", str(metrics_dir(tmp_path)), "--now", NOW,
        env={"PATH": str(bin_dir)},
    )  # fmt: skip
    assert r.code == 2
    assert r.stderr.strip().splitlines() == [
        "feedbackctl: `kubectl` is not installed or not on PATH; it renders the Kustomize overlay "
        "infra/claims/overlays/dev-east/: install kubectl (or set FEEDBACKCTL_KUBECTL), or leave "
        "Kustomize directories out of claims.paths in .feedbackctl.yaml"
    ]


def test_missing_kubectl_raises_usage_error_in_process(repo_factory: RepoFactory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # New content: renders of the unchanged corpus are already cached in this process.
    work = corpus_repo(repo_factory, {BASE: corpus_files()[BASE] + "# uncached\n"})
    monkeypatch.setenv("FEEDBACKCTL_KUBECTL", "/nonexistent/kubectl")
    with pytest.raises(UsageError, match=r"`/nonexistent/kubectl` is not installed or not on PATH"):
        load_snapshot(GitRepo.open(work), None)


def test_without_overlays_kubectl_is_never_needed(repo_factory: RepoFactory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    files = {p: t for p, t in corpus_files().items() if not p.startswith("infra/")}
    work, _ = repo_factory(files)
    monkeypatch.setenv("FEEDBACKCTL_KUBECTL", "/nonexistent/kubectl")
    s = load_snapshot(GitRepo.open(work), None)
    assert sorted(c.name for c in s.claims) == sorted(PLAIN) and s.errors == []


def test_a_remote_transformer_config_is_refused_before_kubectl_runs(repo_factory: RepoFactory) -> None:
    text = corpus_files()[DEV_EAST] + "transformers:\n  - https://example.com/evil.yaml\n"
    s = load_snapshot(GitRepo.open(corpus_repo(repo_factory, {DEV_EAST: text})), None)
    assert [str(e) for e in s.errors] == [
        f"{DEV_EAST}: transformers[0]: remote 'https://example.com/evil.yaml' is not supported "
        "(feedbackctl renders only what the repo holds at the ref); vendor it into the repo"
    ]
    assert sorted(c.name for c in s.claims) == OTHERS
