"""Remotes: push with an explicit-SHA lease, fetch one branch, ask a remote (a part of ``GitRepo``).

A rejected lease is an answer, not an error: ``push`` returns False and the
caller fetches, decides again and retries (``feedbackctl.authority.cas``).
"""

from __future__ import annotations

import uuid

from feedbackctl.authority.gitbase import GitBase
from feedbackctl.errors import CommandError

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


class GitRemotes(GitBase):
    """The repository's remotes."""

    def remotes(self) -> list[str]:
        """The names of the configured remotes."""
        return self.git("remote").decode().split()

    def branch_remote(self, branch: str) -> str:
        """``branch.<branch>.remote`` from git config; "" when it is not set."""
        args = ["config", "--get", f"branch.{branch}.remote"]
        proc = self._run(args, check=False)
        if proc.returncode == 1:
            return ""
        if proc.returncode != 0:
            raise self._fail(args, proc)
        return proc.stdout.decode().strip()

    def fetch_refs(self, remote: str, refspec: str) -> None:
        """Fetch ``refspec`` from a named remote, pruning what the remote deleted."""
        self.git("fetch", "--prune", "--no-tags", "--quiet", "--end-of-options", remote, refspec)

    def delete_remote_ref(self, remote: str, ref: str, expected: str) -> bool:
        """Delete ``ref`` on ``remote`` only if it is still at ``expected`` (explicit-SHA lease)."""
        args = ["push", "--porcelain", f"--force-with-lease={ref}:{expected}", "--end-of-options"]
        return self._run([*args, remote, f":{ref}"], check=False).returncode == 0

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
