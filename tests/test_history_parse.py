"""The history reader parses commit messages exactly as the trailer parsers do.

``commits.parse_log`` skips both trailer parsers for a message without
"feedback-" (any case): neither can find anything there, since every key
they keep is ASCII and spells ``Feedback-`` in some case. These tests hold
the shortcut to that: on generated messages, on hand-picked awkward ones,
and on commits that real git wrote and printed. tests/test_trailers.py
holds the parsers to ``git interpret-trailers``.
"""

from __future__ import annotations

import gc
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st

from feedbackctl.authority import commits
from feedbackctl.authority.commits import Commit, parse_log, read_commits
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.trailers import parse_trailers, stray_kinds
from tests.gitutil import commit_files, git_out, make_repo

SHA = "1" * 40
NULL = "0" * 40

# Messages that sit on the edges of the shortcut and of git's trailer rules.
AWKWARD = [
    "Fix typo\n\nJust words.\n",
    "feedback-kind: auto-tune\n",  # the title is never trailers
    "subject\n\nFEEDBACK-KIND: Auto-Tune\nfeedback-claim: c1\nFeedBack-Field: lambdaMemory\n",
    "subject\n\nFeedback-Kind: stray\n\nSigned-off-by: A <a@x>\n",
    "subject\n\nnotes\nSigned-off-by: A <a@x>\nFeedback-Claim: c1\nFeedback-Evidence: long\n  folded\n",
    "subject\n\nFeedback-Kind: auto-tune\nFeedback-Claim: a\nFeedback-Kind: reset\nFeedback-Claim: b\n",
    "subject\n\nthe feedback-loop is fine\n",  # the word, no trailer
    "subject\n\nFeedback-Kinds are documented in docs/contracts.md\n",
    "subject\n\nReviewed-by: B <b@x>\nX-Feedback-Kind: auto-tune\n",  # another key that holds the word
    "subject\n\nFeedbac\u212a-Kind: auto-tune\n",  # a Kelvin sign: lowercases to k, no ASCII key
    "subject\n\nFeedba\u0441k-Kind: auto-tune\n",  # a Cyrillic es
    "#\n\nFeedback-Kind: auto-tune\n",
    "# note\nFeedback-Kind: auto-tune\n",
    "subject\r\n\r\nFeedback-Kind: auto-tune\r\nFeedback-Claim: c\r\n",
    "subject\n\nFeedback-Kind:\n",
    "",
]


def _record(body: str) -> str:
    """One commit as ``git log`` prints it with ``commits.log_args``."""
    rs, us = commits._RS, commits._US
    return f"{rs}{SHA}{us}{us}1700000000{us}A{us}a@x{us}{body}{us}"


def _repo() -> GitRepo:
    return cast(GitRepo, SimpleNamespace(null_oid=NULL))


def _parsed(body: str) -> Commit:
    (c,) = parse_log(_repo(), _record(body).encode())
    return c


def _same_as_the_parsers(body: str) -> None:
    c = _parsed(body)
    assert c.changes == tuple(parse_trailers(body))
    assert c.stray == tuple(stray_kinds(body))


def test_awkward_messages_parse_as_the_parsers_read_them() -> None:
    for body in AWKWARD:
        _same_as_the_parsers(body)
    assert _parsed(AWKWARD[2]).changes == (
        {"Feedback-Kind": "Auto-Tune", "Feedback-Claim": "c1", "Feedback-Field": "lambdaMemory"},
    )
    assert _parsed(AWKWARD[3]).stray == ("stray",)


_KEYS = ["Feedback-Kind", "Feedback-Claim", "Feedback-To", "Feedback-Frobs", "Signed-off-by", "Notes", "Kind"]
_key = st.sampled_from(_KEYS).flatmap(
    lambda k: st.lists(st.booleans(), min_size=len(k), max_size=len(k)).map(
        lambda up: "".join(ch.upper() if u else ch.lower() for ch, u in zip(k, up, strict=True))
    )
)
_word = st.text(st.sampled_from("abcKk\u212a-:# \t"), max_size=12)
_line = st.one_of(
    st.builds(lambda k, sep, v: f"{k}{sep}{v}", _key, st.sampled_from([": ", ":", " : ", " "]), _word),
    st.builds(lambda v: f"  {v}", _word),  # a folded continuation
    st.just(""),
    st.just("# a comment"),
    st.just("(cherry picked from commit 1234)"),
    _word,
)
_message = st.lists(_line, max_size=12).map("\n".join)


@given(_message)
def test_generated_messages_parse_as_the_parsers_read_them(body: str) -> None:
    _same_as_the_parsers(body)


@given(st.text(st.sampled_from("Feedback-KindClaim:\n #\t\u212a\u0130x"), max_size=60))
def test_without_the_word_neither_parser_finds_anything(body: str) -> None:
    if "feedback-" not in body.lower():
        assert parse_trailers(body) == []
        assert stray_kinds(body) == []


def test_commits_git_wrote_parse_as_the_parsers_read_their_messages(tmp_path: Path) -> None:
    work, _ = make_repo(tmp_path, {"claims/app.yaml": "spec: {}\n"}, bare_origin=False)
    for i, message in enumerate(m for m in AWKWARD if m.strip() and not m.startswith("#")):
        commit_files(work, {"claims/app.yaml": f"spec: {{n: {i}}}\n"}, message)
    repo = GitRepo.open(work)
    tip = git_out(work, "rev-parse", "HEAD")
    read = read_commits(repo, tip)
    assert len(read) > 10
    for c in read:
        message = git_out(work, "log", "-1", "--format=%B", c.sha) + "\n"
        assert c.changes == tuple(parse_trailers(message)), message
        assert c.stray == tuple(stray_kinds(message)), message
    kinds = {g.get("Feedback-Kind") for c in read for g in c.changes}
    assert {"Auto-Tune", "auto-tune", "reset"} <= kinds


def test_a_commit_built_in_bulk_equals_one_built_by_its_constructor() -> None:
    fields: dict[str, Any] = {
        "sha": SHA,
        "parent": None,
        "at": _parsed("s\n").at,
        "changes": ({"Feedback-Kind": "auto-tune"},),
        "paths": ("a",),
        "blobs": {"a": (None, SHA)},
        "parents": (),
        "author": "A",
        "author_email": "a@x",
        "subject": "s",
        "merged": {},
        "stray": (),
    }
    with commits.bulk():
        built = Commit.build(**fields)
    assert built == Commit(**fields)
    assert vars(built) == vars(Commit(**fields))


def test_bulk_pauses_the_collector_and_restores_it() -> None:
    assert gc.isenabled()
    with commits.bulk():
        assert not gc.isenabled()
        with commits.bulk():  # nested: the outer one restores it
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with commits.bulk():
            pass
        assert not gc.isenabled()  # paused before: left paused
    finally:
        gc.enable()
    try:
        with commits.bulk():
            raise KeyError
    except KeyError:
        pass
    assert gc.isenabled()
