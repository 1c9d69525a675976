"""Running git in a repository, and reading its refs: the base every ``GitRepo`` part shares.

Every git call goes through ``GitBase._run``: ``SAFE_CONFIG`` and the filter
overrides keep a repository's config from making git run programs (see
docs/security.md), messages stay untranslated and prompts never block a cron run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from subprocess import CompletedProcess

from feedbackctl.errors import CommandError, UsageError
from feedbackctl.proc import SubprocessTimeout, run, timeout_for

DEFAULT_IDENTITY = ("feedbackctl", "feedbackctl@localhost")
GIT_TIMEOUT_ENV = "FEEDBACKCTL_GIT_TIMEOUT"  # seconds for one git command (default 600)
GIT_TIMEOUT = 600.0

# Messages we parse must not be translated; prompts must never block a cron run.
_BASE_ENV = {"LC_ALL": "C", "LANGUAGE": "C", "GIT_TERMINAL_PROMPT": "0"}
# Programs a repository's config (or a config file a hostile tree could have
# planted) can make git run: no internal git call runs them. Filter drivers
# are neutralised by name (``filter_overrides``). See docs/security.md.
SAFE_CONFIG = (
    "-c",
    "core.fsmonitor=",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.attributesFile=/dev/null",
)
_BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def check_ref_name(name: str) -> None:
    """Git's ref-name rules (git-check-ref-format), so a bad name fails with our message."""
    problem = None
    if not name or name == "@" or name.endswith("/") or name.endswith("."):
        problem = "is empty or ends with '/' or '.'"
    elif "//" in name or ".." in name or "@{" in name:
        problem = "contains '//', '..' or '@{'"
    elif _BAD_REF_CHARS.search(name):
        problem = "contains a space, control character or one of ~^:?*[\\"
    elif any(part.startswith(".") or part.endswith(".lock") for part in name.split("/")):
        problem = "has a component starting with '.' or ending with '.lock'"
    elif name.startswith("-") or name.startswith("/"):
        problem = "starts with '-' or '/'"
    if problem:
        raise UsageError(f"'{name}' is not a valid git ref name: it {problem}; choose another name")


def branch_name_problem(name: str, *, git_rules: bool = True) -> str | None:
    """Why ``name`` may not be a branch the tool writes (short form, under refs/heads/), or None.

    Beyond git's own rules: a leading '-' (or one on any component) could be
    read as an option by a git command, '@' and 'HEAD' mean something else to
    git, and 'refs/...' would name a ref outside refs/heads/.
    """
    if not name:
        return "is empty"
    if name in ("@", "HEAD") or name.startswith("refs/"):
        return "is '@', 'HEAD' or a full ref name; pass a branch name such as feedback/review"
    if any(part.startswith("-") for part in name.split("/")):
        return "has a component starting with '-'"
    for full in (name, f"refs/heads/{name}") if git_rules else ():
        try:
            check_ref_name(full)
        except UsageError as e:
            return e.message.split(": it ", 1)[-1].split("; choose", 1)[0]
    return None


class GitBase:
    """A git repository (work tree or bare): how git runs in it, and its refs."""

    def __init__(self, git_dir: Path, work_tree: Path | None, is_bare: bool, object_format: str):
        self.git_dir = git_dir
        self.work_tree = work_tree
        self.is_bare = is_bare
        self.null_oid = "0" * (64 if object_format == "sha256" else 40)
        self._config_identity: dict[str, str] | None = None
        self._unsafe: dict[str, set[str]] = {}
        # Who the tool's own (automated) commits are by: `identity:` in .feedbackctl.yaml,
        # set when the settings are read. Human acts pass the person's identity instead.
        self.bot_identity: tuple[str, str] = DEFAULT_IDENTITY

    @property
    def common_dir(self) -> Path:
        """Where refs live (a linked worktree's git dir holds only its HEAD and index)."""
        common = self.__dict__.get("_common_dir")
        if common is None:
            out = self.git("rev-parse", "--path-format=absolute", "--git-common-dir").decode().strip()
            common = self.__dict__["_common_dir"] = Path(out)
        return Path(common)

    @property
    def display(self) -> str:
        return str(self.work_tree or self.git_dir)

    def _filter_overrides(self) -> list[str]:
        """``-c`` settings that empty every configured filter driver (git then applies none).

        A committed ``.gitattributes`` can name any driver; only configured ones
        run programs, so emptying those (an empty command is no filter) covers
        every attribute a tree can hold.
        """
        cached = self.__dict__.get("_filters")
        if cached is None:
            argv = ["git", *SAFE_CONFIG, f"--git-dir={self.git_dir}", "config", "-z", "--get-regexp"]
            proc = run([*argv, r"^filter\..*\.(clean|smudge|process|required)$"], env=_BASE_ENV, check=False)
            drivers = {
                item.partition("\n")[0][len("filter.") :].rpartition(".")[0]
                for item in proc.stdout.decode("utf-8", "surrogateescape").split("\0")
                if item
            }
            cached = []
            for name in sorted(drivers):
                for key in ("clean", "smudge", "process"):
                    cached += ["-c", f"filter.{name}.{key}="]
                cached += ["-c", f"filter.{name}.required=false"]
            self.__dict__["_filters"] = cached
        return list(cached)

    def _argv(self, args: Sequence[str]) -> list[str]:
        argv = ["git", *SAFE_CONFIG, *self._filter_overrides(), f"--git-dir={self.git_dir}"]
        if self.work_tree is not None:
            argv.append(f"--work-tree={self.work_tree}")
        return [*argv, *args]

    def _run(
        self,
        args: Sequence[str],
        *,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        detached: bool = False,
    ) -> CompletedProcess[bytes]:
        full_env = {**_BASE_ENV, **(env or {})}
        cwd = self.work_tree or self.git_dir
        seconds = timeout_for(GIT_TIMEOUT_ENV, GIT_TIMEOUT)
        try:
            proc = run(
                self._argv(args),
                cwd=cwd,
                input=input,
                env=full_env,
                check=False,
                timeout=seconds,
                detached=detached,
            )
        except SubprocessTimeout as e:
            # Name the git subcommand, not our -c and --git-dir plumbing.
            raise SubprocessTimeout(["git", *args], e.seconds, GIT_TIMEOUT_ENV) from None
        if check and proc.returncode != 0:
            # Name the git subcommand in the message, not our --git-dir plumbing.
            raise self._fail(args, proc)
        return proc

    def git(self, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None) -> bytes:
        """Run one git command in this repo; CommandError on failure."""
        return self._run(args, input=input, env=env).stdout

    def _fail(self, args: Sequence[str], proc: CompletedProcess[bytes]) -> CommandError:
        return CommandError(["git", *args], proc.returncode, proc.stderr.decode("utf-8", "replace"))

    # -- refs ----------------------------------------------------------------

    def current_branch(self) -> str | None:
        proc = self._run(["symbolic-ref", "-q", "HEAD"], check=False)
        if proc.returncode == 1:
            return None
        if proc.returncode != 0:
            raise self._fail(["symbolic-ref", "-q", "HEAD"], proc)
        ref = proc.stdout.decode().strip()
        return ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None

    def default_ref(self) -> str:
        branch = self.current_branch()
        if branch is None:
            raise UsageError(
                f"HEAD is detached in {self.display}; pass --ref BRANCH to name the authority branch"
            )
        return branch

    def _ref_sha(self, ref: str) -> str | None:
        proc = self._run(["rev-parse", "--verify", "--quiet", "--end-of-options", ref], check=False)
        sha = proc.stdout.decode().strip()
        return sha if proc.returncode == 0 and sha else None

    def resolve(self, ref: str) -> str:
        sha = self._ref_sha(f"{ref}^{{commit}}")
        if sha is None:
            raise UsageError(
                f"ref '{ref}' not found in {self.display}; pass --ref an existing branch, tag or commit"
            )
        return sha

    def ref_name(self, ref: str) -> str:
        """Full ref name for update-ref: a bare name is a branch, ``HEAD`` its branch."""
        if ref == "HEAD":
            ref = self.default_ref()
        full = ref if ref.startswith("refs/") else f"refs/heads/{ref}"
        check_ref_name(full)
        return full

    def list_refs(self, prefix: str) -> dict[str, str]:
        """refname -> commit sha (tags peeled) for refs starting with ``prefix``."""
        scope = prefix.rpartition("/")[0]
        args = ["for-each-ref", "--format=%(refname)%00%(objectname)%00%(*objectname)"]
        out = self.git(*args, *([scope + "/"] if scope else []))
        refs: dict[str, str] = {}
        for line in out.decode().splitlines():
            name, sha, peeled = line.split("\0")
            if name.startswith(prefix):
                refs[name] = peeled or sha
        return refs
