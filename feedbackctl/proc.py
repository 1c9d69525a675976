"""The one choke point for subprocesses (git, kubectl)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from feedbackctl.errors import CommandError, UsageError


def run(
    argv: Sequence[str],
    *,
    cwd: str | Path | None = None,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    detached: bool = False,
) -> subprocess.CompletedProcess[bytes]:
    """Run a command, capture its output, raise CommandError on failure.

    ``detached``: in its own session, so that killing this run (its process or
    its process group) does not interrupt a step that must finish once begun.
    """
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    try:
        proc = subprocess.run(
            list(argv),
            cwd=cwd,
            input=input,
            env=full_env,
            capture_output=True,
            check=False,
            start_new_session=detached,
        )
    except FileNotFoundError as exc:
        raise UsageError(f"`{argv[0]}` is not installed or not on PATH; install it and retry") from exc
    if check and proc.returncode != 0:
        raise CommandError(list(argv), proc.returncode, proc.stderr.decode("utf-8", "replace"))
    return proc
