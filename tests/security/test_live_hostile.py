"""Hostile live values: refused per claim when they would go into a commit, and
never able to drive the terminal.

A value with NUL, a newline, CR, U+2028 or an escape sequence would be folded
or dropped on its way into ``Feedback-To`` (and ``audit verify`` would flag
the tool's own commit forever), so it is refused for its claim with one line;
the other claim is still captured. Values that may be captured but look like
Rich markup (``[/bold]``) are printed as text. Plus a property over the
live-state reader: any bytes give observed values or one usage error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedbackctl.core.drift import unsafe_live_text
from feedbackctl.errors import UsageError
from feedbackctl.render import terminal_safe
from feedbackctl.sources.live import LiveFile
from tests.gitutil import git_out
from tests.security.hostile_world import DEV, PROD, World, check, make_world


@pytest.fixture()
def w(tmp_path: Path) -> World:
    return make_world(tmp_path)


def _live(w: World, dev_fields: dict[str, object]) -> None:
    # JSON is YAML: every character survives the trip, escaped.
    w.live.write_text(json.dumps({PROD: {"lambdaTimeout": 60}, DEV: dev_fields}))


REFUSED = {
    "nul": "us-east-1\x00",
    "newline": "us-east-1\nFeedback-To: 9999",
    "carriage-return": "us-east-1\rx",
    "line-separator": "us-east-1\u2028x",
    "paragraph-separator": "us-east-1\u2029x",
    "escape-sequence": "\x1b]0;pwned\x07us-east-1",
    "csi-colour": "\x1b[31mus-east-1",
    "tab": "us\teast",
    "next-line-c1": "us-east-1\x85",
}


@pytest.mark.parametrize("value", REFUSED.values(), ids=REFUSED.keys())
def test_a_control_character_in_a_live_value_is_refused_for_its_claim_only(w: World, value: str) -> None:
    _live(w, {"region": value})
    before = w.refs()
    r = w.run(*w.drift())
    check(
        w,
        r,
        code=1,
        line=lambda x: x.startswith(f"error: {DEV}: live spec.region = ") and "control character" in x,
        before=before,
        processed=(PROD,),
    )
    assert "\x1b" not in r.stdout + r.stderr and "\x00" not in r.stdout + r.stderr
    log = git_out(w.work, "log", "--format=%B", "main")
    assert "Feedback-To: 9999" not in log and DEV not in git_out(w.work, "log", "--format=%s", "-1", "main")


def test_a_control_character_in_a_live_field_name_is_refused(w: World) -> None:
    _live(w, {"lambda\x07Timeout": 45})
    before = w.refs()
    r = w.run(*w.drift())
    line = f"error: {DEV}: live spec.'lambda\\x07Timeout' = 45 holds a control character (U+0007"
    check(w, r, code=1, line=line, before=before, processed=(PROD,))
    assert "\x07" not in r.stdout + r.stderr


def test_an_unknown_claim_name_with_escapes_is_printed_inert(w: World) -> None:
    w.live.write_text(json.dumps({PROD: {"lambdaTimeout": 60}, "ghost\x1b[2J": {"x": 1}}))
    before = w.refs()
    r = w.run(*w.drift())
    line = "error: ghost\\x1b[2J: the live state names a claim"
    check(w, r, code=1, line=line, before=before, processed=(PROD,))
    assert "\x1b" not in r.stdout + r.stderr


@pytest.mark.parametrize("value", ["[/bold]", "[red]x[/red]", "[link=http://127.0.0.1:9/]x"])
def test_a_value_that_looks_like_rich_markup_is_captured_and_shown_as_text(w: World, value: str) -> None:
    _live(w, {"region": value})
    before = w.refs()
    r = w.run(*w.drift())
    assert r.code == 0, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    assert value in r.stdout  # printed literally: the table did not crash or eat it
    new = git_out(w.work, "log", "--format=", "--name-only", "main", f"^{before['refs/heads/main']}")
    assert {f"claims/{DEV}.yaml", f"claims/{PROD}.yaml"} <= set(new.split())
    assert value in (w.work / "claims" / f"{DEV}.yaml").read_text()


def _sparse(path: Path, size: int = 11 * 1024 * 1024) -> None:
    path.write_bytes(b"")
    os.truncate(path, size)  # st_size says 11 MB; no disk is used


LIVE_FILES: dict[str, Callable[[Path], None]] = {
    "symlink-to-dev-zero": lambda p: p.symlink_to("/dev/zero"),
    "fifo": lambda p: os.mkfifo(p),
    "directory": lambda p: p.mkdir(),
    "sparse-eleven-megabytes": _sparse,
}


@pytest.mark.parametrize("make", LIVE_FILES.values(), ids=LIVE_FILES.keys())
def test_a_live_file_that_is_not_a_small_regular_file_is_refused_before_reading(
    w: World, make: Callable[[Path], None]
) -> None:
    w.live.unlink()
    make(w.live)
    before = w.refs()
    r = w.run(*w.drift())
    check(w, r, code=2, line=f"feedbackctl: --live {w.live}: ", before=before)
    assert w.refs() == before


# --- units and properties -----------------------------------------------------------------------


def test_terminal_safe_escapes_controls_and_markup() -> None:
    assert terminal_safe("[/bold]\x1b[31m\n") == "\\[/bold]\\x1b[31m\\x0a"
    assert terminal_safe("a\nb\x07", markup=False, newlines=True) == "a\nb\\x07"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_a_value_is_refused_exactly_when_it_holds_a_control_or_separator(text: str) -> None:
    import unicodedata

    bad = any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in text)
    assert (unsafe_live_text(text) is not None) == bad
    assert not any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in terminal_safe(text))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_any_live_file_bytes_give_values_or_one_usage_error(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "live.yaml"
    path.write_bytes(raw)
    try:
        state = LiveFile(path).observe([])
    except UsageError as e:
        assert str(e).startswith((str(path), f"--live {path}")) and "\n" not in str(e)
        return
    for name, fields in state.observed.items():
        assert isinstance(name, str) and isinstance(fields, dict)
