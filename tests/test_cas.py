"""The one compare-and-swap retry loop (feedbackctl/authority/cas.py)."""

from __future__ import annotations

import pytest

from feedbackctl.authority import cas
from feedbackctl.errors import ConflictError, FeedbackError


def test_the_first_answer_that_is_not_moved_is_the_result() -> None:
    seen: list[int] = []

    def attempt(n: int) -> str | cas.Moved:
        seen.append(n)
        return "done" if n == 2 else cas.MOVED

    assert cas.retry(attempt) == "done"
    assert seen == [0, 1, 2]


def test_out_of_attempts_it_names_the_last_refusal_and_pauses_only_between_attempts() -> None:
    pauses: list[int] = []
    refusals = iter([ConflictError("first"), None, ConflictError("locked"), None, None])

    def attempt(_: int) -> str | cas.Moved:
        return cas.Moved(next(refusals))

    with pytest.raises(FeedbackError) as e:
        cas.retry(attempt, pause=pauses.append)
    assert str(e.value) == "the branch kept moving during 5 attempts (last: locked); rerun later"
    assert pauses == [0, 1, 2, 3]


def test_the_message_names_what_moved_and_what_for() -> None:
    with pytest.raises(FeedbackError) as e:
        cas.retry(lambda _: cas.Moved(where="main"))
    assert str(e.value) == "main kept moving during 5 attempts; rerun later"
    with pytest.raises(FeedbackError) as e:
        cas.retry(lambda _: cas.MOVED, cas.kept_moving("the branches", to="approve"))
    assert str(e.value) == "the branches kept moving during 5 attempts to approve; rerun later"
