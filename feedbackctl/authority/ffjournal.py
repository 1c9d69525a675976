"""Finishing a fast-forward that a killed run left half done.

``GitRepo.advance`` moves a checked-out branch by compare-and-swap and then
the checkout's files (``read-tree -m -u``). A kill -9 between the two leaves
the branch at the new commit and the files and index at the old one: ``git
status`` shows the change reverted and staged, and a careless ``git commit
-a`` would undo it. No order of the two steps avoids that window, so
``advance`` records its intent first (ref, old, new, pid) and removes the
record when the files have followed. The next run that opens the checkout
finishes the job for every file that is still exactly as the old commit had
it, in the index and on disk; a file a human has touched since is left alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from feedbackctl.errors import FeedbackError

if TYPE_CHECKING:
    from feedbackctl.authority.gitrepo import GitRepo

FOLDER = "feedbackctl/advancing"
# A record younger than this whose writer is alive belongs to a run in progress.
LIVE_SECONDS = 600


@dataclass(frozen=True)
class Intent:
    ref: str
    old: str
    new: str
    pid: int


def begin(repo: GitRepo, ref: str, old: str, new: str) -> Path:
    folder = repo.git_dir / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha1(ref.encode()).hexdigest()}.json"
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"ref": ref, "old": old, "new": new, "pid": os.getpid()}))
    os.replace(tmp, path)
    return path


def end(path: Path) -> None:
    path.unlink(missing_ok=True)


def _read(path: Path) -> Intent | None:
    try:
        raw = json.loads(path.read_text())
        return Intent(str(raw["ref"]), str(raw["old"]), str(raw["new"]), int(raw["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _in_progress(intent: Intent, path: Path) -> bool:
    if intent.pid == os.getpid():
        return False
    try:
        os.kill(intent.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, someone else's
    try:
        return time.time() - path.stat().st_mtime < LIVE_SECONDS
    except OSError:
        return False


def recover(repo: GitRepo) -> list[str]:
    """Finish every interrupted fast-forward of this checkout; the paths brought up to date."""
    folder = repo.git_dir / FOLDER
    if repo.work_tree is None or not folder.is_dir():
        return []
    restored: list[str] = []
    for path in sorted(folder.glob("*.json")):
        intent = _read(path)
        if intent is not None and _in_progress(intent, path):
            continue
        if intent is not None:
            restored += _finish(repo, intent)
        path.unlink(missing_ok=True)
    return restored


def _blobs(repo: GitRepo, args: list[str], paths: list[str]) -> dict[str, str]:
    """path -> blob from ``ls-tree -r -z`` or ``ls-files -s -z`` output for ``paths``."""
    out = repo.git("--literal-pathspecs", *args, "--", *paths).decode("utf-8", "surrogateescape")
    blobs = {}
    for entry in out.split("\0"):
        meta, _, name = entry.partition("\t")
        if name:
            fields = meta.split()
            blobs[name] = fields[2] if args[0] == "ls-tree" else fields[1]
    return blobs


def _finish(repo: GitRepo, intent: Intent) -> list[str]:
    head = repo._ref_sha(intent.ref)
    if head is None or head == intent.old:
        return []  # the branch never moved: nothing to finish
    if head != intent.new and not repo.is_ancestor(intent.new, head):
        return []  # someone moved the branch elsewhere since: not ours to touch
    if f"refs/heads/{repo.current_branch()}" != intent.ref:
        return []
    paths = repo.changed_paths(intent.old, intent.new)
    if not paths:
        return []
    old = _blobs(repo, ["ls-tree", "-r", "-z", intent.old], paths)
    now = _blobs(repo, ["ls-tree", "-r", "-z", head], paths)
    index = _blobs(repo, ["ls-files", "-s", "-z"], paths)
    modified = set(
        repo.git("--literal-pathspecs", "diff-files", "--name-only", "-z", "--", *paths)
        .decode("utf-8", "surrogateescape")
        .split("\0")
    )
    assert repo.work_tree is not None
    stale = [
        p
        for p in paths
        if index.get(p) == old.get(p)  # the index still holds the old commit's file
        and p not in modified  # and so does the disk
        and not (p not in old and (repo.work_tree / p).exists())  # an untracked file is the user's
        and now.get(p) != index.get(p)
    ]
    if not stale:
        return []
    done = repo._retry_index_lock(["--literal-pathspecs", "checkout", "--no-overlay", head, "--", *stale])
    if done.returncode != 0:
        raise FeedbackError(
            f"{repo.display}: could not bring {', '.join(stale[:3])} up to date with {intent.ref} after an "
            f"interrupted run (`git checkout {head[:12]} -- <files>` there)"
        )
    return stale
