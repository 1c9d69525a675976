"""Batch writer: many commits in one ``git fast-import`` stream, refs in one CAS transaction.

Why: one commit through plumbing costs about five git processes; a run that
opens a thousand proposal branches would spend tens of seconds forking git.
``fast-import`` writes every blob, tree and commit of the batch in one
process (one pack). It is pointed at a private scratch ref, never at a real
branch, because it moves the refs it names without compare-and-swap; the
real refs then move in one ``git update-ref --stdin`` transaction that names
the old value of every ref, so either all of them move or none does (a
concurrent run that got there first makes the whole batch retry).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from feedbackctl.authority import reflocks
from feedbackctl.authority.gitrepo import GitRepo, _check_repo_path, _git_date, check_ref_name
from feedbackctl.authority.tempdirs import private_dir
from feedbackctl.errors import CommandError, ConflictError

SCRATCH_NAMESPACE = "refs/feedbackctl/import/"
# ls-tree takes paths on its command line; stay far below ARG_MAX.
_LS_TREE_CHUNK = 500


@dataclass(frozen=True)
class NewCommit:
    """One commit to build: ``edits`` on top of ``base`` (None deletes a path)."""

    base: str
    edits: Mapping[str, bytes | None]
    message: str
    now: datetime
    author: tuple[str, str] | None = None  # a person (human acts); default: the tool's bot identity


@dataclass(frozen=True)
class RefUpdate:
    """Move ``ref`` (a full name) from ``old`` (None: must not exist) to ``new`` (None: delete)."""

    ref: str
    new: str | None
    old: str | None


def read_objects(repo: GitRepo, specs: Sequence[str]) -> dict[str, bytes | None]:
    """``rev`` or ``rev:path`` -> object content (None when absent), in one ``cat-file --batch``."""
    return {spec: (got[1] if got is not None else None) for spec, got in repo._cat_batch(specs).items()}


def _data(payload: bytes) -> bytes:
    return b"data %d\n%s\n" % (len(payload), payload)


def _ident(who: tuple[str, str], now: datetime) -> bytes:
    name, email = who
    if any(c in name + email for c in "<>\n"):
        raise CommandError(["git", "fast-import"], 1, f"identity {name!r} <{email}> has <, > or a newline")
    return f"{name} <{email}> {_git_date(now)}".encode()


def _path(path: str) -> bytes:
    _check_repo_path(path)
    if path.startswith('"') or any(c in path for c in "\n\\"):
        quoted = path.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}"'.encode("utf-8", "surrogateescape")
    return path.encode("utf-8", "surrogateescape")


def _modes(repo: GitRepo, commits: Sequence[NewCommit]) -> dict[tuple[str, str], str]:
    """(base, path) -> mode of every edited path that exists at its base (keeps +x and friends)."""
    by_base: dict[str, set[str]] = {}
    for c in commits:
        by_base.setdefault(c.base, set()).update(p for p, v in c.edits.items() if v is not None)
    modes: dict[tuple[str, str], str] = {}
    for base, paths in by_base.items():
        ordered = sorted(paths)
        for i in range(0, len(ordered), _LS_TREE_CHUNK):
            out = repo.git("ls-tree", "-z", "--full-tree", base, "--", *ordered[i : i + _LS_TREE_CHUNK])
            for entry in out.split(b"\0"):
                if entry:
                    meta, _, raw = entry.partition(b"\t")
                    modes[(base, raw.decode("utf-8", "surrogateescape"))] = meta.split(b" ")[0].decode()
    return modes


def _stream(
    repo: GitRepo, commits: Sequence[NewCommit], scratch: str, modes: Mapping[tuple[str, str], str]
) -> Iterator[bytes]:
    for mark, c in enumerate(commits, start=1):
        author = committer = c.author or repo.bot_identity  # a person's act, or the tool's own
        message = c.message if c.message.endswith("\n") else c.message + "\n"
        yield f"commit {scratch}\nmark :{mark}\n".encode()
        yield b"author " + _ident(author, c.now) + b"\n"
        yield b"committer " + _ident(committer, c.now) + b"\n"
        yield _data(message.encode("utf-8"))
        yield f"from {c.base}\n".encode()
        for path, content in c.edits.items():
            if content is None:
                yield b"D " + _path(path) + b"\n"
                continue
            mode = modes.get((c.base, path), "100644")
            if mode not in ("100644", "100755"):
                mode = "100644"  # a symlink or submodule path becomes a regular file, as write_commit does
            yield f"M {mode} inline ".encode() + _path(path) + b"\n"
            yield _data(content)
        yield b"\n"
    yield b"done\n"


def write_commits(repo: GitRepo, commits: Sequence[NewCommit]) -> list[str]:
    """Build every commit in one fast-import stream; their shas, in order.

    Only objects are written: the scratch ref fast-import needs is deleted
    again, so no ref the caller did not ask for is left behind.
    """
    if not commits:
        return []
    for c in commits:
        if c.now.tzinfo is None:
            raise ValueError("commit times must be timezone-aware")
        for path in c.edits:
            _path(path)
    sweep_scratch(repo)
    scratch = f"{SCRATCH_NAMESPACE}{uuid.uuid4().hex}"
    stream = b"".join(_stream(repo, commits, scratch, _modes(repo, commits)))
    with private_dir("feedbackctl-import-") as tmp:
        marks = tmp / "marks"
        try:
            repo.git(
                "fast-import",
                "--quiet",
                "--done",
                "--force",
                "--date-format=raw",
                f"--export-marks={marks}",
                input=stream,
            )
        finally:
            # The scratch ref is ours alone (a fresh name): a plain delete is safe.
            if repo.list_refs(scratch):
                repo.git("update-ref", "-d", scratch)
        shas: dict[int, str] = {}
        for line in marks.read_text().splitlines():
            mark, _, sha = line.partition(" ")
            shas[int(mark.lstrip(":"))] = sha.strip()
    return [shas[i] for i in range(1, len(commits) + 1)]


def sweep_scratch(repo: GitRepo) -> None:
    """Remove the scratch refs (and their locks) of runs killed during a fast-import.

    A live run's scratch ref is seconds old and is kept; a stale one keeps the
    objects of a batch nobody will use alive and only piles up. Each delete is
    a compare-and-swap, so two runs sweeping at once cannot remove anything else.
    """
    for lock in reflocks.stale_locks_under(repo, SCRATCH_NAMESPACE):
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
    stale = [
        RefUpdate(ref, None, sha)
        for ref, sha in repo.list_refs(SCRATCH_NAMESPACE).items()
        if not reflocks.is_fresh(repo.common_dir / ref)  # a packed ref has no file: old
    ]
    with contextlib.suppress(ConflictError, CommandError):
        update_refs(repo, stale, reason="feedbackctl: sweep scratch refs of killed runs")


def update_refs(repo: GitRepo, updates: Sequence[RefUpdate], *, reason: str = "feedbackctl") -> None:
    """All of ``updates`` in one ``git update-ref --stdin`` transaction, each a compare-and-swap.

    ConflictError (nothing moved) when any ref is not at its expected old value.
    """
    if not updates:
        return
    lines = []
    for u in updates:
        check_ref_name(u.ref)
        if not u.ref.startswith("refs/"):
            raise ValueError(f"{u.ref}: pass a full ref name")
        old = u.old or repo.null_oid
        if u.new is None:
            lines.append(f"delete {u.ref} {old}")
        else:
            lines.append(f"update {u.ref} {u.new} {old}")
    script = "start\n" + "\n".join(lines) + "\nprepare\ncommit\n"
    argv = ["update-ref", "-m", reason, "--stdin"]
    proc = repo._run(argv, input=script.encode(), check=False)
    locked = proc.returncode != 0 and b".lock" in proc.stderr
    if locked and reflocks.clear_stale(repo, [u.ref for u in updates]):
        proc = repo._run(argv, input=script.encode(), check=False)  # a killed run's locks were in the way
    if proc.returncode == 0:
        return
    err = proc.stderr.decode("utf-8", "replace").strip()
    first = err.splitlines()[0] if err else "update-ref failed"
    lost = ("but expected", "reference already exists", "unable to resolve reference", ".lock")
    if any(marker in err for marker in lost):
        raise ConflictError(
            f"{first.removeprefix('fatal: ')} — another run moved a proposal branch first; "
            "nothing was changed, rerun to re-evaluate"
        )
    raise CommandError(["git", "update-ref", "--stdin"], proc.returncode, err)
