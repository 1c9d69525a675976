"""Real temporary git repositories for tests (no mocks).

These helpers drive the real git CLI directly, independent of the code under
test, the way a human would. Identity and dates are pinned so commit shas are
reproducible: the session fixture in conftest.py sets the env and a minimal
global gitconfig (``configure_git_env``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

# Env identity, as for a human at a terminal (GIT_* vars win over config).
HUMAN_NAME = "Ada Human"
HUMAN_EMAIL = "ada@example.com"
# The global gitconfig's identity, seen when the GIT_* identity vars are unset.
CONFIG_NAME = "Config User"
CONFIG_EMAIL = "config@example.com"
DEFAULT_DATE = "2026-01-01T00:00:00Z"
# The `repo_factory` fixture: (files, *, bare_origin=True, date=DEFAULT_DATE) -> (work, origin).
RepoFactory = Callable[..., tuple[Path, Path]]

GITCONFIG = f"""\
[user]
\tname = {CONFIG_NAME}
\temail = {CONFIG_EMAIL}
[init]
\tdefaultBranch = main
[commit]
\tgpgsign = false
[tag]
\tgpgsign = false
[core]
\tautocrlf = false
[advice]
\tdetachedHead = false
"""

PINNED_ENV = {
    "GIT_AUTHOR_NAME": HUMAN_NAME,
    "GIT_AUTHOR_EMAIL": HUMAN_EMAIL,
    "GIT_COMMITTER_NAME": HUMAN_NAME,
    "GIT_COMMITTER_EMAIL": HUMAN_EMAIL,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}
# Inherited from a hook or a user's shell, these would point git elsewhere.
UNSET_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_CEILING_DIRECTORIES",
    "GIT_AUTHOR_DATE",
    "GIT_COMMITTER_DATE",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
)


def configure_git_env(home: Path) -> dict[str, str | None]:
    """Point HOME at ``home`` with a minimal gitconfig; return the previous values."""
    home.mkdir(parents=True, exist_ok=True)
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(GITCONFIG)
    values: dict[str, str | None] = {
        **PINNED_ENV,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "GIT_CONFIG_GLOBAL": str(gitconfig),
    }
    values.update(dict.fromkeys(UNSET_ENV))
    previous = {key: os.environ.get(key) for key in values}
    set_env(values)
    return previous


def set_env(values: Mapping[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _date_env(date: str) -> dict[str, str]:
    return {**os.environ, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}


def git_out(path: Path | str, *args: str, env: Mapping[str, str] | None = None) -> str:
    """stdout of ``git -C path args`` (trailing newline removed); fails loudly."""
    proc = subprocess.run(
        ["git", "-C", str(path), *args],
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else None,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed in {path}:\n{proc.stderr}")
    return proc.stdout.rstrip("\n")


def write_files(work: Path, files: Mapping[str, str | None]) -> None:
    """Write (or, for None, delete) files in a work tree."""
    for rel, content in files.items():
        target = work / rel
        if content is None:
            target.unlink(missing_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)


def commit_files(work: Path, files: Mapping[str, str | None], message: str, date: str = DEFAULT_DATE) -> str:
    """A human commit through the real git CLI: write/delete ``files``, commit them; its sha."""
    write_files(work, files)
    env = _date_env(date)
    if files:
        git_out(work, "add", "-A", "--", *files, env=env)
    git_out(work, "commit", "-q", "--allow-empty", "-m", message, env=env)
    return git_out(work, "rev-parse", "HEAD")


def make_repo(
    tmp_path: Path,
    files: Mapping[str, str],
    *,
    bare_origin: bool = True,
    date: str = DEFAULT_DATE,
    name: str = "work",
) -> tuple[Path, Path]:
    """A work repo on ``main`` with one commit of ``files``, and a bare ``origin`` it pushed to.

    Returns (work, origin). With ``bare_origin=False`` no origin is created and
    the second path (``<name>-origin.git``) does not exist.
    """
    work = tmp_path / name
    origin = tmp_path / f"{name}-origin.git"
    work.mkdir(parents=True)
    git_out(work, "init", "-q", "-b", "main")
    commit_files(work, dict(files), "Initial claims", date)
    if bare_origin:
        git_out(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
        git_out(work, "remote", "add", "origin", str(origin))
        git_out(work, "push", "-q", "-u", "origin", "main")
    return work, origin
