"""Reading a repository: trees, blobs in batches, and the log (a part of ``GitRepo``).

Batches go through one process (``ls-tree -r``, ``cat-file --batch``, one
``git log``) rather than one per file; a blob over ``MAX_FILE_BYTES`` is never
read into memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from feedbackctl.authority.gitbase import GitBase
from feedbackctl.authority.paths import UnsafePathError, path_problem, shown
from feedbackctl.authority.trailers import PREFIX, canonical_key, group_changes
from feedbackctl.authority.yamldoc import MAX_FILE_BYTES, OversizedBlob
from feedbackctl.errors import FeedbackError


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


class GitReading(GitBase):
    """Trees, blobs and commits as they are stored."""

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

    def message(self, sha: str) -> str:
        """The full message of commit ``sha`` (undecodable bytes replaced)."""
        return self.git("log", "-1", "--format=%B", sha, "--").decode("utf-8", "replace")

    def subjects(self, rev: str) -> dict[str, str]:
        """sha -> subject of every commit ``rev`` (a ref or a range) reaches."""
        out = self.git("log", "--format=%H%x1f%s", rev, "--").decode("utf-8", "replace")
        return dict(line.split("\x1f", 1) for line in out.splitlines() if "\x1f" in line)

    def rev_list(self, rev: str) -> list[str]:
        """The shas of every commit ``rev`` (a ref or a range) reaches, newest first."""
        return self.git("rev-list", rev, "--").decode().split()

    def count_between(self, base: str, tip: str) -> int:
        """How many commits ``tip`` has that ``base`` lacks."""
        return int(self.git("rev-list", "--count", f"{base}..{tip}").decode().strip())

    def first_parent_before(self, commit: str, at: datetime) -> str | None:
        """The newest first-parent commit of ``commit`` dated at or before ``at`` (None: none is)."""
        when = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +0000")
        out = self.git("rev-list", "-1", "--first-parent", f"--before={when}", commit, "--")
        return out.decode().strip() or None

    def tips_merged_into(self, commit: str, scopes: Sequence[str]) -> set[str]:
        """The tip shas of refs under ``scopes`` that ``commit`` already contains."""
        out = self.git("for-each-ref", f"--merged={commit}", "--format=%(objectname)", *scopes)
        return set(out.decode().split())

    def diff_text(self, old: str, new: str, path: str) -> str:
        """``git diff -U0`` of one path between two commits (no colour, no external diff)."""
        out = self.git("diff", "-U0", "--no-color", "--no-ext-diff", old, new, "--", path)
        return out.decode("utf-8", "replace")

    def show_commit(self, sha: str) -> str:
        """Sha, author line and message of one commit, as a person reads it."""
        return self.git("show", "--no-patch", "--format=%H%n%an <%ae> %aI%n%n%B", sha).decode()

    def show_patch(self, sha: str) -> str:
        """The changes of one commit (``git show --unified=0``, no header)."""
        return self.git("show", "--format=", "--unified=0", sha).decode()


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
