"""The batch writer: one fast-import stream for many commits, refs in one CAS transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from feedbackctl.authority.fastimport import NewCommit, RefUpdate, read_objects, update_refs, write_commits
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.errors import CommandError, ConflictError
from tests.gitutil import git_out, make_repo

WHEN = datetime(2026, 11, 8, 1, 2, 3, tzinfo=UTC)


@pytest.fixture()
def repo(tmp_path: Path) -> GitRepo:
    work, _ = make_repo(
        tmp_path, {"a.yaml": "a: 1\n", "run.sh": "echo hi\n", "gone.txt": "x\n"}, bare_origin=False
    )
    (work / "run.sh").chmod(0o755)
    git_out(work, "add", "run.sh")
    git_out(work, "commit", "-q", "-m", "exec bit")
    return GitRepo.open(work)


def test_many_commits_in_one_stream(repo: GitRepo) -> None:
    base = repo.resolve("main")
    commits = [
        NewCommit(
            base, {"a.yaml": f"a: {i}\n".encode(), f"p/{i}.yaml": b"x: 1\n"}, f"commit {i}\n\nbody", WHEN
        )
        for i in range(50)
    ]
    shas = write_commits(repo, commits)
    assert len(set(shas)) == 50
    work = repo.work_tree
    assert work is not None
    for i in (0, 49):
        assert git_out(work, "rev-parse", f"{shas[i]}^") == base
        assert git_out(work, "show", f"{shas[i]}:a.yaml") == f"a: {i}"
        assert git_out(work, "diff", "--name-only", base, shas[i]).splitlines() == ["a.yaml", f"p/{i}.yaml"]
    assert git_out(work, "log", "-1", "--format=%s|%an <%ae>|%cI", shas[3]) == (
        "commit 3|feedbackctl <feedbackctl@localhost>|2026-11-08T01:02:03+00:00"  # the tool's own
    )
    # Only objects: no ref moved and no scratch ref is left behind.
    assert git_out(work, "for-each-ref", "--format=%(refname)").splitlines() == ["refs/heads/main"]
    assert git_out(work, "status", "--porcelain") == ""


def test_modes_are_kept_and_deletions_work(repo: GitRepo) -> None:
    base = repo.resolve("main")
    (sha,) = write_commits(repo, [NewCommit(base, {"run.sh": b"echo bye\n", "gone.txt": None}, "edit", WHEN)])
    work = repo.work_tree
    assert work is not None
    assert git_out(work, "ls-tree", sha, "run.sh").startswith("100755 ")
    assert git_out(work, "ls-tree", sha, "gone.txt") == ""
    assert read_objects(repo, [f"{sha}:run.sh", f"{sha}:gone.txt"]) == {
        f"{sha}:run.sh": b"echo bye\n",
        f"{sha}:gone.txt": None,
    }


def test_explicit_author(repo: GitRepo) -> None:
    base = repo.resolve("main")
    (sha,) = write_commits(
        repo, [NewCommit(base, {"a.yaml": b"a: 2\n"}, "m", WHEN, ("Rev Iewer", "r@x.org"))]
    )
    assert git_out(repo.git_dir, "log", "-1", "--format=%an %ae %cn", sha) == "Rev Iewer r@x.org Rev Iewer"


def test_refs_move_together_or_not_at_all(repo: GitRepo) -> None:
    base = repo.resolve("main")
    one, two = write_commits(
        repo, [NewCommit(base, {"a.yaml": f"a: {i}\n".encode()}, "m", WHEN) for i in (1, 2)]
    )
    update_refs(repo, [RefUpdate("refs/heads/p/one", one, None), RefUpdate("refs/heads/p/two", two, None)])
    assert repo.list_refs("refs/heads/p/") == {"refs/heads/p/one": one, "refs/heads/p/two": two}
    # The second update expects a stale value: the first must not move either.
    with pytest.raises(ConflictError, match="but expected"):
        update_refs(repo, [RefUpdate("refs/heads/p/one", two, one), RefUpdate("refs/heads/p/two", one, one)])
    assert repo.list_refs("refs/heads/p/") == {"refs/heads/p/one": one, "refs/heads/p/two": two}
    with pytest.raises(ConflictError, match="already exists"):
        update_refs(repo, [RefUpdate("refs/heads/p/one", two, None)])
    update_refs(repo, [RefUpdate("refs/heads/p/one", None, one)])
    assert repo.list_refs("refs/heads/p/") == {"refs/heads/p/two": two}


def test_a_ref_that_cannot_exist_is_a_command_error(repo: GitRepo) -> None:
    base = repo.resolve("main")
    with pytest.raises(CommandError, match="exists; cannot create"):
        update_refs(repo, [RefUpdate("refs/heads/main/sub", base, None)])


def test_bad_paths_write_nothing(repo: GitRepo) -> None:
    from feedbackctl.errors import FeedbackError

    base = repo.resolve("main")
    with pytest.raises(FeedbackError, match="not a clean repo-relative file path"):
        write_commits(repo, [NewCommit(base, {"../escape": b"x"}, "m", WHEN)])
