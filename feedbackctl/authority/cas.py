"""Compare-and-swap retries: read, decide, write, and start over when a ref moved.

Every writer reads the branch, decides on what it read and moves the ref only
from the commit it read (``GitRepo.update_ref``, ``advance``, a push with an
explicit-SHA lease). When another run got there first, the whole decision is
made again on the new tip, never patched: this module is that loop, written
once, with the one attempt budget every command shares.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from feedbackctl.errors import FeedbackError

CAS_ATTEMPTS = 5

T = TypeVar("T")


@dataclass(frozen=True)
class Moved:
    """An attempt's answer when a ref moved under it: read again and decide again."""

    why: BaseException | None = None  # the refusal, for the final message (the last one is kept)
    where: str | None = None  # what moved, when the message names it


MOVED = Moved()


def kept_moving(what: str = "the branch", to: str = "") -> Callable[[Moved], FeedbackError]:
    """The standard give-up: ``<what> kept moving during 5 attempts[ to <to>][ (last: ...)]; rerun later``."""

    def gave_up(last: Moved) -> FeedbackError:
        purpose = f" to {to}" if to else ""
        why = f" (last: {last.why})" if last.why is not None and str(last.why) else ""
        return FeedbackError(
            f"{last.where or what} kept moving during {CAS_ATTEMPTS} attempts{purpose}{why}; rerun later"
        )

    return gave_up


def retry(
    attempt: Callable[[int], T | Moved],
    gave_up: Callable[[Moved], FeedbackError] | None = None,
    *,
    pause: Callable[[int], None] | None = None,
) -> T:
    """``attempt(n)`` for n = 0.. until it answers something other than ``Moved``.

    ``pause(n)`` runs between attempt n and the next (a jittered backoff), never
    after the last. Out of attempts, raises ``gave_up`` of the last ``Moved``
    (carrying the last refusal any attempt gave); by default ``kept_moving()``.
    """
    last = MOVED
    for n in range(CAS_ATTEMPTS):
        result = attempt(n)
        if not isinstance(result, Moved):
            return result
        last = Moved(result.why if result.why is not None else last.why, result.where)
        if pause is not None and n + 1 < CAS_ATTEMPTS:
            pause(n)
    raise (gave_up or kept_moving())(last)
