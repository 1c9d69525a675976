"""The one user-facing error type family, caught at the top of the CLI.

Exit codes are a contract (docs/contracts.md): 1 runtime error, 2 usage or
configuration error.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_CHANGES = 3


class FeedbackError(Exception):
    """A problem the user can act on: printed as one line, never a traceback."""

    exit_code = EXIT_RUNTIME

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(FeedbackError):
    """Bad options, a bad repo path, a broken config or policy file: exit 2."""

    exit_code = EXIT_USAGE


class ClaimError(FeedbackError):
    """One claim (or its metrics) could not be processed; the others still are."""

    def __init__(self, claim: str, message: str) -> None:
        super().__init__(f"{claim}: {message}")
        self.claim = claim


class ConflictError(FeedbackError):
    """A compare-and-swap lost a race; callers re-read and re-evaluate."""


class CommandError(FeedbackError):
    """A subprocess (git, kubectl) failed; carries the command, exit code and stderr."""

    def __init__(self, argv: list[str], returncode: int, stderr: str) -> None:
        first = stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
        super().__init__(f"`{' '.join(argv[:3])}` failed (exit {returncode}): {first}")
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr
