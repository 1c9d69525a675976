"""The package's layers, checked on every module's imports (parsed with ``ast``, nothing imported).

The map, lowest first; a module may import its own layer and any layer below it,
never one above::

    7  cli, __main__                  the entry points
    6  commands, demo                 thin typer commands: parse options, call, render, exit code
    5  dashboard, render              presentation (the dashboard page, tables, json)
    4  patterns                       orchestration: one module per command's work
    3  authority, sources             git (authority) and the world outside it (metrics, AWS, live state)
    2  core                           pure decisions: imports only core, errors and clock
    1  clock, proc, boundedio, resources, charts, charts_svg, notify    small leaf utilities
    0  errors, feedbackctl/__init__   the error types and the version

``core`` is stricter than its rank: nothing but ``core``, ``errors`` and ``clock``
(no subprocess choke point, no files, no network). ``authority`` and ``sources``
share a rank (the config names its source kinds; sources read YAML through the
authority's safe loader).

Every subprocess goes through ``feedbackctl/proc.py``: no other module imports
``subprocess``, except ``CompletedProcess``, the type ``proc.run`` returns. And
all git goes through ``authority/``: outside it nothing calls ``GitRepo.git`` or
``GitRepo._run`` with a raw argv; it calls a named method instead.

``KNOWN`` lists the upward imports the code has today, each with why it is
there, so the lead can delete an entry once the move it waits for has landed.
A new upward import fails this test; so does an entry that is no longer needed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "feedbackctl"

RANK = {
    "feedbackctl": 0,
    "errors": 0,
    "clock": 1,
    "proc": 1,
    "boundedio": 1,
    "resources": 1,
    "charts": 1,
    "charts_svg": 1,
    "notify": 1,
    "core": 2,
    "authority": 3,
    "sources": 3,
    "patterns": 4,
    "dashboard": 5,
    "render": 5,
    "commands": 6,
    "demo": 6,
    "cli": 7,
    "__main__": 7,
}
CORE_MAY_IMPORT = frozenset({"core", "errors", "clock"})
SUBPROCESS_TYPES = frozenset({"CompletedProcess"})
CHOKE_POINT = "feedbackctl.proc"
GIT_GATEWAY = "feedbackctl.authority"
RAW_GIT = frozenset({"git", "_run"})  # GitRepo's argv entry points

# (importing module or package, imported module): why it is allowed for now.
KNOWN: dict[tuple[str, str], str] = {
}


@dataclass(frozen=True)
class Violation:
    module: str
    line: int
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported}: {self.rule}"


def layer(module: str) -> str:
    """``feedbackctl.patterns.audit`` -> ``patterns``; ``feedbackctl`` -> ``feedbackctl``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _within(module: str, scope: str) -> bool:
    return module == scope or module.startswith(scope + ".")


def imports(
    module: str, text: str, *, is_package: bool = False
) -> Iterator[tuple[int, str, tuple[str, ...]]]:
    """(line, imported module, names taken from it) of every import, at any depth of the module."""
    here = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = tuple(a.name for a in node.names)
            if base == "feedbackctl" or (node.level and not node.module):
                # ``from feedbackctl import errors``: each name may be a module of its own.
                for name in names:
                    yield node.lineno, f"{base}.{name}" if name != "__version__" else base, ()
            else:
                yield node.lineno, base, names


def check(module: str, text: str, *, is_package: bool = False) -> list[Violation]:
    """Every import of ``module`` (source ``text``) that breaks the layer map or the choke point."""
    found: list[Violation] = []
    mine = layer(module)
    for line, target, names in imports(module, text, is_package=is_package):
        typed_only = bool(names) and set(names) <= SUBPROCESS_TYPES
        if target == "subprocess" and module != CHOKE_POINT and not typed_only:
            found.append(Violation(module, line, target, f"subprocess only through {CHOKE_POINT}"))
            continue
        if not _within(target, "feedbackctl"):
            continue
        theirs = layer(target)
        if mine not in RANK or theirs not in RANK:
            unknown = mine if mine not in RANK else theirs
            found.append(Violation(module, line, target, f"'{unknown}' has no layer: add it to RANK"))
            continue
        if mine == "core" and theirs not in CORE_MAY_IMPORT:
            rule = f"core imports only {', '.join(sorted(CORE_MAY_IMPORT))}"
        elif RANK[theirs] > RANK[mine]:
            rule = f"{mine} (layer {RANK[mine]}) imports upward into {theirs} (layer {RANK[theirs]})"
        else:
            continue
        if not any(_within(module, who) and _within(target, what) for who, what in KNOWN):
            found.append(Violation(module, line, target, rule))
    return found


def raw_git_calls(module: str, text: str) -> list[Violation]:
    """Calls of ``<x>.git(...)`` / ``<x>._run(...)`` outside the git gateway."""
    if _within(module, GIT_GATEWAY):
        return []
    return [
        Violation(module, node.lineno, f".{node.func.attr}(...)", f"raw git argv outside {GIT_GATEWAY}")
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in RAW_GIT
    ]


def package_modules() -> Iterator[tuple[str, str, bool]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        yield ".".join(parts), path.read_text(encoding="utf-8"), is_package


def test_every_module_keeps_to_its_layer_and_the_subprocess_choke_point() -> None:
    problems = [v for module, text, pkg in package_modules() for v in check(module, text, is_package=pkg)]
    assert not problems, "\n".join(str(v) for v in problems)


def test_no_raw_git_argv_outside_the_authority_layer() -> None:
    problems = [v for module, text, _ in package_modules() for v in raw_git_calls(module, text)]
    assert not problems, "\n".join(str(v) for v in problems)


def test_the_raw_git_check_finds_an_argv_call() -> None:
    text = "def f(repo):\n    return repo.git('rev-list', 'main') + repo._run(['log']).stdout\n"
    assert [v.imported for v in raw_git_calls("feedbackctl.patterns.drift", text)] == [
        ".git(...)",
        "._run(...)",
    ]
    assert raw_git_calls("feedbackctl.authority.acts", text) == []


def test_every_known_exception_is_still_needed() -> None:
    """An allow-list entry the code no longer needs is deleted, so it cannot hide a new import."""
    used = set()
    for module, text, pkg in package_modules():
        for _, target, _ in imports(module, text, is_package=pkg):
            used |= {k for k in KNOWN if _within(module, k[0]) and _within(target, k[1])}
    assert set(KNOWN) - used == set()


@pytest.mark.parametrize(
    ("module", "text", "rule"),
    [
        ("feedbackctl.core.guards", "from feedbackctl.authority.gitrepo import GitRepo\n", "core imports"),
        ("feedbackctl.core.guards", "import feedbackctl.proc\n", "core imports only"),
        ("feedbackctl.sources.base", "def f():\n    from feedbackctl.patterns import audit\n", "upward"),
        ("feedbackctl.authority.acts", "from feedbackctl.commands.audit import audit_json\n", "upward"),
        ("feedbackctl.patterns.drift", "from feedbackctl.cli import run\n", "upward"),
        ("feedbackctl.patterns.drift", "from feedbackctl import cli\n", "upward"),
        ("feedbackctl.patterns.drift", "from ..commands import audit\n", "upward"),
        ("feedbackctl.render", "from feedbackctl.commands.options import Output\n", "upward"),
        ("feedbackctl.patterns.audit", "from feedbackctl.render import Report\n", "upward"),
        ("feedbackctl.authority.gitread", "import subprocess\n", "subprocess only through"),
        ("feedbackctl.sources.live", "from subprocess import run, CompletedProcess\n", "subprocess only"),
        ("feedbackctl.patterns.newthing", "from feedbackctl.gadgets import x\n", "has no layer"),
    ],
)
def test_the_checker_refuses_a_new_upward_import(module: str, text: str, rule: str) -> None:
    found = check(module, text)
    assert len(found) == 1 and rule in found[0].rule, found


@pytest.mark.parametrize(
    ("module", "text"),
    [
        ("feedbackctl.commands.audit", "from feedbackctl.patterns.audit import verify\n"),
        ("feedbackctl.patterns.drift", "from feedbackctl.authority.gitrepo import GitRepo\n"),
        ("feedbackctl.authority.config", "from feedbackctl.sources.base import is_source_kind\n"),
        ("feedbackctl.core.decide", "from feedbackctl.core import guards\nfrom feedbackctl.clock import x\n"),
        ("feedbackctl.authority.gitbase", "from subprocess import CompletedProcess\n"),
        ("feedbackctl.proc", "import subprocess\n"),
    ],
)
def test_the_checker_accepts_imports_that_keep_to_the_map(module: str, text: str) -> None:
    assert check(module, text) == []
