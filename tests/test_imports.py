"""Every module imports on its own, first, in a fresh interpreter.

An import cycle between two modules that use ``from x import name`` only
breaks when one of them is the first imported: the test suite's order hid one
(commits -> logcache -> logentries -> commits) until a test file happened to
come first. This imports each module with no other feedbackctl module loaded.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

IMPORT_EACH_FIRST = """
import importlib, pkgutil, sys
import feedbackctl
names = sorted(
    m.name for m in pkgutil.walk_packages(feedbackctl.__path__, "feedbackctl.")
    if not m.name.endswith("__main__")  # runs the CLI
)
failed = []
for name in names:
    for loaded in [m for m in sys.modules if m == "feedbackctl" or m.startswith("feedbackctl.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as e:
        failed.append(f"{name}: {type(e).__name__}: {e}")
print(len(names))
print("\\n".join(failed))
"""


def run(code: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=300
    ).stdout
    return out.splitlines()


def test_every_module_imports_first() -> None:
    lines = run(IMPORT_EACH_FIRST)
    assert int(lines[0]) > 100  # the walk found the package's modules
    assert [line for line in lines[1:] if line] == []


def test_the_check_sees_a_cycle() -> None:
    # Two modules importing names from each other: the second one imported first fails.
    probe = ROOT / "feedbackctl" / "zz_cycle_probe_a.py"
    other = ROOT / "feedbackctl" / "zz_cycle_probe_b.py"
    probe.write_text("from feedbackctl.zz_cycle_probe_b import B\nA = 1\n")
    other.write_text("from feedbackctl.zz_cycle_probe_a import A\nB = 2\n")
    try:
        failed = [line for line in run(IMPORT_EACH_FIRST)[1:] if line]
    finally:
        probe.unlink()
        other.unlink()
    assert any(line.startswith("feedbackctl.zz_cycle_probe_a: ImportError") for line in failed)
