"""The one history reader: every commit reachable from a branch, as one type.

Every history read (guards' field histories, baselines, flap lifts, the audit
replay, ``history``) goes through ``read_commits``. Two rules make the
history one that ordinary git use cannot launder (docs/history.md):

* **Every parent.** The walk follows every parent, not the first one only,
  so auto-tunes that a ``git pull`` merge brings in from the second parent
  stay visible. A merge's file changes are read against *every* parent
  (git's combined diff): a value the merge took from a parent keeps that
  parent's commit (and so its author and kind); only a value that differs
  from every parent is the merge's own (a human resolving a conflict).
* **Dates filter, never stop.** ``--since`` makes git stop at the first
  commit older than the cutoff, so one back-dated commit would hide all
  history behind it; ``--since-as-filter`` (git >= 2.37) drops old commits
  but walks on, at the price of walking (and diffing, for a path) the whole
  history. So each reader first asks whether the cut is exact for this tip
  and cutoff (``cut_is_exact``: no commit dated at or after the cutoff hides
  behind an older one, one walk of commit-graph data), and uses the cheap
  ``--since`` only then.
"""

from __future__ import annotations

import gc
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.trailers import RUN_KEY, parse_trailers, stray_kinds

_RS, _US = "\x1e", "\x1f"

Blobs = Mapping[str, tuple[str | None, str | None]]  # path -> (blob at the first parent, blob here)


@contextmanager
def bulk() -> Iterator[None]:
    """Pause the cyclic garbage collector while many small objects are built, then restore it.

    Tens of thousands of commits, dicts and tuples, none of them in a cycle,
    would otherwise trigger collections that traverse every one built so far.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


@dataclass(frozen=True)
class Commit:
    sha: str
    parent: str | None  # the first parent
    at: datetime  # committer date, UTC
    changes: tuple[dict[str, str], ...]  # trailer groups
    paths: tuple[str, ...]
    blobs: Blobs = field(default_factory=dict)
    parents: tuple[str, ...] = ()
    author: str = ""
    author_email: str = ""
    subject: str = ""
    # A merge: path -> (blob at each parent, blob here), for the paths that differ from every parent.
    merged: Mapping[str, tuple[tuple[str | None, ...], str | None]] = field(default_factory=dict)
    # Feedback-Kind values written outside the final trailer block (see trailers.stray_kinds).
    stray: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        *,
        sha: str,
        parent: str | None,
        at: datetime,
        changes: tuple[dict[str, str], ...],
        paths: tuple[str, ...],
        blobs: Blobs,
        parents: tuple[str, ...],
        author: str,
        author_email: str,
        subject: str,
        merged: Mapping[str, tuple[tuple[str | None, ...], str | None]],
        stray: tuple[str, ...],
    ) -> Commit:
        """A commit with every field given, made without the frozen ``__init__``.

        A run builds tens of thousands of commits (a remembered trailer walk,
        authority/logcache.py); the generated ``__init__`` sets each field
        through ``object.__setattr__``, a quarter of the decoding time. The
        result is the same as ``Commit(...)`` with those fields.
        """
        made = object.__new__(cls)
        made.__dict__.update(
            sha=sha,
            parent=parent,
            at=at,
            changes=changes,
            paths=paths,
            blobs=blobs,
            parents=parents,
            author=author,
            author_email=author_email,
            subject=subject,
            merged=merged,
            stray=stray,
        )
        return made

    @property
    def is_merge(self) -> bool:
        return len(self.parents) > 1

    @property
    def run(self) -> str | None:
        """The ``Feedback-Run`` id of the run that wrote it (docs/audit.md); older commits have none."""
        return next((g[RUN_KEY] for g in self.changes if g.get(RUN_KEY)), None)

    def trailer_for(self, claim: str, field: str) -> dict[str, str] | None:
        for g in self.changes:
            if g.get("Feedback-Claim") == claim and g.get("Feedback-Field") in (field, f"spec.{field}"):
                return g
        return None


def read_commits(
    repo: GitRepo,
    rev: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    paths: Sequence[str] = (),
    only: Collection[str] | None = None,
    max_count: int | None = None,
    skip: int = 0,
    diffs: bool = True,
    trailers_only: bool = False,
    oldest_first: bool = False,
) -> list[Commit]:
    """Commits reachable from ``rev`` through any parent, newest first (or oldest first, parents first).

    ``since``/``until`` filter by committer date without cutting the walk;
    ``paths`` limits the walk (git's default history simplification: a merge
    that took a file unchanged from one parent is followed down that parent
    only); ``only`` just keeps those paths' blobs; ``diffs`` False skips the
    diffs (trailers only); ``trailers_only`` lets git skip every commit
    without a ``Feedback-*`` line.
    """
    # logcache builds Commits (through logentries): imported here, so neither module needs
    # the other half-initialised whichever is imported first.
    from feedbackctl.authority import logcache

    if logcache.serves(rev, paths, only, diffs, trailers_only, oldest_first):
        return logcache.query(
            repo,
            rev,
            paths[0] if paths else None,
            since=since,
            until=until,
            skip=skip,
            max_count=max_count,
        )
    args = log_args(diffs=diffs, trailers_only=trailers_only)
    if since is not None:
        exact = cut_is_exact(repo, rev, since)
        args.append(f"--since{'' if exact else '-as-filter'}=@{int(since.timestamp())}")
    if until is not None:
        args.append(f"--until=@{int(until.timestamp())}")
    if oldest_first:
        args += ["--topo-order", "--reverse"]
    if skip:
        args.append(f"--skip={skip}")
    if max_count is not None:
        args.append(f"--max-count={max_count}")
    args += ["--end-of-options", rev, "--", *paths]
    return parse_log(repo, repo.git(*args), only)


def log_args(*, diffs: bool = True, trailers_only: bool = False) -> list[str]:
    """The ``git log`` options ``parse_log`` reads, without revisions."""
    fmt = f"--format={_RS}%H{_US}%P{_US}%ct{_US}%an{_US}%ae{_US}%B{_US}"
    args = ["--literal-pathspecs", "log", "-z", "--no-show-signature", "--encoding=UTF-8", fmt]
    if diffs:
        args += ["--no-renames", "--diff-merges=combined", "--root", "--raw", "--no-abbrev"]
    if trailers_only:
        args += ["--regexp-ignore-case", "--grep=^feedback-[a-z]*:"]
    return args


def parse_log(repo: GitRepo, output: bytes, only: Collection[str] | None = None) -> list[Commit]:
    """The commits of ``git log`` run with ``log_args``, in its order."""
    out = output.decode("utf-8", "replace")
    null = repo.null_oid
    commits = []
    build = Commit.build
    with bulk():
        for record in out.split(_RS)[1:]:
            sha, parents, ct, author, email, body, raw = record.split(_US, 6)
            blobs: dict[str, tuple[str | None, str | None]] = {}
            merged: dict[str, tuple[tuple[str | None, ...], str | None]] = {}
            tokens = raw.split("\0")
            i = 0
            while i < len(tokens):
                meta = tokens[i].strip()
                i += 1
                if not meta.startswith(":") or i >= len(tokens):
                    continue
                path = tokens[i]
                i += 1
                if only is not None and path not in only:
                    continue
                n = len(meta) - len(meta.lstrip(":"))  # one colon per parent
                ids = [None if b == null else b for b in meta.lstrip(":").split()[n + 1 : 2 * n + 2]]
                if n == 1:
                    blobs[path] = (ids[0], ids[1])
                else:
                    merged[path] = (tuple(ids[:n]), ids[n])
                    blobs[path] = (ids[0], ids[n])
            parent_list = tuple(parents.split())
            # Most commits say nothing of feedbackctl: without "feedback-" (any case) in the
            # message, neither parser can find a thing (tests/test_history_parse.py).
            marked = "feedback-" in body.lower()
            commits.append(
                build(
                    sha=sha,
                    parent=parent_list[0] if parent_list else None,
                    at=datetime.fromtimestamp(int(ct), UTC),
                    changes=tuple(parse_trailers(body)) if marked else (),
                    paths=tuple(blobs),
                    blobs=blobs,
                    parents=parent_list,
                    author=author,
                    author_email=email,
                    subject=body.split("\n", 1)[0].strip(),
                    merged=merged,
                    stray=tuple(stray_kinds(body)) if marked else (),
                )
            )
    return commits


_EXACT: dict[tuple[str, str, int], bool] = {}
_SHA = frozenset("0123456789abcdef")


def cut_is_exact(repo: GitRepo, rev: str, since: datetime) -> bool:
    """Whether ``git log --since`` from ``rev`` sees every commit dated at or after ``since``.

    The cut walk stops at the boundary: the older parents of the commits it
    shows. It misses something exactly when a commit dated after the cutoff
    is an ancestor of a boundary commit, which one filtered walk from the
    boundary tells. Remembered per commit (a sha never changes history).
    """
    at = int(since.timestamp())
    key = (str(repo.git_dir), rev, at)
    if key in _EXACT:
        return _EXACT[key]
    full_sha = len(rev) == len(repo.null_oid) and set(rev) <= _SHA
    # Most histories have no back-dated commit around the cutoff: that is known per tip without a walk.
    from feedbackctl.authority import logcache  # see read_commits(): a call-time import breaks the cycle

    if full_sha and logcache.no_skew_at(repo, rev, at):
        _EXACT[key] = True
        return True
    listing = repo.git("rev-list", "--parents", f"--since=@{at}", "--end-of-options", rev, "--").decode()
    shown: set[str] = set()
    parents: set[str] = set()
    for line in listing.splitlines():
        sha, *ps = line.split()
        shown.add(sha)
        parents.update(ps)
    boundary = sorted(parents - shown) if shown else [rev]  # a tip older than the cutoff is the boundary
    exact = True
    if boundary:
        hidden = repo.git(
            "rev-list",
            "--max-count=1",
            f"--since-as-filter=@{at}",
            "--stdin",
            "--",
            input=("\n".join(boundary) + "\n").encode(),
        )
        exact = not hidden.strip()
    if full_sha:
        _EXACT[key] = exact
    return exact
