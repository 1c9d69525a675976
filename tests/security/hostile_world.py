"""The world the hostile-content cases (YAML, records, live values, bounded reads,
CLI inputs) run in, and the checks every case makes.

Each case starts from the example's prod and dev claims in a real repo with a
bare origin, the example's week of metrics and a live-state file; it plants one
hostile thing and runs one command as a real subprocess (a generous timeout:
a hang or a bomb fails the case, no timing is asserted). Then:

- the exit code is 1 or 2 (or the one the case names) with no traceback;
- one stderr line names the file, claim or branch and says what is wrong;
- the claims that were fine still got their write;
- nothing appeared outside the repo, its origin and the tool's temp folder
  (the case's TMPDIR, which must also be empty again).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.clirun import ROOT, Result, cli
from tests.gitutil import commit_files, git_out, make_repo

EXAMPLE = ROOT / "examples" / "messagewall"
NOW = "2026-11-08T00:00:00Z"
PROD, DEV = "messagewall-prod", "messagewall-dev"
PROD_PATH, DEV_PATH = f"claims/{PROD}.yaml", f"claims/{DEV}.yaml"
PROD_CLAIM = (EXAMPLE / "claims" / f"{PROD}.yaml").read_text()
DEV_CLAIM = (EXAMPLE / "claims" / f"{DEV}.yaml").read_text().replace(
    "resourcePrefix: messagewall", "resourcePrefix: messagewall-dev"
)
LIMITS = "proposals:\n  maxOpen: 100\n  maxNewPerHour: 100\n"
TIMEOUT = 180.0  # generous: a bomb or a hang is what fails, not a slow machine
BOMB = (
    "a0: &a0 [x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 10))
)
DEEP = "[" * 5000 + "]" * 5000 + "\n"


@dataclass
class World:
    tmp: Path
    work: Path
    origin: Path
    metrics: Path
    live: Path
    tmpdir: Path
    outside_before: set[str] = field(default_factory=set)

    def commit(self, files: dict[str, str | None], message: str = "Human edit") -> str:
        """A human's edit, pushed: propose builds on the authority branch's upstream."""
        sha = commit_files(self.work, files, message, "2026-10-02T00:00:00Z")
        git_out(self.work, "push", "-q", "origin", "HEAD")
        return sha

    def run(self, *argv: str, now: bool = True) -> Result:
        self.outside_before = outside(self)
        args = [*argv, *(["--now", NOW] if now and "--now" not in argv else [])]
        env = {"TMPDIR": str(self.tmpdir), "COLUMNS": "200"}
        return cli(*args, cwd=self.tmp, env=env, timeout=TIMEOUT)

    def refs(self) -> dict[str, str]:
        out = git_out(self.work, "for-each-ref", "--format=%(refname) %(objectname)")
        return dict(line.split() for line in out.splitlines())

    def propose(self, *extra: str) -> list[str]:
        return ["propose", "--all", "--repo", str(self.work), "--metrics", str(self.metrics), *extra]

    def analyze_write(self) -> list[str]:
        return ["analyze", "--write", "--repo", str(self.work), "--metrics", str(self.metrics)]

    def drift(self, *extra: str) -> list[str]:
        return ["drift", "--repo", str(self.work), "--live", str(self.live), *extra]


def make_world(tmp: Path) -> World:
    work, origin = make_repo(
        tmp,
        {PROD_PATH: PROD_CLAIM, DEV_PATH: DEV_CLAIM, ".feedbackctl.yaml": LIMITS},
        date="2026-10-01T00:00:00Z",
    )
    metrics = tmp / "metrics"
    shutil.copytree(EXAMPLE / "metrics", metrics)
    live = tmp / "live.yaml"
    live.write_text(f"{PROD}: {{lambdaTimeout: 60}}\n{DEV}: {{lambdaTimeout: 45}}\n")
    tmpdir = tmp / "tool-tmp"
    tmpdir.mkdir()
    return World(tmp, work, origin, metrics, live, tmpdir)


def outside(w: World) -> set[str]:
    """Every path under the case's folder that is not the repo, its origin or the tool's temp folder."""
    inside = (w.work, w.origin, w.tmpdir)
    found = set()
    for root, dirs, files in os.walk(w.tmp):
        dirs[:] = [d for d in dirs if Path(root, d) not in inside]
        found |= {os.path.join(root, f) for f in files}
    return found


def written_paths(w: World, before: dict[str, str], after: dict[str, str]) -> set[str]:
    """Every path a commit new since ``before`` touches, on any ref."""
    old = [f"^{sha}" for sha in set(before.values())]
    paths: set[str] = set()
    for ref, sha in after.items():
        if before.get(ref) != sha:
            out = git_out(w.work, "log", "--format=", "--name-only", sha, *old)
            paths |= {p for p in out.splitlines() if p}
    return paths


def check(
    w: World,
    result: Result,
    *,
    code: int | tuple[int, ...],
    line: str | Callable[[str], bool],
    before: dict[str, str],
    processed: tuple[str, ...] = (),
    not_in_output: tuple[str, ...] = (),
) -> None:
    """The checks every hostile case makes (see the module docstring)."""
    codes = code if isinstance(code, tuple) else (code,)
    assert result.code in codes, f"exit {result.code}, expected {codes}\n{result.stderr}"
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    matches = [x for x in lines if (line(x) if callable(line) else line in x)]
    assert matches, f"no stderr line with {line!r}:\n{result.stderr}"
    paths = written_paths(w, before, w.refs())
    for claim in processed:
        assert any(claim in p for p in paths), f"{claim} got no write: {sorted(paths)}"
    for text in not_in_output:
        assert text not in result.stdout and text not in result.stderr, text
    assert outside(w) == w.outside_before, sorted(outside(w) - w.outside_before)
    assert list(w.tmpdir.iterdir()) == [], list(w.tmpdir.iterdir())


def replace_on_branch(w: World, branch: str, path: str, content: str) -> None:
    """Rewrite the tip commit of ``branch`` with ``path`` set to ``content``, keeping its message
    (and so its ``Feedback-*`` trailers): a junk record as if feedbackctl had written it."""
    index = w.tmp / "replace.index"
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}
    git_out(w.work, "read-tree", branch, env=env)
    source = w.tmp / "replace.blob"
    source.write_text(content)
    blob = git_out(w.work, "hash-object", "-w", str(source))
    source.unlink()
    git_out(w.work, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
    tree = git_out(w.work, "write-tree", env=env)
    message = git_out(w.work, "log", "-1", "--format=%B", branch)
    parent = git_out(w.work, "rev-parse", f"{branch}^")
    commit = git_out(w.work, "commit-tree", tree, "-p", parent, "-m", message)
    git_out(w.work, "update-ref", f"refs/heads/{branch}", commit)
    index.unlink()
