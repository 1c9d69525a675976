"""The authority repository, read and written through git plumbing.

Why plumbing (docs/contracts.md, "Never clobber the user's work"): commits are
built in the object database with a throwaway index, refs move only by
compare-and-swap, and a checked-out branch is advanced the way
``git merge --ff-only`` would, touching only the files the commit changed.
Batches go through one process (``ls-tree -r``, ``cat-file --batch``,
``hash-object --stdin-paths``, one ``git log``) rather than one per file.

The class is assembled from one module per concern: running git and reading
refs (``gitbase``), reading trees, blobs and the log (``gitread``), writing
commits (``gitwrite``) and remotes (``gitremote``); opening a repository and
moving refs and checked-out branches live here.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from pathlib import Path
from subprocess import CompletedProcess

from feedbackctl.authority import ffjournal, reflocks
from feedbackctl.authority.gitbase import (
    _BASE_ENV,
    DEFAULT_IDENTITY,
    GIT_TIMEOUT,
    GIT_TIMEOUT_ENV,
    SAFE_CONFIG,
    branch_name_problem,
    check_ref_name,
)
from feedbackctl.authority.gitread import CommitRecord
from feedbackctl.authority.gitremote import GitRemotes
from feedbackctl.authority.gitwrite import CLOCK_SKEW, GitWriting, _check_repo_path, _git_date
from feedbackctl.errors import ConflictError, FeedbackError, UsageError
from feedbackctl.proc import run

__all__ = [
    "CLOCK_SKEW",
    "DEFAULT_IDENTITY",
    "GIT_TIMEOUT",
    "GIT_TIMEOUT_ENV",
    "SAFE_CONFIG",
    "CommitRecord",
    "GitRepo",
    "_check_repo_path",
    "_git_date",
    "branch_name_problem",
    "check_ref_name",
]

# `git update-ref` (compare-and-swap), then `git read-tree -m -u`; "$@" is the git prefix.
_CAS_FAILED = 97
_MOVE_AND_FOLLOW = (
    '"$@" update-ref -m feedbackctl "$FEEDBACKCTL_REF" "$FEEDBACKCTL_NEW" "$FEEDBACKCTL_OLD"'
    f" || exit {_CAS_FAILED}\n"
    'exec "$@" read-tree -m -u "$FEEDBACKCTL_OLD" "$FEEDBACKCTL_NEW"'
)


class GitRepo(GitRemotes, GitWriting):
    """A git repository (work tree or bare) that holds the claims."""

    lock_retries = 10  # index.lock contention: ~3s of backoff in total

    # -- opening -------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path) -> GitRepo:
        """Any path inside a work tree, or a bare repo (or its git dir)."""
        not_repo = UsageError(
            f"{path}: not a git repository; pass --repo a path inside a git work tree or a bare repo"
        )
        where = Path(path).expanduser()
        if where.is_file():
            where = where.parent
        if not where.is_dir():
            raise not_repo
        proc = run(
            [
                "git",
                *SAFE_CONFIG,
                "rev-parse",
                "--absolute-git-dir",
                "--is-bare-repository",
                "--is-inside-work-tree",
                "--show-object-format",
            ],
            cwd=where,
            env=_BASE_ENV,
            check=False,
        )
        err = proc.stderr.decode("utf-8", "replace")
        if proc.returncode != 0:
            if "dubious ownership" in err:
                raise UsageError(
                    f"{path}: git refuses this repository (dubious ownership); "
                    f"run `git config --global --add safe.directory {where.resolve()}`"
                )
            raise not_repo
        git_dir_s, bare_s, inside_s, fmt = proc.stdout.decode().splitlines()[:4]
        git_dir = Path(git_dir_s)
        is_bare = bare_s == "true"
        work_tree: Path | None = None
        if inside_s == "true":
            top = run(["git", *SAFE_CONFIG, "rev-parse", "--show-toplevel"], cwd=where, env=_BASE_ENV)
            work_tree = Path(top.stdout.decode().rstrip("\n"))
        elif not is_bare and git_dir.name == ".git":
            # Opened from inside .git of a normal clone.
            work_tree = git_dir.parent
        repo = cls(git_dir, work_tree, is_bare, fmt)
        if work_tree is not None:
            with contextlib.suppress(FeedbackError):  # never a reason not to open; advance says why
                ffjournal.recover(repo)
        return repo

    # -- moving refs ---------------------------------------------------------

    def update_ref(self, ref: str, new: str, old: str | None, *, reason: str = "feedbackctl") -> None:
        """Compare-and-swap ``ref`` from ``old`` (None: must not exist) to ``new``."""
        name = self.ref_name(ref)
        args = ["update-ref", "-m", reason, name, new, old or self.null_oid]
        proc = self._run(args, check=False)
        if proc.returncode != 0 and b".lock" in proc.stderr and reflocks.clear_stale(self, [name]):
            proc = self._run(args, check=False)  # a killed run's lock was in the way
        if proc.returncode == 0:
            return
        current = self._ref_sha(name)
        if current != old:
            raise ConflictError(
                f"{name} moved while this run was deciding (now {current or 'absent'}, "
                f"expected {old or 'absent'}); nothing was changed — rerun to re-evaluate"
            )
        if b".lock" in proc.stderr:
            # Another writer holds the ref's lock: it is about to move the ref (or died holding it).
            raise ConflictError(
                f"{name} is locked by another git process; nothing was changed — rerun "
                f"(if no other run is active, remove the stale {name}.lock)"
            )
        raise self._fail(args, proc)

    # -- advancing a branch --------------------------------------------------

    def worktrees(self) -> list[dict[str, str]]:
        """``git worktree list --porcelain``: one dict per work tree (worktree, HEAD, branch, bare)."""
        out = self.git("worktree", "list", "--porcelain").decode("utf-8", "surrogateescape")
        return [dict(line.partition(" ")[::2] for line in block.splitlines()) for block in out.split("\n\n")]

    def checked_out_branches(self) -> set[str]:
        """Full names of the branches checked out in any work tree."""
        return {fields["branch"] for fields in self.worktrees() if "branch" in fields}

    def _checkout_of(self, name: str) -> tuple[Path, str | None] | None:
        """(work tree, its HEAD) of the worktree that has branch ``name`` checked out."""
        for fields in self.worktrees():
            if fields.get("branch") == name and "bare" not in fields:
                path = Path(fields["worktree"])
                if path.is_dir():
                    return path, fields.get("HEAD")
        return None

    def _retry_index_lock(self, args: Sequence[str]) -> CompletedProcess[bytes]:
        """An index-writing git step, retried while another process holds ``index.lock``.

        Detached: killed alone, the run must not take git with it while git holds the
        lock (a killed ``update-index --refresh`` or ``read-tree`` leaves ``index.lock``
        behind and every later git command in the checkout refuses).
        """
        delay = 0.02
        proc = self._run(args, check=False, detached=True)
        for _ in range(self.lock_retries - 1):
            if proc.returncode == 0 or b"index.lock" not in proc.stderr:
                break
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
            proc = self._run(args, check=False, detached=True)
        return proc

    def _lock_error(self) -> FeedbackError:
        return FeedbackError(
            f"{self.git_dir / 'index.lock'} exists: another git process is using {self.display}; "
            "wait for it (or remove a stale lock) and rerun — nothing was changed"
        )

    def _dirty_paths(self, paths: Sequence[str]) -> list[str]:
        # Past the command-line limit, ask about everything and filter here.
        spec = list(paths) if len(paths) <= 1000 else []
        out = self.git(
            "--no-optional-locks",
            "--literal-pathspecs",
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--ignored=traditional",
            "--",
            *spec,
        )
        tokens = out.split(b"\0")
        dirty: list[str] = []
        i = 0
        while i < len(tokens):
            token = tokens[i]
            i += 1
            if not token:
                continue
            xy, path = token[:2].decode(), token[3:].decode("utf-8", "surrogateescape")
            if "R" in xy or "C" in xy:
                i += 1  # the rename's source path follows
            dirty.append(path)
        if not spec:
            touched = set(paths)
            dirty = [p for p in dirty if p in touched or any(p.startswith(t + "/") for t in touched)]
        return sorted(dirty)

    def _prepare_fast_forward(self, old: str, new: str, paths: Sequence[str]) -> None:
        """Everything that can refuse, run before the ref moves."""
        refresh = self._retry_index_lock(["update-index", "-q", "--refresh"])
        if b"index.lock" in refresh.stderr:
            raise self._lock_error()
        dirty = self._dirty_paths(paths)
        if dirty:
            raise FeedbackError(
                f"{dirty[0]} has uncommitted changes; commit or stash them, then rerun — nothing was changed"
            )
        trial = self._retry_index_lock(["read-tree", "-m", "-u", "-n", old, new])
        if trial.returncode != 0:
            if b"index.lock" in trial.stderr:
                raise self._lock_error()
            reason = trial.stderr.decode("utf-8", "replace").strip().splitlines()
            raise FeedbackError(
                f"{self.display} cannot be fast-forwarded ({reason[0] if reason else 'read-tree'}); "
                "resolve it, then rerun — nothing was changed"
            )

    def advance(self, branch: str, new: str, old: str) -> None:
        """Move a branch old -> new by CAS; a checked-out branch's files follow, ff-only style."""
        name = self.ref_name(branch)
        if new == old:
            return
        checkout = self._checkout_of(name)
        if checkout is None:
            self.update_ref(name, new, old)
            return
        path, head = checkout
        if head != old:
            raise ConflictError(
                f"{name} is at {head or 'nothing'}, not {old}; nothing was changed — rerun to re-evaluate"
            )
        same = self.work_tree is not None and self.work_tree.resolve() == path.resolve()
        tree = self if same else GitRepo.open(path)
        try:
            tree._prepare_fast_forward(old, new, self.changed_paths(old, new))
        except FeedbackError:
            # A concurrent run that won the race moves the ref and then the files:
            # its fresh files look like local edits to us. The ref tells which it is.
            if self._ref_sha(name) != old:
                raise ConflictError(f"{name} moved while this run prepared its commit; rerun") from None
            raise
        # A kill between the ref and the files would leave the checkout behind its branch:
        # the intent lets the next run finish the job (ffjournal).
        intent = ffjournal.begin(tree, name, old, new)
        try:
            done = tree._move_and_follow(self, name, new, old)
        except FeedbackError:
            ffjournal.end(intent)
            raise
        ffjournal.end(intent)
        if done.returncode != 0:
            why = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise FeedbackError(
                f"{name} now points at {new} but the files in {path} could not follow "
                f"({why[-1] if why else 'read-tree failed'}); "
                f"run `git read-tree -m -u {old} {new}` there"
            )

    def _move_and_follow(self, owner: GitRepo, name: str, new: str, old: str) -> CompletedProcess[bytes]:
        """The ref's compare-and-swap, then this checkout's files, as one detached child.

        Killing the run (alone or with its process group) between the two would
        leave ``git status`` showing the change reverted and staged; in a child
        of its own session both steps finish even when the run is killed. The
        journal still covers a crash of the machine itself.
        """
        env = {"FEEDBACKCTL_REF": name, "FEEDBACKCTL_NEW": new, "FEEDBACKCTL_OLD": old}
        proc = run(
            ["sh", "-c", _MOVE_AND_FOLLOW, "sh", *self._argv([])],
            cwd=self.work_tree or self.git_dir,
            env={**_BASE_ENV, **env},
            check=False,
            detached=True,
        )
        if proc.returncode == _CAS_FAILED:
            owner.update_ref(name, new, old)  # says why (or clears a killed run's lock and moves)
            return self._retry_index_lock(["read-tree", "-m", "-u", old, new])
        if proc.returncode != 0 and b"index.lock" in proc.stderr:
            return self._retry_index_lock(["read-tree", "-m", "-u", old, new])
        return proc
