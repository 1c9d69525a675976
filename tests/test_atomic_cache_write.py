"""Cache files are written through a temp file and a rename: a failed write leaves nothing behind."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from feedbackctl.authority.shapes import write_atomically


def test_a_write_that_fails_half_way_leaves_neither_file_nor_temp(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "walks.json"

    def half(fh: TextIO) -> None:
        fh.write('{"partial":')
        raise ValueError("not serialisable")

    assert write_atomically(target, ".log-", half) is False
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_failed_rewrite_keeps_the_previous_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "answers.jsonl"
    assert write_atomically(target, ".analyze-", lambda fh: fh.write("old\n")) is True

    def broken(fh: TextIO) -> None:
        fh.write("new, half")
        raise TypeError("a value of the wrong type")

    assert write_atomically(target, ".analyze-", broken) is False
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["answers.jsonl"]


def test_an_unwritable_folder_is_not_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder would be")
    assert write_atomically(blocker / "claims.json", ".claims-", lambda fh: fh.write("x")) is False
