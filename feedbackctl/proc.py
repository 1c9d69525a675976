"""The one choke point for subprocesses (git, kubectl).

Every child runs in its own session (process group) and has a deadline: a
hung ``kubectl`` or ``git`` (a fetch from a server that never answers, a
wedged filesystem) is killed together with everything it started, and the
caller gets a ``SubprocessTimeout`` naming the command, so one stuck step costs
one claim or one step, never the whole cron run. The same happens when this
process is interrupted while a child runs. Where util-linux's ``setpriv`` is
installed, each child also gets SIGKILL when feedbackctl dies (a kill -9 of
the cron job included), so no child outlives the run. See docs/security.md.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TypeVar

from feedbackctl.errors import CommandError, FeedbackError, UsageError

N = TypeVar("N", int, float)

DEFAULT_TIMEOUT = 600.0  # seconds: a big fast-import or a slow remote, not forever
# Sets the child's parent-death signal, then execs it (Linux; absent elsewhere).
_SETPRIV = shutil.which("setpriv")


class SubprocessTimeout(FeedbackError):
    """A child ran past its deadline; it and its process group were killed."""

    def __init__(self, argv: Sequence[str], seconds: float, setting: str | None = None) -> None:
        shown = " ".join(_short(a) for a in list(argv)[:3])
        super().__init__(
            f"`{shown}` did not finish within {seconds:g}s and was killed (with its children); "
            f"check what it waits for" + (f", or raise {setting}" if setting else "")
        )
        self.argv = list(argv)
        self.seconds = seconds
        self.setting = setting


def _short(arg: str) -> str:
    return arg if len(arg) <= 60 else arg[:57] + "..."


def positive_setting(
    setting: str, default: N, parse: Callable[[str], N], not_number: str, not_positive: str
) -> N:
    """The environment variable ``setting`` as a positive finite number, else ``default`` when unset.

    A value ``parse`` refuses is a user's mistake named with ``not_number``; one
    that is zero, negative or infinite, with ``not_positive``.
    """
    raw = os.environ.get(setting, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise UsageError(f"{setting}={raw!r} {not_number}") from None
    if not 0 < value < float("inf"):
        raise UsageError(f"{setting}={raw!r} {not_positive}")
    return value


def timeout_for(setting: str, default: float) -> float:
    """The deadline for one kind of child: the environment variable ``setting`` when set, else ``default``."""
    return positive_setting(
        setting,
        default,
        float,
        "is not a number of seconds; set e.g. 300",
        "must be a positive number of seconds; set e.g. 300",
    )


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        child.kill()


def _reap(child: subprocess.Popen[bytes]) -> None:
    """Collect a killed child; a descendant that left the group may hold its pipes, so never wait long."""
    with contextlib.suppress(Exception):
        child.communicate(timeout=5)
    with contextlib.suppress(Exception):
        child.wait(timeout=5)


def run(
    argv: Sequence[str],
    *,
    cwd: str | Path | None = None,
    input: bytes | None = None,
    env: Mapping[str, str | None] | None = None,
    check: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    timeout_setting: str | None = None,
    detached: bool = False,
) -> subprocess.CompletedProcess[bytes]:
    """Run a command, capture its output, raise CommandError on failure.

    ``env`` entries set to None are removed from the child's environment.
    Past ``timeout`` seconds the child's whole process group is killed and
    SubprocessTimeout raised (naming ``timeout_setting``, the variable that sets it).
    ``detached``: the child does not die with this run (no parent-death signal), so a
    step that must finish once begun (a ref move and its checkout) is never cut in half.
    """
    full_env = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    program = shutil.which(argv[0], path=full_env.get("PATH"))
    if program is None:
        raise UsageError(f"`{argv[0]}` is not installed or not on PATH; install it and retry")
    command = [os.path.abspath(program), *argv[1:]]  # relative to us, not to ``cwd``
    if _SETPRIV is not None and not detached:
        command = [_SETPRIV, "--pdeathsig", "KILL", "--", *command]
    try:
        child = subprocess.Popen(
            command,
            cwd=cwd,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise UsageError(f"`{argv[0]}` is not installed or not on PATH; install it and retry") from exc
    try:
        stdout, stderr = child.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(child)
        _reap(child)
        raise SubprocessTimeout(argv, timeout, timeout_setting) from None
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM turned into an exception): never leave the child
        # behind, unless it is a step that must finish once begun.
        if not detached:
            _kill_group(child)
            _reap(child)
        raise
    proc = subprocess.CompletedProcess(list(argv), child.returncode, stdout, stderr)
    if check and proc.returncode != 0:
        raise CommandError(list(argv), proc.returncode, proc.stderr.decode("utf-8", "replace"))
    return proc


class Piped:
    """A long-lived child this run speaks to over its stdin and stdout (a helper process).

    Its stderr goes nowhere. It dies with this run: the parent-death signal where
    setpriv is installed, else the end of its stdin when this process is gone;
    ``stop`` ends it at once.
    """

    def __init__(self, child: subprocess.Popen[bytes]) -> None:
        assert child.stdin is not None and child.stdout is not None
        self._child = child
        self.stdin: IO[bytes] = child.stdin
        self.stdout: IO[bytes] = child.stdout

    def kill(self) -> None:
        _kill_group(self._child)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.stdin.close()
        _kill_group(self._child)
        with contextlib.suppress(Exception):
            self._child.wait(timeout=5)


def start_piped(argv: Sequence[str]) -> Piped:
    """Start ``argv`` (an absolute program) as a ``Piped`` child; OSError when it cannot start."""
    command = list(argv)
    if _SETPRIV is not None:
        command = [_SETPRIV, "--pdeathsig", "KILL", "--", *command]
    child = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        close_fds=True,
        start_new_session=True,
    )
    return Piped(child)
