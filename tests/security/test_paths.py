"""Hostile paths: tree entries named '..' or '.git', control characters, path settings that leave the repo.

The tree entries are made the way a hostile pusher would (``git mktree
--missing``; a server without ``receive.fsckObjects`` takes them). Each CLI
case asserts one clear line naming the commit (or the file and setting) and
the path, exit 1 or 2, the other claims still processed and nothing written
outside the repo and the tool's temp folder.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from pathlib import Path

import pytest

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.paths import UnsafePathError, inside, path_problem
from tests.autotunefix import DEV_CLAIM, PROD_CLAIM, T0, autotune, example_metrics, iso
from tests.clirun import cli
from tests.gitutil import RepoFactory, commit_files, git_out
from tests.kustomizefix import corpus_repo, overlay
from tests.security.hostilefix import (
    ALL_CLAIMS,
    analyze,
    assert_refused,
    evil_commit,
    files_under,
    problems,
    run_cli,
)

UP = "/".join([".."] * 24)  # enough to reach / from any temp folder


def _target() -> Path:
    """A file a path-escape would create: in the real temp dir, never created by anyone else."""
    return Path(tempfile.gettempdir()) / f"h14a-escape-{uuid.uuid4().hex}"


BAD = {
    "": "is empty",
    "/etc/passwd": "is absolute",
    "a/../b": "has a '..' component",
    "../x": "has a '..' component",
    "a/./b": "has a '.' component",
    "a//b": "has an empty component",
    "a/": "has an empty component",
    ".git/config": "has a '.git' component",
    "claims/.GIT/hooks/x": "has a '.git' component",
    "claims/.git./x": "has a '.git' component",
    "a\0b": "NUL or control character",
    "a\nb.yaml": "NUL or control character",
    "a\x1b[31mb": "NUL or control character",
    "a\\..\\b": "backslash",
}


@pytest.mark.parametrize("path", sorted(BAD))
def test_the_one_validator_names_what_is_wrong(path: str) -> None:
    assert BAD[path] in (path_problem(path) or ""), path_problem(path)


@pytest.mark.parametrize("path", ["claims/a.yaml", "a", ".feedbackctl.yaml", "x/.gitignore", "x/..y/z"])
def test_clean_paths_pass(path: str) -> None:
    assert path_problem(path) is None


def test_materialising_refuses_a_target_that_resolves_outside(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "link").symlink_to(tmp_path)
    with pytest.raises(UnsafePathError, match="resolves outside"):
        inside(folder, "link/x", "test")
    assert inside(folder, "a/b", "test") == Path(os.path.realpath(folder)) / "a" / "b"


def test_a_dotdot_entry_in_an_overlay_is_never_written_outside_the_temp_folder(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    """The reported exploit: a tree entry ``../../../x`` inside a Kustomize overlay."""
    target = _target()
    work = corpus_repo(repo_factory)
    sha = evil_commit(
        work, {f"infra/claims/overlays/dev-east/{UP}{target}": b"[core]\n\tfsmonitor = touch pwned\n"}
    )
    before = files_under(tmp_path, skip=(work, tmp_path / "tool-tmp"))
    r = analyze(tmp_path, work)
    assert not target.exists()
    assert_refused(
        r,
        rf"^commit {sha[:12]}: tree entry 'infra/claims/overlays/dev-east/\.\./.*' has a '\.\.' "
        "component; it was refused",
        ALL_CLAIMS,
    )
    assert {
        p
        for p in files_under(tmp_path, skip=(work, tmp_path / "tool-tmp")) - before
        if not p.startswith("metrics")
    } == set()


def test_a_dotdot_entry_among_plain_claims_is_one_problem(repo_factory: RepoFactory, tmp_path: Path) -> None:
    work = corpus_repo(repo_factory)
    target = _target()
    sha = evil_commit(work, {f"examples/claims/{UP}{target}.yaml": DEV_CLAIM.encode()})
    r = analyze(tmp_path, work)
    assert not Path(f"{target}.yaml").exists()
    assert_refused(r, rf"^commit {sha[:12]}: tree entry 'examples/claims/\.\./", ALL_CLAIMS)


@pytest.mark.parametrize(
    ("name", "shown", "why"),
    [
        ("examples/claims/.git/evil.yaml", "examples/claims/.git/evil.yaml", "has a '.git' component"),
        ("examples/claims/.GIT/evil.yaml", "examples/claims/.GIT/evil.yaml", "has a '.git' component"),
        ("examples/claims/evil\nline.yaml", r"examples/claims/evil\\nline.yaml", "NUL or control character"),
        (
            "examples/claims/\x1b[31mred.yaml",
            r"examples/claims/\\x1b\[31mred.yaml",
            "NUL or control character",
        ),
        ("examples/claims/./dot.yaml", "examples/claims/./dot.yaml", "has a '.' component"),
    ],
)
def test_odd_tree_entries_are_refused_naming_commit_and_path(
    repo_factory: RepoFactory, tmp_path: Path, name: str, shown: str, why: str
) -> None:
    work = corpus_repo(repo_factory)
    sha = evil_commit(work, {name: DEV_CLAIM.replace("messagewall-dev", "evil-claim").encode()})
    r = analyze(tmp_path, work)
    assert_refused(r, rf"^commit {sha[:12]}: tree entry '{shown}' .*{re.escape(why)}", ALL_CLAIMS)
    assert "evil-claim" not in r.stdout
    assert "\x1b" not in r.stdout + r.stderr


def test_a_write_on_top_of_a_hostile_tree_says_why_in_one_line(
    tmp_path: Path, repo_factory: RepoFactory
) -> None:
    """Before: every later write died with git's raw 'invalid path' from read-tree."""
    work, _ = repo_factory(
        {"claims/messagewall-prod.yaml": PROD_CLAIM, "claims/messagewall-dev.yaml": DEV_CLAIM}
    )
    sha = evil_commit(work, {f"claims/{UP}/tmp/x.yaml": b"x: 1\n"})
    metrics = example_metrics(tmp_path / "metrics")
    r = autotune(work, metrics, T0)
    out = r.stdout + r.stderr
    assert r.code in (1, 2), out
    assert re.search(rf"commit {sha[:12]}: tree entry 'claims/\.\./.*' has a '\.\.' component", out), out
    assert "invalid path" not in out and "Traceback" not in out
    assert git_out(work, "rev-parse", "HEAD") == sha  # nothing was written


def test_a_clean_write_still_works_next_to_the_checks(tmp_path: Path, repo_factory: RepoFactory) -> None:
    work, _ = repo_factory({"claims/messagewall-prod.yaml": PROD_CLAIM})
    r = autotune(work, example_metrics(tmp_path / "metrics"), T0)
    assert r.code == 0, r.stdout + r.stderr
    assert int(git_out(work, "rev-list", "--count", "HEAD")) == 2


def test_write_commit_refuses_a_hostile_edit_path(repo_factory: RepoFactory) -> None:
    work, _ = repo_factory({"a.yaml": "a: 1\n"})
    repo = GitRepo.open(work)
    head = repo.resolve("main")
    for bad in ("../x.yaml", "claims/.Git/config", "a\x07b.yaml"):
        with pytest.raises(UnsafePathError, match="not a clean repo-relative file path"):
            repo.write_commit(head, {bad: b"x\n"}, "m", T0)


# --- path settings in .feedbackctl.yaml ------------------------------------------------------

SETTINGS = {
    "metrics absolute": ("metrics: /etc\n", r"metrics: '/etc' leaves the repository"),
    "metrics escaping": ("metrics: ../../../etc\n", r"metrics: '\.\./\.\./\.\./etc' leaves the repository"),
    "metrics in .git": ("metrics: .git/objects\n", r"metrics: '\.git/objects' has a '\.git' component"),
    "policies in .git": ("policies: .git\n", r"policies: '\.git' has a '\.git' component"),
    "claims.paths absolute": ("claims:\n  paths: [/etc]\n", r"claims\.paths: '/etc' leaves the repository"),
    "recommendations escaping": (
        "recommendations:\n  dir: ../out\n",
        r"recommendations\.dir: '\.\./out' leaves",
    ),
    "proposals.dir control": ('proposals:\n  dir: "a\\x1bb"\n', r"proposals\.dir: .* control character"),
}


@pytest.mark.parametrize("case", sorted(SETTINGS))
def test_path_settings_that_leave_the_repo_are_refused(
    repo_factory: RepoFactory, tmp_path: Path, case: str
) -> None:
    text, named = SETTINGS[case]
    work, _ = repo_factory({"claims/messagewall-prod.yaml": PROD_CLAIM, ".feedbackctl.yaml": text})
    r = run_cli(tmp_path, "analyze", "--repo", str(work), "--now", iso(T0), "--output", "json")
    out = r.stdout + r.stderr
    assert r.code == 2, out
    assert re.search(rf"\.feedbackctl\.yaml: {named}", out), out
    assert "Traceback" not in out


def test_metrics_in_the_config_resolve_inside_the_repo_not_the_process_folder(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    """Run from an unrelated folder holding a decoy 'metrics' dir: the repo's own folder is read."""
    work, _ = repo_factory(
        {"claims/messagewall-prod.yaml": PROD_CLAIM, ".feedbackctl.yaml": "metrics: metrics\n"}
    )
    example_metrics(work / "metrics")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "metrics").mkdir(parents=True)  # empty decoy
    r = cli("analyze", "--repo", str(work), "--now", iso(T0), "--output", "json", cwd=elsewhere)
    assert r.code == 0, r.stdout + r.stderr
    assert [d["claim"] for d in r.json()["decisions"]][:1] == ["messagewall-prod"]


def test_a_metrics_folder_symlinked_out_of_the_repo_is_refused(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    work, _ = repo_factory({"claims/messagewall-prod.yaml": PROD_CLAIM, ".feedbackctl.yaml": "metrics: m\n"})
    outside = example_metrics(tmp_path / "outside")
    (work / "m").symlink_to(outside)
    r = run_cli(tmp_path, "analyze", "--repo", str(work), "--now", iso(T0), "--output", "json")
    out = r.stdout + r.stderr
    assert r.code == 2, out
    assert re.search(r"\.feedbackctl\.yaml: metrics: 'm' resolves outside .*\(a symlink\?\)", out), out


def test_problems_helper_sees_no_problem_on_the_honest_corpus(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    work = corpus_repo(repo_factory)
    commit_files(work, {overlay("dev-east"): (work / overlay("dev-east")).read_text()}, "no-op")
    r = analyze(tmp_path, work)
    assert r.code == 0 and problems(r) == [], r.stdout + r.stderr
