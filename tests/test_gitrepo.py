from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from feedbackctl.authority.gitrepo import GitRepo, check_ref_name
from feedbackctl.authority.trailers import format_message
from feedbackctl.errors import CommandError, ConflictError, FeedbackError, UsageError
from tests.gitutil import (
    CONFIG_EMAIL,
    CONFIG_NAME,
    HUMAN_EMAIL,
    HUMAN_NAME,
    RepoFactory,
    commit_files,
    git_out,
    make_repo,
    write_files,
)

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)
APP = "apiVersion: v1\nkind: ServerlessEventAppClaim\nspec:\n  lambdaMemory: 256  # tuned\n"
FILES = {
    "claims/dev/app.yaml": APP,
    "claims/prod/app.yaml": APP.replace("256", "512"),
    "claims-archive/old.yaml": "old: true\n",
    "README.md": "readme\n",
    "notes.txt": "notes\n",
}


def change(claim: str = "app", kind: str = "auto-tune") -> dict[str, str]:
    return {"Feedback-Kind": kind, "Feedback-Claim": claim, "Feedback-Field": "spec.lambdaMemory"}


def snapshot(work: Path) -> tuple[str, str, str, str]:
    """Everything advance must leave alone when it refuses: ref, index, status, diff."""
    return (
        git_out(work, "rev-parse", "refs/heads/main"),
        git_out(work, "ls-files", "-s", "--debug"),
        git_out(work, "status", "--porcelain", "--untracked-files=all"),
        git_out(work, "diff"),
    )


# -- opening -----------------------------------------------------------------


def test_non_git_path_is_a_usage_error(tmp_path: Path) -> None:
    for path in (tmp_path, tmp_path / "missing"):
        with pytest.raises(UsageError) as err:
            GitRepo.open(path)
        assert str(err.value) == (
            f"{path}: not a git repository; pass --repo a path inside a git work tree or a bare repo"
        )


def test_open_from_subdirectory_file_and_git_dir(tmp_path: Path) -> None:
    work, _ = make_repo(tmp_path, FILES, bare_origin=False)
    for where in (work, work / "claims" / "dev", work / "claims/dev/app.yaml", work / ".git"):
        repo = GitRepo.open(where)
        assert repo.work_tree == work.resolve()
        assert repo.git_dir == (work / ".git").resolve()
        assert not repo.is_bare


def test_repo_factory_pins_identity_dates_and_origin(repo_factory: RepoFactory) -> None:
    work, origin = repo_factory({"a.yaml": "a: 1\n"})
    work2, origin2 = repo_factory({"b.yaml": "b: 1\n"}, bare_origin=False, date="2026-03-01T00:00:00Z")
    assert work != work2 and not origin2.exists()
    assert git_out(work, "log", "-1", "--format=%an <%ae> %cn <%ce> %aI %cI") == (
        f"{HUMAN_NAME} <{HUMAN_EMAIL}> {HUMAN_NAME} <{HUMAN_EMAIL}> "
        "2026-01-01T00:00:00+00:00 2026-01-01T00:00:00+00:00"
    )
    assert git_out(work2, "log", "-1", "--format=%cI") == "2026-03-01T00:00:00+00:00"
    assert git_out(work, "rev-parse", "--abbrev-ref", "main@{upstream}") == "origin/main"
    assert git_out(origin, "rev-parse", "main") == git_out(work, "rev-parse", "main")
    assert git_out(work, "config", "user.name") == CONFIG_NAME
    assert git_out(work, "status", "--porcelain") == ""


def test_bare_repo_reads(tmp_path: Path) -> None:
    _, origin = make_repo(tmp_path, FILES)
    repo = GitRepo.open(origin)
    assert repo.is_bare and repo.work_tree is None
    assert repo.default_ref() == "main"
    commit = repo.resolve("main")
    files = repo.list_files(commit, ("claims/",))
    assert [p for p, _ in files] == ["claims/dev/app.yaml", "claims/prod/app.yaml"]
    blobs = repo.read_blobs([b for _, b in files])
    assert blobs[files[0][1]] == APP.encode()
    assert repo.read_file(commit, "claims/prod/app.yaml") == FILES["claims/prod/app.yaml"].encode()
    assert repo.read_file(commit, "claims/none.yaml") is None


def test_detached_head_needs_ref(tmp_path: Path) -> None:
    work, _ = make_repo(tmp_path, FILES, bare_origin=False)
    git_out(work, "checkout", "-q", "--detach")
    repo = GitRepo.open(work)
    assert repo.current_branch() is None
    with pytest.raises(UsageError, match=r"HEAD is detached in .*; pass --ref BRANCH"):
        repo.default_ref()


def test_missing_ref(tmp_path: Path) -> None:
    work, _ = make_repo(tmp_path, FILES, bare_origin=False)
    repo = GitRepo.open(work)
    for ref in ("nope", "--all", "main~5"):
        with pytest.raises(UsageError, match=rf"^ref '{ref}' not found in {work}; pass --ref"):
            repo.resolve(ref)
    with pytest.raises(UsageError, match="ref 'nope' not found"):
        repo.log("nope")
    assert repo.resolve("main") == git_out(work, "rev-parse", "main")
    assert repo.resolve("HEAD") == repo.resolve("main")


@pytest.mark.parametrize(
    "name",
    ["main", "feedback/app/lambdaMemory", "a..b", "x.lock", "has space", ".hidden", "a//b", "end/",
     "tilde~1", "colon:x", "at@{x", "q?", "star*", "br[", "back\\slash", "-dash", "ok-name_1.2"],
)  # fmt: skip
def test_ref_name_rules_match_git(name: str) -> None:
    git_ok = subprocess.run(["git", "check-ref-format", f"refs/heads/{name}"], check=False).returncode == 0
    try:
        check_ref_name(f"refs/heads/{name}")
        ours = True
    except UsageError as err:
        assert f"'refs/heads/{name}' is not a valid git ref name" in str(err)
        ours = False
    assert ours == git_ok


def test_ref_name(tmp_path: Path) -> None:
    work, _ = make_repo(tmp_path, FILES, bare_origin=False)
    repo = GitRepo.open(work)
    assert repo.ref_name("main") == "refs/heads/main"
    assert repo.ref_name("HEAD") == "refs/heads/main"
    assert repo.ref_name("refs/tags/v1") == "refs/tags/v1"
    with pytest.raises(UsageError, match="not a valid git ref name"):
        repo.ref_name("bad name")


# -- reading -----------------------------------------------------------------


def test_list_files_prefixes_and_suffixes(tmp_path: Path) -> None:
    work, _ = make_repo(
        tmp_path,
        {**FILES, "claims/dev/kustomization.yml": "k\n", "claims/dev/doc.md": "d\n"},
        bare_origin=False,
    )
    os.symlink("app.yaml", work / "claims/dev/link.yaml")  # not a claim file of its own
    git_out(work, "add", "claims/dev/link.yaml")
    git_out(work, "commit", "-q", "-m", "symlink")
    commit = git_out(work, "rev-parse", "HEAD")
    repo = GitRepo.open(work)

    def paths(*prefixes: str, suffixes: tuple[str, ...] = (".yaml", ".yml")) -> list[str]:
        return [p for p, _ in repo.list_files(commit, prefixes, suffixes)]

    assert paths("") == [
        "claims-archive/old.yaml",
        "claims/dev/app.yaml",
        "claims/dev/kustomization.yml",
        "claims/prod/app.yaml",
    ]
    assert paths("claims/") == ["claims/dev/app.yaml", "claims/dev/kustomization.yml", "claims/prod/app.yaml"]
    assert paths("claims") == paths("")
    assert paths("claims/prod/", "claims-archive/") == ["claims-archive/old.yaml", "claims/prod/app.yaml"]
    assert paths("claims/dev/app") == ["claims/dev/app.yaml"]
    assert paths("claims/dev/", suffixes=()) == [
        "claims/dev/app.yaml",
        "claims/dev/doc.md",
        "claims/dev/kustomization.yml",
    ]
    assert paths("nowhere/") == []
    listed = dict(repo.list_files(commit))
    assert listed["claims/dev/app.yaml"] == git_out(work, "rev-parse", f"{commit}:claims/dev/app.yaml")


def test_read_blobs_in_one_batch(tmp_path: Path) -> None:
    contents = {f"claims/c{i:03d}.yaml": f"name: c{i}\n" + "x\n" * i for i in range(150)}
    contents["claims/empty.yaml"] = ""
    contents["claims/odd.yaml"] = "line\r\n\n\nno-final-newline"
    work, _ = make_repo(tmp_path, contents, bare_origin=False)
    repo = GitRepo.open(work)
    listed = repo.list_files(repo.resolve("main"))
    blobs = [b for _, b in listed]
    got = repo.read_blobs(blobs + blobs[:3])
    assert len(got) == len(set(blobs))
    assert {p: got[b].decode() for p, b in listed} == contents
    assert repo.read_blobs([]) == {}
    with pytest.raises(FeedbackError, match="is missing"):
        repo.read_blobs(["0" * 40])


def test_read_file_of_directory_is_none(tmp_path: Path) -> None:
    work, _ = make_repo(tmp_path, FILES, bare_origin=False)
    repo = GitRepo.open(work)
    assert repo.read_file("main", "claims") is None
    assert repo.read_file("main", "notes.txt") == b"notes\n"


def test_changed_paths_and_ancestry(tmp_path: Path) -> None:
    work, _ = make_repo(tmp_path, FILES, bare_origin=False)
    old = git_out(work, "rev-parse", "HEAD")
    new = commit_files(work, {"notes.txt": None, "claims/dev/app.yaml": "x\n", "new/a.yaml": "a\n"}, "m")
    repo = GitRepo.open(work)
    assert repo.changed_paths(old, new) == ["claims/dev/app.yaml", "new/a.yaml", "notes.txt"]
    assert repo.is_ancestor(old, new) and not repo.is_ancestor(new, old)


def test_list_refs(tmp_path: Path) -> None:
    work, _ = make_repo(tmp_path, FILES, bare_origin=False)
    head = git_out(work, "rev-parse", "HEAD")
    git_out(work, "branch", "feedback/app/mem")
    git_out(work, "branch", "feedback-other")
    git_out(work, "tag", "-a", "-m", "baseline", "baseline/app")
    repo = GitRepo.open(work)
    assert repo.list_refs("refs/heads/feedback/") == {"refs/heads/feedback/app/mem": head}
    assert set(repo.list_refs("refs/heads/feedback")) == {
        "refs/heads/feedback/app/mem",
        "refs/heads/feedback-other",
    }
    assert repo.list_refs("refs/tags/") == {"refs/tags/baseline/app": head}


# -- writing -----------------------------------------------------------------


def test_write_commit_builds_commit_without_touching_checkout(tmp_path: Path) -> None:
    work, _ = make_repo(tmp_path, {**FILES, "bin/run.sh": "#!/bin/sh\n"}, bare_origin=False)
    git_out(work, "update-index", "--chmod=+x", "bin/run.sh")
    base = commit_files(work, {}, "exec bit")
    git_out(work, "config", "core.autocrlf", "true")  # must not rewrite the bytes we hand over
    before = snapshot(work)
    repo = GitRepo.open(work)
    now = datetime(2026, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=-5, minutes=-30)))
    sha = repo.write_commit(
        base,
        {
            "claims/dev/app.yaml": b"changed\r\n",
            "bin/run.sh": b"#!/bin/sh\nexit 0\n",
            "notes.txt": None,
            "recs/dev/app.yaml": b"kind: ConfigurationRecommendation\n",
        },
        format_message("Tune app", "", [change()]),
        now,
        author=("Bot", "bot@example.com"),
    )
    assert snapshot(work) == before
    assert git_out(work, "rev-parse", f"{sha}^@") == base
    assert repo.read_file(sha, "claims/dev/app.yaml") == b"changed\r\n"
    assert git_out(work, "show", f"{sha}:recs/dev/app.yaml") == "kind: ConfigurationRecommendation"
    assert git_out(work, "show", f"{sha}:claims/prod/app.yaml") + "\n" == FILES["claims/prod/app.yaml"]
    assert "notes.txt" not in git_out(work, "ls-tree", "-r", "--name-only", sha).split("\n")
    assert git_out(work, "ls-tree", sha, "bin/run.sh").startswith("100755 ")
    assert git_out(work, "log", "-1", "--format=%an|%ae|%cn|%ce|%aI|%cI", sha) == (
        "Bot|bot@example.com|Bot|bot@example.com|2026-02-03T04:05:06-05:30|2026-02-03T04:05:06-05:30"
    )
    assert git_out(work, "log", "-1", "--format=%B", sha).startswith("Tune app\n\nFeedback-Kind: auto-tune")
    git_out(work, "fsck", "--no-progress")


def test_automated_commits_are_the_bots_a_persons_identity_falls_back_env_then_config_then_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work, _ = make_repo(tmp_path, FILES, bare_origin=False)
    base = git_out(work, "rev-parse", "HEAD")
    epoch = int(NOW.timestamp())
    default = "feedbackctl <feedbackctl@localhost>"
    # The tool's own commits: never whoever happens to run it.
    repo = GitRepo.open(work)
    sha = repo.write_commit(base, {"a.yaml": b"a\n"}, "m", NOW)
    got = git_out(work, "log", "-1", "--format=%an <%ae> / %cn <%ce> %ct", sha)
    assert got == f"{default} / {default} {epoch}"
    repo.bot_identity = ("Tuning Bot", "tuning@example.org")
    sha = repo.write_commit(base, {"a.yaml": b"a\n"}, "m", NOW)
    assert git_out(work, "log", "-1", "--format=%an <%ae> / %cn <%ce>", sha) == (
        "Tuning Bot <tuning@example.org> / Tuning Bot <tuning@example.org>"
    )

    def who() -> str:
        name, email = GitRepo.open(work)._identity("AUTHOR")
        return f"{name} <{email}>"

    assert who() == f"{HUMAN_NAME} <{HUMAN_EMAIL}>"
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(var)
    assert who() == f"{CONFIG_NAME} <{CONFIG_EMAIL}>"
    empty = tmp_path / "empty-gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    assert who() == default


def test_write_commit_refuses_paths_outside_the_repo(tmp_path: Path) -> None:
    work, _ = make_repo(tmp_path, FILES, bare_origin=False)
    repo = GitRepo.open(work)
    for bad in ("../x.yaml", "/abs.yaml", ".git/config", "a//b.yaml", ""):
        with pytest.raises(FeedbackError, match="nothing was written"):
            repo.write_commit("main", {bad: b"x"}, "m", NOW)


def test_update_ref_is_compare_and_swap(tmp_path: Path) -> None:
    _, origin = make_repo(tmp_path, FILES)
    repo = GitRepo.open(origin)
    old = repo.resolve("main")
    first = repo.write_commit(old, {"a.yaml": b"1\n"}, "first", NOW)
    second = repo.write_commit(old, {"a.yaml": b"2\n"}, "second", NOW)
    repo.update_ref("main", first, old)
    with pytest.raises(ConflictError, match="refs/heads/main moved"):
        repo.update_ref("main", second, old)
    assert repo.resolve("main") == first
    repo.update_ref("feedback/app", second, None)
    with pytest.raises(ConflictError):
        repo.update_ref("feedback/app", first, None)
    assert repo.resolve("feedback/app") == second


WRITER = """
import sys
from datetime import UTC, datetime
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.errors import ConflictError

repo = GitRepo.open(sys.argv[1])
old = sys.argv[2]
me = sys.argv[3]
new = repo.write_commit(old, {"claims/dev/app.yaml": f"writer {me}\\n".encode()}, f"writer {me}",
                        datetime(2026, 1, 5, tzinfo=UTC))
print("ready", flush=True)
sys.stdin.readline()
try:
    repo.update_ref("main", new, old)
except ConflictError:
    print("lost", new, flush=True)
else:
    print("won", new, flush=True)
"""


def test_concurrent_processes_exactly_one_wins(tmp_path: Path) -> None:
    _, origin = make_repo(tmp_path, FILES)
    old = git_out(origin, "rev-parse", "main")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(origin), old, str(i)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(8)
    ]
    for proc in procs:  # every writer has its commit ready before any moves the ref
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = [proc.communicate()[0].split() for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    winners = [new for outcome, new in results if outcome == "won"]
    assert len(winners) == 1
    assert sorted(outcome for outcome, _ in results) == ["lost"] * 7 + ["won"]
    assert git_out(origin, "rev-parse", "main") == winners[0]


# -- advancing a branch --------------------------------------------------------


def edit(repo: GitRepo, base: str, edits: dict[str, bytes | None]) -> str:
    return repo.write_commit(base, edits, format_message("Tune", "", [change()]), NOW)


def test_advance_checked_out_branch_keeps_status_clean(tmp_path: Path) -> None:
    work, _ = make_repo(tmp_path, FILES, bare_origin=False)
    repo = GitRepo.open(work)
    old = repo.resolve("main")
    # Stat-dirty but unchanged must not block: age the file and the index entry so git
    # trusts stat data (no racy-clean content check), then touch the file.
    app = work / "claims/dev/app.yaml"
    past = app.stat().st_mtime - 1000
    os.utime(app, (past, past))
    git_out(work, "update-index", "--refresh")
    os.utime(app, (past + 500, past + 500))
    new = edit(repo, old, {"claims/dev/app.yaml": b"new\n", "notes.txt": None, "recs/a.yaml": b"r\n"})
    repo.advance("main", new, old)
    assert git_out(work, "rev-parse", "HEAD") == new
    assert git_out(work, "status", "--porcelain", "--untracked-files=all") == ""
    assert (work / "claims/dev/app.yaml").read_text() == "new\n"
    assert (work / "recs/a.yaml").read_text() == "r\n"
    assert not (work / "notes.txt").exists()


def test_advance_keeps_unrelated_uncommitted_work(tmp_path: Path) -> None:
    work, _ = make_repo(tmp_path, FILES, bare_origin=False)
    repo = GitRepo.open(work)
    old = repo.resolve("main")
    write_files(work, {"README.md": "my edit\n", "claims/prod/app.yaml": "staged\n", "scratch.txt": "u\n"})
    git_out(work, "add", "claims/prod/app.yaml")
    new = edit(repo, old, {"claims/dev/app.yaml": b"new\n"})
    repo.advance("main", new, old)
    assert git_out(work, "rev-parse", "HEAD") == new
    assert git_out(work, "status", "--porcelain").splitlines() == [
        " M README.md",
        "M  claims/prod/app.yaml",
        "?? scratch.txt",
    ]
    assert (work / "README.md").read_text() == "my edit\n"
    assert git_out(work, "show", ":claims/prod/app.yaml") == "staged"
    assert (work / "claims/dev/app.yaml").read_text() == "new\n"


@pytest.mark.parametrize(
    ("dirty", "staged", "blocked"),
    [
        ({"claims/dev/app.yaml": "local edit\n"}, False, "claims/dev/app.yaml"),
        ({"claims/dev/app.yaml": "staged edit\n"}, True, "claims/dev/app.yaml"),
        ({"notes.txt": None}, False, "notes.txt"),
        ({"recs/a.yaml": "untracked in the way\n"}, False, "recs/a.yaml"),
    ],
)
def test_advance_refuses_when_a_touched_file_is_dirty(
    tmp_path: Path, dirty: dict[str, str | None], staged: bool, blocked: str
) -> None:
    work, _ = make_repo(tmp_path, FILES, bare_origin=False)
    repo = GitRepo.open(work)
    old = repo.resolve("main")
    write_files(work, dirty)
    if staged:
        git_out(work, "add", *dirty)
    new = edit(repo, old, {"claims/dev/app.yaml": b"new\n", "notes.txt": None, "recs/a.yaml": b"r\n"})
    before = snapshot(work)
    files_before = {p: (work / p).read_bytes() for p in dirty if (work / p).exists()}
    with pytest.raises(FeedbackError) as err:
        repo.advance("main", new, old)
    assert str(err.value) == (
        f"{blocked} has uncommitted changes; commit or stash them, then rerun — nothing was changed"
    )
    assert snapshot(work) == before
    assert {p: (work / p).read_bytes() for p in dirty if (work / p).exists()} == files_before


def test_advance_refuses_to_overwrite_an_ignored_file(tmp_path: Path) -> None:
    work, _ = make_repo(tmp_path, {**FILES, ".gitignore": "recs/\n"}, bare_origin=False)
    repo = GitRepo.open(work)
    old = repo.resolve("main")
    write_files(work, {"recs/a.yaml": "local only\n"})
    new = edit(repo, old, {"recs/a.yaml": b"r\n"})
    before = snapshot(work)
    with pytest.raises(FeedbackError, match="^recs/a.yaml has uncommitted changes"):
        repo.advance("main", new, old)
    assert snapshot(work) == before
    assert (work / "recs/a.yaml").read_text() == "local only\n"


def test_advance_other_branch_never_touches_work_tree(tmp_path: Path) -> None:
    work, _ = make_repo(tmp_path, FILES, bare_origin=False)
    write_files(work, {"claims/dev/app.yaml": "dirty but not ours to touch\n"})
    git_out(work, "branch", "feedback/app")
    repo = GitRepo.open(work)
    old = repo.resolve("feedback/app")
    before = snapshot(work)
    new = edit(repo, old, {"claims/dev/app.yaml": b"proposed\n"})
    repo.advance("feedback/app", new, old)
    assert git_out(work, "rev-parse", "feedback/app") == new
    assert snapshot(work) == before
    assert (work / "claims/dev/app.yaml").read_text() == "dirty but not ours to touch\n"


def test_advance_with_stale_old_is_a_conflict_and_changes_nothing(tmp_path: Path) -> None:
    work, _ = make_repo(tmp_path, FILES, bare_origin=False)
    repo = GitRepo.open(work)
    old = repo.resolve("main")
    new = edit(repo, old, {"claims/dev/app.yaml": b"new\n"})
    human = commit_files(work, {"README.md": "moved on\n"}, "human")
    before = snapshot(work)
    with pytest.raises(ConflictError):
        repo.advance("main", new, old)
    assert snapshot(work) == before
    assert git_out(work, "rev-parse", "main") == human


def test_advance_in_bare_repo_and_in_linked_worktree(tmp_path: Path) -> None:
    work, origin = make_repo(tmp_path, FILES)
    bare = GitRepo.open(origin)
    old = bare.resolve("main")
    new = edit(bare, old, {"claims/dev/app.yaml": b"bare\n"})
    bare.advance("main", new, old)
    assert git_out(origin, "rev-parse", "main") == new

    # A branch checked out in a linked worktree is advanced there, even from the main one.
    git_out(work, "branch", "side")
    linked = tmp_path / "linked"
    git_out(work, "worktree", "add", "-q", str(linked), "side")
    repo = GitRepo.open(work)
    side_old = repo.resolve("side")
    side_new = edit(repo, side_old, {"claims/dev/app.yaml": b"side\n"})
    repo.advance("side", side_new, side_old)
    assert (linked / "claims/dev/app.yaml").read_text() == "side\n"
    assert git_out(linked, "status", "--porcelain") == ""
    assert git_out(work, "status", "--porcelain") == ""


def test_advance_retries_a_briefly_held_index_lock(tmp_path: Path) -> None:
    work, _ = make_repo(tmp_path, FILES, bare_origin=False)
    repo = GitRepo.open(work)
    old = repo.resolve("main")
    new = edit(repo, old, {"claims/dev/app.yaml": b"new\n"})
    lock = work / ".git" / "index.lock"
    lock.write_text("")
    repo.lock_retries = 1  # held for good: refuse before the ref moves
    before = snapshot(work)
    with pytest.raises(FeedbackError, match=r"index\.lock exists.*nothing was changed"):
        repo.advance("main", new, old)
    assert snapshot(work) == before

    repo.lock_retries = 40  # ~20s budget; released after a moment by another thread
    release = threading.Timer(0.2, lock.unlink)
    release.start()
    try:
        repo.advance("main", new, old)
    finally:
        release.join()
    assert git_out(work, "rev-parse", "HEAD") == new
    assert git_out(work, "status", "--porcelain") == ""


# -- remotes -------------------------------------------------------------------


def test_push_with_lease_accepted_then_rejected_when_origin_moved(tmp_path: Path) -> None:
    work, origin = make_repo(tmp_path, FILES)
    repo = GitRepo.open(work)
    old = repo.resolve("main")
    assert repo.remote_sha("origin", "main") == old
    first = edit(repo, old, {"claims/dev/app.yaml": b"first\n"})
    assert repo.push("origin", "main", first, old) is True
    assert git_out(origin, "rev-parse", "main") == first
    assert git_out(work, "rev-parse", "refs/remotes/origin/main") == first

    # Someone else pushes; our lease on `first` must now be refused.
    other = tmp_path / "other"
    git_out(tmp_path, "clone", "-q", str(origin), str(other))
    theirs = commit_files(other, {"README.md": "theirs\n"}, "theirs")
    git_out(other, "push", "-q", "origin", "main")
    mine = edit(repo, first, {"claims/dev/app.yaml": b"mine\n"})
    assert repo.push("origin", "main", mine, first) is False
    assert git_out(origin, "rev-parse", "main") == theirs

    # The caller fetches, rebuilds on the fetched tip, and retries.
    assert repo.fetch("origin", "main") == theirs
    retry = edit(repo, theirs, {"claims/dev/app.yaml": b"mine\n"})
    assert repo.push("origin", "main", retry, theirs) is True
    assert repo.remote_sha("origin", "main") == retry


def test_push_new_branch_must_not_exist(tmp_path: Path) -> None:
    work, origin = make_repo(tmp_path, FILES)
    repo = GitRepo.open(work)
    base = repo.resolve("main")
    proposal = edit(repo, base, {"claims/dev/app.yaml": b"proposed\n"})
    assert repo.remote_sha("origin", "feedback/app") is None
    assert repo.fetch("origin", "feedback/app") is None
    assert repo.push("origin", "feedback/app", proposal, None) is True
    assert git_out(origin, "rev-parse", "feedback/app") == proposal
    again = edit(repo, base, {"claims/dev/app.yaml": b"again\n"})
    assert repo.push("origin", "feedback/app", again, None) is False
    assert repo.fetch(str(origin), "feedback/app") == proposal  # a URL, not a remote name
    assert git_out(work, "for-each-ref", "refs/feedbackctl/") == ""


def test_push_to_missing_remote_is_a_command_error(tmp_path: Path) -> None:
    work, _ = make_repo(tmp_path, FILES, bare_origin=False)
    repo = GitRepo.open(work)
    with pytest.raises(CommandError):
        repo.push(str(tmp_path / "nowhere.git"), "main", repo.resolve("main"), None)
    with pytest.raises(CommandError):
        repo.fetch("nowhere", "main")


def test_push_rejected_by_hook_raises(tmp_path: Path) -> None:
    work, origin = make_repo(tmp_path, FILES)
    hook = origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected branch' >&2\nexit 1\n")
    hook.chmod(0o755)
    repo = GitRepo.open(work)
    old = repo.resolve("main")
    with pytest.raises(CommandError, match="hook declined"):
        repo.push("origin", "main", edit(repo, old, {"a.yaml": b"a\n"}), old)


# -- log -----------------------------------------------------------------------


def test_log_since_paths_and_batch_trailers(tmp_path: Path) -> None:
    work, origin = make_repo(tmp_path, FILES, date="2026-01-01T00:00:00Z")
    h1 = commit_files(work, {"claims/dev/app.yaml": APP + "# h1\n"}, "Human edit", "2026-01-10T00:00:00Z")
    repo = GitRepo.open(work)
    batch = format_message("Batch", "", [change("dev"), {**change("prod"), "Feedback-Rule": "step"}])
    t = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)
    bot = repo.write_commit(h1, {"claims/prod/app.yaml": b"p\n", "claims/dev/app.yaml": b"d\n"}, batch, t)
    repo.advance("main", bot, h1)
    h2 = commit_files(work, {"README.md": "r\n"}, "Docs", "2026-01-25T00:00:00Z")

    records = repo.log("main")
    assert [r.sha for r in records][:3] == [h2, bot, h1]
    assert len(records) == 4
    top = records[1]
    assert top.parents == (h1,)
    assert top.at == t and top.at.tzinfo is not None
    assert (top.author_name, top.author_email) == ("feedbackctl", "feedbackctl@localhost")  # the tool's
    assert top.subject == "Batch"
    assert top.trailers["Feedback-Claim"] == ["dev", "prod"]
    assert top.trailers["Feedback-Rule"] == ["step"]
    assert top.changes == [change("dev"), {**change("prod"), "Feedback-Rule": "step"}]
    assert top.is_feedback and not records[0].is_feedback and records[0].trailers == {}

    since = repo.log("main", since=datetime(2026, 1, 10, tzinfo=UTC))
    assert [r.sha for r in since] == [h2, bot, h1]
    assert [r.sha for r in repo.log("main", paths=["claims/dev/app.yaml"])][:2] == [bot, h1]
    assert [r.sha for r in repo.log("main", paths=["README.md"], since=t)] == [h2]
    assert [r.sha for r in repo.log("main", max_count=1)] == [h2]
    assert repo.log("main", paths=["no/such/file"]) == []
    assert [r.sha for r in GitRepo.open(origin).log("main")] == [git_out(origin, "rev-parse", "main")]


def test_git_failure_names_the_subcommand(tmp_path: Path) -> None:
    work, _ = make_repo(tmp_path, FILES, bare_origin=False)
    with pytest.raises(CommandError, match=r"^`git cat-file -p` failed \(exit 128\): fatal: Not a valid"):
        GitRepo.open(work).git("cat-file", "-p", "nope")
