"""The authority repository, read and written through git plumbing.

Why plumbing (SPEC section 5, "never clobber the user's work"): commits are
built in the object database with a throwaway index, refs move only by
compare-and-swap, and a checked-out branch is advanced the way
``git merge --ff-only`` would, touching only the files the commit changed.
Batches go through one process (``ls-tree -r``, ``cat-file --batch``,
``hash-object --stdin-paths``, one ``git log``) rather than one per file.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import CompletedProcess

from feedbackctl.authority import ffjournal, reflocks
from feedbackctl.authority.paths import UnsafePathError, path_problem, shown
from feedbackctl.authority.tempdirs import private_dir
from feedbackctl.authority.trailers import PREFIX, canonical_key, group_changes
from feedbackctl.authority.yamldoc import MAX_FILE_BYTES, OversizedBlob
from feedbackctl.errors import CommandError, ConflictError, FeedbackError, UsageError
from feedbackctl.proc import SubprocessTimeout, run, timeout_for

DEFAULT_IDENTITY = ("feedbackctl", "feedbackctl@localhost")
GIT_TIMEOUT_ENV = "FEEDBACKCTL_GIT_TIMEOUT"  # seconds for one git command (default 600)
GIT_TIMEOUT = 600.0

# Messages we parse must not be translated; prompts must never block a cron run.
_BASE_ENV = {"LC_ALL": "C", "LANGUAGE": "C", "GIT_TERMINAL_PROMPT": "0"}
# Rejections a caller answers by fetching and re-evaluating (push returns False).
_RETRYABLE_PUSH = (
    "stale info",
    "non-fast-forward",
    "fetch first",
    "already exists",
    "failed to update ref",
    "failed to lock",
    "cannot lock ref",
    "incorrect old value",
)
# How far a writer's clock may lag the branch tip's committer date.
CLOCK_SKEW = timedelta(minutes=5)
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
# `git update-ref` (compare-and-swap), then `git read-tree -m -u`; "$@" is the git prefix.
_CAS_FAILED = 97
_MOVE_AND_FOLLOW = (
    '"$@" update-ref -m feedbackctl "$FEEDBACKCTL_REF" "$FEEDBACKCTL_NEW" "$FEEDBACKCTL_OLD"'
    f" || exit {_CAS_FAILED}\n"
    'exec "$@" read-tree -m -u "$FEEDBACKCTL_OLD" "$FEEDBACKCTL_NEW"'
)
_BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


@dataclass(frozen=True)
class CommitRecord:
    """One commit as ``git log`` reports it, trailers included."""

    sha: str
    parents: tuple[str, ...]
    at: datetime  # committer date, UTC
    author_name: str
    author_email: str
    subject: str
    trailers: dict[str, list[str]]
    trailer_pairs: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def changes(self) -> list[dict[str, str]]:
        """One dict per ``Feedback-*`` change (a batch commit has several)."""
        return group_changes(self.trailer_pairs)

    @property
    def is_feedback(self) -> bool:
        """Written by feedbackctl: carries at least one ``Feedback-*`` trailer."""
        return any(key.startswith(PREFIX) for key in self.trailers)


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


def _git_date(now: datetime) -> str:
    """Git's raw date format, keeping the offset of ``now`` (naive means UTC)."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    offset = now.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset else 0
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{int(now.timestamp())} {sign}{hours:02d}{mins:02d}"


def _check_repo_path(path: str) -> None:
    problem = path_problem(path)
    if problem:
        raise UnsafePathError(
            f"'{shown(path)}' {problem}: not a clean repo-relative file path; nothing was written"
        )


class GitRepo:
    """A git repository (work tree or bare) that holds the claims."""

    lock_retries = 10  # index.lock contention: ~3s of backoff in total

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

    # -- opening and running -------------------------------------------------

    @classmethod
    def open(cls, path: str | Path) -> GitRepo:
        """Any path inside a work tree, or a bare repo (or its git dir)."""
        not_repo = UsageError(
            f"{path}: not a git repository; pass --repo a path inside a git work tree or a bare repo"
        )
        where = Path(path).expanduser()
        if where.is_file():
            where = where.parent
        if not where.is_dir():
            raise not_repo
        proc = run(
            [
                "git",
                *SAFE_CONFIG,
                "rev-parse",
                "--absolute-git-dir",
                "--is-bare-repository",
                "--is-inside-work-tree",
                "--show-object-format",
            ],
            cwd=where,
            env=_BASE_ENV,
            check=False,
        )
        err = proc.stderr.decode("utf-8", "replace")
        if proc.returncode != 0:
            if "dubious ownership" in err:
                raise UsageError(
                    f"{path}: git refuses this repository (dubious ownership); "
                    f"run `git config --global --add safe.directory {where.resolve()}`"
                )
            raise not_repo
        git_dir_s, bare_s, inside_s, fmt = proc.stdout.decode().splitlines()[:4]
        git_dir = Path(git_dir_s)
        is_bare = bare_s == "true"
        work_tree: Path | None = None
        if inside_s == "true":
            top = run(["git", *SAFE_CONFIG, "rev-parse", "--show-toplevel"], cwd=where, env=_BASE_ENV)
            work_tree = Path(top.stdout.decode().rstrip("\n"))
        elif not is_bare and git_dir.name == ".git":
            # Opened from inside .git of a normal clone.
            work_tree = git_dir.parent
        repo = cls(git_dir, work_tree, is_bare, fmt)
        if work_tree is not None:
            with contextlib.suppress(FeedbackError):  # never a reason not to open; advance says why
                ffjournal.recover(repo)
        return repo

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

    def update_ref(self, ref: str, new: str, old: str | None, *, reason: str = "feedbackctl") -> None:
        """Compare-and-swap ``ref`` from ``old`` (None: must not exist) to ``new``."""
        name = self.ref_name(ref)
        args = ["update-ref", "-m", reason, name, new, old or self.null_oid]
        proc = self._run(args, check=False)
        if proc.returncode != 0 and b".lock" in proc.stderr and reflocks.clear_stale(self, [name]):
            proc = self._run(args, check=False)  # a killed run's lock was in the way
        if proc.returncode == 0:
            return
        current = self._ref_sha(name)
        if current != old:
            raise ConflictError(
                f"{name} moved while this run was deciding (now {current or 'absent'}, "
                f"expected {old or 'absent'}); nothing was changed — rerun to re-evaluate"
            )
        if b".lock" in proc.stderr:
            # Another writer holds the ref's lock: it is about to move the ref (or died holding it).
            raise ConflictError(
                f"{name} is locked by another git process; nothing was changed — rerun "
                f"(if no other run is active, remove the stale {name}.lock)"
            )
        raise self._fail(args, proc)

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

    # -- reading -------------------------------------------------------------

    def list_files(
        self,
        commit: str,
        prefixes: Sequence[str] = ("",),
        suffixes: Sequence[str] = (".yaml", ".yml"),
    ) -> list[tuple[str, str]]:
        """(path, blob) of regular files under any prefix (plain string prefix), by path.

        An empty ``suffixes`` means any file name.
        """
        wanted = tuple(prefixes) or ("",)
        scopes = sorted({p.rpartition("/")[0] for p in wanted})
        limit = [] if "" in scopes else scopes
        out = self.git("ls-tree", "-r", "-z", "--full-tree", commit, "--", *limit)
        ends = tuple(suffixes)
        files: list[tuple[str, str]] = []
        for entry in out.split(b"\0"):
            if not entry:
                continue
            meta, _, raw_path = entry.partition(b"\t")
            mode, kind, sha = meta.decode().split(" ")
            path = raw_path.decode("utf-8", "surrogateescape")
            # Symlinks and submodules are not claim files.
            if kind != "blob" or mode == "120000":
                continue
            if path_problem(path):
                # Refused here, for every reader: reported by unsafe_paths().
                self._unsafe.setdefault(commit, set()).add(path)
                continue
            if path.startswith(wanted) and (not ends or path.endswith(ends)):
                files.append((path, sha))
        files.sort()
        return files

    def unsafe_paths(self, commit: str) -> list[UnsafePathError]:
        """One error per tree entry of ``commit`` that list_files refused (a '..', '.git', ...)."""
        return [
            UnsafePathError(
                f"commit {commit[:12]}: tree entry '{shown(p)}' {path_problem(p)}; it was refused "
                "(never read or written); remove it from the branch"
            )
            for p in sorted(self._unsafe.get(commit, ()))
        ]

    def _cat_batch(self, specs: Sequence[str]) -> dict[str, tuple[str, bytes] | None]:
        unique = list(dict.fromkeys(specs))
        if not unique:
            return {}
        if any("\n" in s for s in unique):
            raise FeedbackError("an object name or path contains a newline; git cannot read it")
        # Sizes first: a huge blob someone pushed is never read into memory.
        oversized = self._oversized(unique)
        wanted = [s for s in unique if s not in oversized]
        out = self.git("cat-file", "--batch", input="".join(f"{s}\n" for s in wanted).encode())
        found: dict[str, tuple[str, bytes] | None] = {s: ("blob", b) for s, b in oversized.items()}
        pos = 0
        for spec in wanted:
            nl = out.index(b"\n", pos)
            header = out[pos:nl].decode("utf-8", "replace")
            pos = nl + 1
            if header.endswith((" missing", " ambiguous")):
                found[spec] = None
                continue
            _sha, kind, size = header.rsplit(" ", 2)
            n = int(size)
            found[spec] = (kind, out[pos : pos + n])
            pos += n + 1
        return found

    def _oversized(self, specs: Sequence[str]) -> dict[str, OversizedBlob]:
        out = self.git("cat-file", "--batch-check", input="".join(f"{s}\n" for s in specs).encode())
        found: dict[str, OversizedBlob] = {}
        for spec, line in zip(specs, out.decode("utf-8", "replace").splitlines(), strict=False):
            parts = line.rsplit(" ", 2)
            size = int(parts[2]) if len(parts) == 3 and parts[2].isdigit() else 0
            if parts[1:2] == ["blob"] and size > MAX_FILE_BYTES:
                found[spec] = OversizedBlob(size)
        return found

    def read_blobs(self, blobs: Sequence[str]) -> dict[str, bytes]:
        """blob sha -> content, all through one ``git cat-file --batch``."""
        contents: dict[str, bytes] = {}
        for sha, got in self._cat_batch(blobs).items():
            if got is None:
                raise FeedbackError(f"object {sha} is missing from {self.display}; run `git fsck`")
            contents[sha] = got[1]
        return contents

    def read_file(self, commit: str, path: str) -> bytes | None:
        """A file's content at a commit; None when absent (or not a file)."""
        got = self._cat_batch([f"{commit}:{path}"]).get(f"{commit}:{path}")
        return got[1] if got is not None and got[0] == "blob" else None

    def files_containing(
        self, commit: str, text: str, suffixes: Sequence[str] = (".yaml", ".yml")
    ) -> list[str]:
        """Paths of files at ``commit`` whose content holds ``text`` (one ``git grep``), sorted."""
        globs = [f"*{s}" for s in suffixes] or ["*"]
        args = ["grep", "-l", "-z", "-F", "-I", "-e", text, commit, "--", *globs]
        proc = self._run(args, check=False)
        if proc.returncode == 1:
            return []
        if proc.returncode != 0:
            raise self._fail(args, proc)
        prefix = f"{commit}:"
        found = (p.decode("utf-8", "surrogateescape") for p in proc.stdout.split(b"\0") if p)
        return sorted(p.removeprefix(prefix) for p in found)

    def changed_paths(self, old: str, new: str) -> list[str]:
        out = self.git("diff-tree", "-r", "-z", "--name-only", "--no-renames", old, new)
        return sorted(p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p)

    def is_ancestor(self, a: str, b: str) -> bool:
        args = ["merge-base", "--is-ancestor", a, b]
        proc = self._run(args, check=False)
        if proc.returncode in (0, 1):
            return proc.returncode == 0
        raise self._fail(args, proc)

    def log(
        self,
        ref: str,
        since: datetime | None = None,
        paths: Sequence[str] = (),
        max_count: int | None = None,
    ) -> list[CommitRecord]:
        """Commits reachable from ``ref``, newest first, in one ``git log`` pass."""
        fmt = (
            "%H%x1f%P%x1f%ct%x1f%an%x1f%ae%x1f%s%x1f"
            "%(trailers:only,unfold,separator=%x1e,key_value_separator=%x1d)"
        )
        args = ["--literal-pathspecs", "log", "-z", "--no-show-signature", "--encoding=UTF-8"]
        args.append(f"--format={fmt}")
        if since is not None:
            since_utc = since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)
            args.append(f"--since={since_utc.strftime('%Y-%m-%d %H:%M:%S')} +0000")
        if max_count is not None:
            args.append(f"--max-count={max_count}")
        args += ["--end-of-options", ref, "--", *paths]
        proc = self._run(args, check=False)
        if proc.returncode != 0:
            self.resolve(ref)  # a missing ref gets the usage message
            raise self._fail(args, proc)
        records = []
        for raw in proc.stdout.split(b"\0"):
            if raw:
                records.append(_parse_record(raw.decode("utf-8", "replace")))
        return records

    # -- writing -------------------------------------------------------------

    def _identity(self, role: str) -> tuple[str, str]:
        """The person's git identity, by git's own precedence: GIT_<ROLE>_NAME/EMAIL, then
        config, then ours (a human act refuses ours: see ``patterns.proposals.human_identity``)."""
        if self._config_identity is None:
            proc = self._run(["config", "-z", "--get-regexp", r"^user\.(name|email)$"], check=False)
            pairs = (item.partition("\n") for item in proc.stdout.decode().split("\0") if item)
            self._config_identity = {key: value for key, _, value in pairs}
        name = os.environ.get(f"GIT_{role}_NAME") or self._config_identity.get("user.name")
        email = os.environ.get(f"GIT_{role}_EMAIL") or self._config_identity.get("user.email")
        return (name or DEFAULT_IDENTITY[0], email or DEFAULT_IDENTITY[1])

    def _hash_blobs(self, contents: Sequence[bytes], tmp: Path) -> list[str]:
        if not contents:
            return []
        names = []
        for i, content in enumerate(contents):
            blob_file = tmp / f"blob-{i}"
            blob_file.write_bytes(content)
            names.append(str(blob_file))
        # --no-filters: callers hand us repository-form bytes, not checkout form.
        out = self.git("hash-object", "-w", "--no-filters", "--stdin-paths", input="\n".join(names).encode())
        return out.decode().split()

    def write_commit(
        self,
        base: str,
        edits: Mapping[str, bytes | None],
        message: str,
        now: datetime,
        author: tuple[str, str] | None = None,
    ) -> str:
        """A commit on top of ``base`` with ``edits`` (None deletes), built off to the side.

        Nothing outside the object database is touched: no checkout, no shared index.
        ``author`` (a person, for human acts) is author and committer; by default the
        commit is the tool's, by ``bot_identity``.
        """
        for path in edits:
            _check_repo_path(path)
        self.check_not_before(base, now)
        writes = [(p, c) for p, c in edits.items() if c is not None]
        modes: dict[str, str] = {}
        if writes:
            listing = self.git("ls-tree", "-z", "--full-tree", base, "--", *(p for p, _ in writes))
            for entry in listing.split(b"\0"):
                if entry:
                    meta, _, raw_path = entry.partition(b"\t")
                    modes[raw_path.decode("utf-8", "surrogateescape")] = meta.split(b" ")[0].decode()
        with private_dir("feedbackctl-commit-") as tmp:
            blobs = dict(
                zip([p for p, _ in writes], self._hash_blobs([c for _, c in writes], tmp), strict=True)
            )
            index_env = {"GIT_INDEX_FILE": str(tmp / "index")}
            read = self._run(["read-tree", f"{base}^{{tree}}"], env=index_env, check=False)
            if read.returncode != 0:
                raise self._unbuildable(base, read)
            lines = [
                f"{modes.get(path, '100644')} {blobs[path]}\t{path}"
                if path in blobs
                else f"0 {self.null_oid}\t{path}"
                for path in edits
            ]
            info = "".join(f"{line}\0" for line in lines).encode("utf-8", "surrogateescape")
            self.git("update-index", "-z", "--index-info", input=info, env=index_env)
            tree = self.git("write-tree", env=index_env).decode().strip()
        date = _git_date(now)
        env: dict[str, str] = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
        for role in ("AUTHOR", "COMMITTER"):
            name, email = author or self.bot_identity
            env[f"GIT_{role}_NAME"] = name
            env[f"GIT_{role}_EMAIL"] = email
        text = message if message.endswith("\n") else message + "\n"
        out = self.git("commit-tree", tree, "-p", base, "-F", "-", input=text.encode(), env=env)
        return out.decode().strip()

    def check_not_before(self, base: str, now: datetime) -> None:
        """Refuse to date a commit before the one it follows (beyond a clock-skew allowance).

        Readers filter history by committer date; a commit dated far before
        its parent makes every date-bounded reader judge it (and a walk
        cut by date, everything behind it) out of place, so a back-dated
        ``--now`` is a mistake to stop, not to record.
        """
        ct = int(self.git("show", "-s", "--format=%ct", base, "--").decode().strip() or 0)
        tip = datetime.fromtimestamp(ct, UTC)
        moment = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
        if moment < tip - CLOCK_SKEW:
            raise UsageError(
                f"--now {moment.isoformat().replace('+00:00', 'Z')} is before the branch tip "
                f"{base[:10]} (committed {tip.isoformat().replace('+00:00', 'Z')}) by more than "
                f"{int(CLOCK_SKEW.total_seconds() // 60)} minutes; pass the real time or a later --now"
            )

    def _unbuildable(self, base: str, proc: CompletedProcess[bytes]) -> FeedbackError:
        """Why git cannot build on ``base``: one clear line when a hostile tree entry is the cause."""
        self.list_files(base, ("",), suffixes=())
        bad = self.unsafe_paths(base)
        if bad:
            return UnsafePathError(f"{bad[0]}; git cannot build a commit on it, so nothing was written")
        return self._fail(["read-tree", f"{base}^{{tree}}"], proc)

    # -- advancing a branch --------------------------------------------------

    def _checkout_of(self, name: str) -> tuple[Path, str | None] | None:
        """(work tree, its HEAD) of the worktree that has branch ``name`` checked out."""
        out = self.git("worktree", "list", "--porcelain").decode("utf-8", "surrogateescape")
        for block in out.split("\n\n"):
            fields = dict(line.partition(" ")[::2] for line in block.splitlines())
            if fields.get("branch") == name and "bare" not in fields:
                path = Path(fields["worktree"])
                if path.is_dir():
                    return path, fields.get("HEAD")
        return None

    def _retry_index_lock(self, args: Sequence[str]) -> CompletedProcess[bytes]:
        """An index-writing git step, retried while another process holds ``index.lock``.

        Detached: killed alone, the run must not take git with it while git holds the
        lock (a killed ``update-index --refresh`` or ``read-tree`` leaves ``index.lock``
        behind and every later git command in the checkout refuses).
        """
        delay = 0.02
        proc = self._run(args, check=False, detached=True)
        for _ in range(self.lock_retries - 1):
            if proc.returncode == 0 or b"index.lock" not in proc.stderr:
                break
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
            proc = self._run(args, check=False, detached=True)
        return proc

    def _lock_error(self) -> FeedbackError:
        return FeedbackError(
            f"{self.git_dir / 'index.lock'} exists: another git process is using {self.display}; "
            "wait for it (or remove a stale lock) and rerun — nothing was changed"
        )

    def _dirty_paths(self, paths: Sequence[str]) -> list[str]:
        # Past the command-line limit, ask about everything and filter here.
        spec = list(paths) if len(paths) <= 1000 else []
        out = self.git(
            "--no-optional-locks",
            "--literal-pathspecs",
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--ignored=traditional",
            "--",
            *spec,
        )
        tokens = out.split(b"\0")
        dirty: list[str] = []
        i = 0
        while i < len(tokens):
            token = tokens[i]
            i += 1
            if not token:
                continue
            xy, path = token[:2].decode(), token[3:].decode("utf-8", "surrogateescape")
            if "R" in xy or "C" in xy:
                i += 1  # the rename's source path follows
            dirty.append(path)
        if not spec:
            touched = set(paths)
            dirty = [p for p in dirty if p in touched or any(p.startswith(t + "/") for t in touched)]
        return sorted(dirty)

    def _prepare_fast_forward(self, old: str, new: str, paths: Sequence[str]) -> None:
        """Everything that can refuse, run before the ref moves."""
        refresh = self._retry_index_lock(["update-index", "-q", "--refresh"])
        if b"index.lock" in refresh.stderr:
            raise self._lock_error()
        dirty = self._dirty_paths(paths)
        if dirty:
            raise FeedbackError(
                f"{dirty[0]} has uncommitted changes; commit or stash them, then rerun — nothing was changed"
            )
        trial = self._retry_index_lock(["read-tree", "-m", "-u", "-n", old, new])
        if trial.returncode != 0:
            if b"index.lock" in trial.stderr:
                raise self._lock_error()
            reason = trial.stderr.decode("utf-8", "replace").strip().splitlines()
            raise FeedbackError(
                f"{self.display} cannot be fast-forwarded ({reason[0] if reason else 'read-tree'}); "
                "resolve it, then rerun — nothing was changed"
            )

    def advance(self, branch: str, new: str, old: str) -> None:
        """Move a branch old -> new by CAS; a checked-out branch's files follow, ff-only style."""
        name = self.ref_name(branch)
        if new == old:
            return
        checkout = self._checkout_of(name)
        if checkout is None:
            self.update_ref(name, new, old)
            return
        path, head = checkout
        if head != old:
            raise ConflictError(
                f"{name} is at {head or 'nothing'}, not {old}; nothing was changed — rerun to re-evaluate"
            )
        same = self.work_tree is not None and self.work_tree.resolve() == path.resolve()
        tree = self if same else GitRepo.open(path)
        try:
            tree._prepare_fast_forward(old, new, self.changed_paths(old, new))
        except FeedbackError:
            # A concurrent run that won the race moves the ref and then the files:
            # its fresh files look like local edits to us. The ref tells which it is.
            if self._ref_sha(name) != old:
                raise ConflictError(f"{name} moved while this run prepared its commit; rerun") from None
            raise
        # A kill between the ref and the files would leave the checkout behind its branch:
        # the intent lets the next run finish the job (ffjournal).
        intent = ffjournal.begin(tree, name, old, new)
        try:
            done = tree._move_and_follow(self, name, new, old)
        except FeedbackError:
            ffjournal.end(intent)
            raise
        ffjournal.end(intent)
        if done.returncode != 0:
            why = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise FeedbackError(
                f"{name} now points at {new} but the files in {path} could not follow "
                f"({why[-1] if why else 'read-tree failed'}); "
                f"run `git read-tree -m -u {old} {new}` there"
            )

    def _move_and_follow(self, owner: GitRepo, name: str, new: str, old: str) -> CompletedProcess[bytes]:
        """The ref's compare-and-swap, then this checkout's files, as one detached child.

        Killing the run (alone or with its process group) between the two would
        leave ``git status`` showing the change reverted and staged; in a child
        of its own session both steps finish even when the run is killed. The
        journal still covers a crash of the machine itself.
        """
        env = {"FEEDBACKCTL_REF": name, "FEEDBACKCTL_NEW": new, "FEEDBACKCTL_OLD": old}
        proc = run(
            ["sh", "-c", _MOVE_AND_FOLLOW, "sh", *self._argv([])],
            cwd=self.work_tree or self.git_dir,
            env={**_BASE_ENV, **env},
            check=False,
            detached=True,
        )
        if proc.returncode == _CAS_FAILED:
            owner.update_ref(name, new, old)  # says why (or clears a killed run's lock and moves)
            return self._retry_index_lock(["read-tree", "-m", "-u", old, new])
        if proc.returncode != 0 and b"index.lock" in proc.stderr:
            return self._retry_index_lock(["read-tree", "-m", "-u", old, new])
        return proc

    # -- remotes -------------------------------------------------------------

    def push(self, remote: str, branch: str, new: str, expected_remote: str | None) -> bool:
        """Push with an explicit-SHA lease; False when the remote moved (fetch and retry)."""
        ref = self.ref_name(branch)
        args = [
            "push",
            "--porcelain",
            f"--force-with-lease={ref}:{expected_remote or ''}",
            "--end-of-options",
            remote,
            f"{new}:{ref}",
        ]
        proc = self._run(args, check=False)
        for line in proc.stdout.decode("utf-8", "replace").splitlines():
            parts = line.split("\t")
            if len(parts) < 3 or not parts[1].endswith(f":{ref}"):
                continue
            if parts[0] != "!":
                return proc.returncode == 0
            if any(reason in parts[2] for reason in _RETRYABLE_PUSH) and "hook" not in parts[2]:
                return False
            detail = proc.stderr.decode("utf-8", "replace") + f"\n{parts[2]}\n"
            raise CommandError(["git", *args], proc.returncode, detail)
        raise self._fail(args, proc)

    def fetch(self, remote: str, branch: str) -> str | None:
        """Fetch ``branch`` from ``remote``; its sha there, or None when it has no such branch."""
        ref = self.ref_name(branch)
        named = remote in self.git("remote").decode().split()
        short = ref.removeprefix("refs/heads/")
        # A named remote's tracking ref is the natural home; a URL gets a private scratch ref.
        dst = f"refs/remotes/{remote}/{short}" if named else f"refs/feedbackctl/fetch/{uuid.uuid4().hex}"
        args = ["fetch", "--no-tags", "--no-write-fetch-head", "--quiet", "--end-of-options"]
        args += [remote, f"+{ref}:{dst}"]
        proc = self._run(args, check=False)
        try:
            if proc.returncode != 0:
                if b"couldn't find remote ref" in proc.stderr:
                    if named and self._ref_sha(dst):
                        self.git("update-ref", "-d", dst)
                    return None
                raise self._fail(args, proc)
            return self._ref_sha(dst)
        finally:
            if not named and self._ref_sha(dst):
                self.git("update-ref", "-d", dst)

    def remote_sha(self, remote: str, branch: str) -> str | None:
        ref = self.ref_name(branch)
        out = self.git("ls-remote", "--refs", "--end-of-options", remote, ref)
        for line in out.decode().splitlines():
            sha, _, name = line.partition("\t")
            if name == ref:
                return sha
        return None


def _parse_record(raw: str) -> CommitRecord:
    sha, parents, ct, name, email, rest = raw.split("\x1f", 5)
    subject, _, trailer_text = rest.rpartition("\x1f")
    pairs: list[tuple[str, str]] = []
    trailers: dict[str, list[str]] = {}
    for item in trailer_text.split("\x1e"):
        if "\x1d" not in item:
            continue
        key, _, value = item.partition("\x1d")
        key = canonical_key(key.strip())
        value = value.strip()
        pairs.append((key, value))
        trailers.setdefault(key, []).append(value)
    return CommitRecord(
        sha=sha.strip(),
        parents=tuple(parents.split()),
        at=datetime.fromtimestamp(int(ct), UTC),
        author_name=name,
        author_email=email,
        subject=subject,
        trailers=trailers,
        trailer_pairs=tuple(pairs),
    )
