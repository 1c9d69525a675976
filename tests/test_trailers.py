from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.trailers import (
    TRAILER_KEYS,
    format_message,
    group_changes,
    one_line,
    parse_trailers,
)
from tests.gitutil import git_out, make_repo

CHANGE = {
    "Feedback-Tags": "break-glass, requires-review",
    "Feedback-Claim": "message-wall-dev",
    "Feedback-Kind": "auto-tune",
    "Feedback-Field": "spec.lambdaMemory",
    "Feedback-From": "256",
    "Feedback-To": "384",
    "Feedback-Risk": "LOW",
}


def test_keys_in_spec_order() -> None:
    assert TRAILER_KEYS == (
        "Feedback-Kind",
        "Feedback-Claim",
        "Feedback-Field",
        "Feedback-From",
        "Feedback-To",
        "Feedback-Source",
        "Feedback-Rule",
        "Feedback-Risk",
        "Feedback-Evidence",
        "Feedback-Tags",
        "Feedback-Run",  # added after the documented keys, which keep their places
    )


def test_format_puts_one_block_at_the_end_in_spec_order() -> None:
    message = format_message("Raise memory", "Sustained pressure.\n", [CHANGE])
    assert message == (
        "Raise memory\n\nSustained pressure.\n\n"
        "Feedback-Kind: auto-tune\n"
        "Feedback-Claim: message-wall-dev\n"
        "Feedback-Field: spec.lambdaMemory\n"
        "Feedback-From: 256\n"
        "Feedback-To: 384\n"
        "Feedback-Risk: LOW\n"
        "Feedback-Tags: break-glass, requires-review\n"
    )


def test_values_are_collapsed_to_one_line_and_empty_ones_dropped() -> None:
    message = format_message(
        "s\nmore",
        "",
        [{"Feedback-Kind": "ack", "Feedback-Evidence": "p99\n 2.9s\tover 30m ", "Feedback-Rule": ""}],
    )
    assert message == "s more\n\nFeedback-Kind: ack\nFeedback-Evidence: p99 2.9s over 30m\n"


def test_batch_repeats_keys_and_parses_back_into_changes() -> None:
    second = {"Feedback-Kind": "auto-tune", "Feedback-Claim": "other", "Feedback-Rule": "step"}
    message = format_message("Batch", "two claims", [CHANGE, second])
    assert message.count("Feedback-Kind:") == 2
    groups = parse_trailers(message)
    assert groups == [dict(CHANGE), second]
    assert list(groups[0]) == [k for k in TRAILER_KEYS if k in CHANGE]


def test_batch_needs_a_kind_per_change() -> None:
    with pytest.raises(ValueError, match="Feedback-Kind"):
        format_message("s", "", [CHANGE, {"Feedback-Claim": "x"}])


def test_bad_key_is_refused() -> None:
    with pytest.raises(ValueError, match="trailer key"):
        format_message("s", "", [{"Feedback Kind": "x"}])


def test_parse_reads_only_the_last_paragraph_and_ignores_other_trailers() -> None:
    text = (
        "subject\n\nFeedback-Kind: not-a-trailer-here\n\n"
        "feedback-kind: review\nSigned-off-by: A <a@x>\nFeedback-Claim: c1\n"
        "Feedback-Evidence: long\n  folded line\n"
    )
    assert parse_trailers(text) == [
        {"Feedback-Kind": "review", "Feedback-Claim": "c1", "Feedback-Evidence": "long folded line"}
    ]


def test_group_starts_a_new_change_when_a_key_repeats() -> None:
    pairs = [
        ("Feedback-Claim", "a"),
        ("Feedback-Kind", "ack"),
        ("Feedback-Kind", "ack"),
        ("Feedback-Claim", "b"),
    ]
    assert group_changes(pairs) == [
        {"Feedback-Claim": "a", "Feedback-Kind": "ack"},
        {"Feedback-Kind": "ack", "Feedback-Claim": "b"},
    ]


def test_a_title_of_comment_lines_ends_at_the_first_blank_line_as_in_git() -> None:
    # git log '%(trailers)' reads this trailer (its title loop skips comment lines).
    assert parse_trailers("#\n\nFeedback-Kind: auto-tune\n") == [{"Feedback-Kind": "auto-tune"}]
    assert parse_trailers("# note\nFeedback-Kind: auto-tune\n") == []  # all title


def test_parse_of_plain_message_is_empty() -> None:
    assert parse_trailers("Fix typo\n\nJust words.\n") == []


_value = st.text(st.characters(exclude_categories=["Cs"]), max_size=30).filter(lambda v: one_line(v) != "")
_change = st.fixed_dictionaries(
    {"Feedback-Kind": st.sampled_from(["auto-tune", "proposal", "drift-capture"])},
    optional={key: _value for key in TRAILER_KEYS[1:]},
)


@given(st.lists(_change, min_size=1, max_size=4), _value, st.text(max_size=80))
def test_format_parse_round_trip(changes: list[dict[str, str]], subject: str, body: str) -> None:
    parsed = parse_trailers(format_message(subject, body, changes))
    assert parsed == [{k: one_line(v) for k, v in change.items()} for change in changes]


def test_git_reads_the_trailers_of_a_commit_we_write(tmp_path: Path) -> None:
    work, origin = make_repo(tmp_path, {"claims/app.yaml": "spec: {}\n"})
    repo = GitRepo.open(origin)
    base = repo.resolve("main")
    second = {"Feedback-Kind": "auto-tune", "Feedback-Claim": "message-wall-prod"}
    message = format_message("Tune two claims", "Body line.\n---\nafter a divider", [CHANGE, second])
    sha = repo.write_commit(base, {"claims/app.yaml": b"x\n"}, message, datetime(2026, 1, 2, tzinfo=UTC))
    claims = git_out(origin, "log", "-1", "--format=%(trailers:key=Feedback-Claim,valueonly)", sha)
    assert claims.split() == ["message-wall-dev", "message-wall-prod"]
    kinds = git_out(origin, "log", "-1", "--format=%(trailers:key=feedback-kind,valueonly)", sha)
    assert kinds.split() == ["auto-tune", "auto-tune"]
    assert parse_trailers(git_out(origin, "log", "-1", "--format=%B", sha)) == [dict(CHANGE), second]
