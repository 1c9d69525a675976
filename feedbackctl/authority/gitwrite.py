"""Writing commits off to the side: a throwaway index, never a checkout (a part of ``GitRepo``).

A run must never clobber the user's checkout or shared index: a commit is
built in the object database on top of the commit that was read, and only
moving a ref (``GitRepo.update_ref``, ``advance``) makes it visible.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import CompletedProcess

from feedbackctl.authority.gitbase import DEFAULT_IDENTITY
from feedbackctl.authority.gitread import GitReading
from feedbackctl.authority.paths import UnsafePathError, path_problem, shown
from feedbackctl.authority.tempdirs import private_dir
from feedbackctl.errors import FeedbackError, UsageError

# How far a writer's clock may lag the branch tip's committer date.
CLOCK_SKEW = timedelta(minutes=5)


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


class GitWriting(GitReading):
    """Blobs, trees and commits built in the object database."""

    def identity(self, role: str) -> tuple[str, str]:
        """The person's git identity for ``role`` (AUTHOR or COMMITTER); ours when git has none."""
        return self._identity(role)

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
