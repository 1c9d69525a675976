"""The one check for every path that comes from git, config or input.

A tree entry's name is whatever bytes the pusher chose: ``git mktree
--missing`` and ``hash-object --literally`` make entries named ``..`` or
``.git``, and a server without ``receive.fsckObjects`` accepts them. Such a
path, joined onto a temporary folder, would write anywhere the cron user can
(``~/.gitconfig`` with a ``core.fsmonitor`` command is code execution on the
next run). So a repo-relative path is accepted only when every component is
a plain name, and every file we materialise is checked once more, after
resolving, to land inside its folder. See docs/security.md.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from feedbackctl.errors import FeedbackError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UnsafePathError(FeedbackError):
    """A path that could leave its folder or reach git's own files."""


def path_problem(path: str) -> str | None:
    """Why ``path`` is not a clean repo-relative path, or None when it is."""
    if not path:
        return "is empty"
    if _CONTROL.search(path):
        return "contains a NUL or control character"
    if path.startswith("/"):
        return "is absolute"
    if "\\" in path:
        return "contains a backslash"
    for part in path.split("/"):
        if part in ("", ".", ".."):
            return f"has a '{part}' component" if part else "has an empty component"
        # What git itself refuses on case-insensitive and Windows filesystems, too.
        if part.rstrip(". ").lower() in (".git", "git~1"):
            return "has a '.git' component"
    return None


def shown(path: str) -> str:
    """A path as one printable line (control characters escaped)."""
    return path.encode("unicode_escape").decode("ascii") if _CONTROL.search(path) else path


def check_path(path: str, where: str) -> str:
    """``path`` itself when clean; else UnsafePathError naming ``where`` (a commit, a setting)."""
    problem = path_problem(path)
    if problem:
        raise UnsafePathError(
            f"{where}: path '{shown(path)}' {problem}; refused (nothing was read or written)"
        )
    return path


def inside(root: Path, rel: str, where: str) -> Path:
    """``root/rel`` after checking ``rel`` and that the resolved target stays under ``root``."""
    check_path(rel, where)
    base = Path(os.path.realpath(root))
    target = Path(os.path.realpath(base / rel))
    if target != base and base not in target.parents:
        raise UnsafePathError(
            f"{where}: path '{shown(rel)}' resolves outside {root} (a symlink?); refused, nothing was written"
        )
    return target
