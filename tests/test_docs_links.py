"""Every relative link between README and docs/ points at a file the repo has."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\(([^)#\s:]+)(#[^)]*)?\)")


def _links(text: str) -> list[str]:
    return [m.group(1) for m in LINK.finditer(text)]


def test_the_link_pattern_finds_relative_targets_only() -> None:
    text = "[a](docs/x.md#part) [b](https://example.com/y.md) [c](z.md)"
    assert _links(text) == ["docs/x.md", "z.md"]


def test_every_relative_link_resolves() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    missing = [
        f"{page.relative_to(ROOT)} -> {target}"
        for page in pages
        for target in _links(page.read_text(encoding="utf-8"))
        if not (page.parent / target).exists()
    ]
    assert missing == []
