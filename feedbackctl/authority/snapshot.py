"""The authority ref as one consistent read: settings, policy and claims.

Everything is read from git's object database at one commit, never from the
work tree, so it works on bare repos and cannot see half-edited files.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from feedbackctl.authority.claimcache import ClaimCache
from feedbackctl.authority.claims import DuplicateClaimError, parse_claims
from feedbackctl.authority.config import Settings, load_settings
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.overlays import load_overlays
from feedbackctl.authority.shard import Shard
from feedbackctl.authority.xrd import load_xrds, with_schemas
from feedbackctl.core.models import Claim
from feedbackctl.errors import ClaimError, FeedbackError


@dataclass
class Snapshot:
    repo: GitRepo
    branch: str  # short branch name of the authority ref
    commit: str
    settings: Settings
    claims: list[Claim]
    errors: list[FeedbackError] = field(default_factory=list)
    # The Kustomize roots under the claim paths (overlays.roots): a commit touching a file
    # under one must be re-rendered, not re-parsed file by file (authority/replay.py).
    kustomize_roots: tuple[str, ...] = ()

    def claim(self, name: str) -> Claim | None:
        return next((c for c in self.claims if c.name == name), None)

    def read(self, path: str) -> bytes | None:
        return self.repo.read_file(self.commit, path)

    def restrict(self, shard: Shard) -> Snapshot:
        """Only the claims of ``shard``; a file-level error is reported by shard 0 alone."""
        if shard.count == 1:
            return self

        def mine(e: FeedbackError) -> bool:
            return e.claim in shard if isinstance(e, ClaimError) else shard.index == 0

        return replace(
            self,
            claims=[c for c in self.claims if c.name in shard],
            errors=[e for e in self.errors if mine(e)],
        )


def open_repo(path: str | Path) -> GitRepo:
    return GitRepo.open(path)


def branch_of(repo: GitRepo, ref: str | None) -> str:
    name = ref or repo.default_ref()
    return name.removeprefix("refs/heads/")


def load_snapshot(repo: GitRepo, ref: str | None, *, at: str | None = None) -> Snapshot:
    """The authority branch ``ref`` as of its tip, or as of commit ``at`` (e.g. a remote's sha)."""
    branch = branch_of(repo, ref)
    commit = repo.resolve(at or branch)
    settings = load_settings(repo, commit)
    cfg = settings.config
    kinds = cfg.claim_kinds or None
    # Kustomize roots under the claim paths render claims; their files are never plain claims.
    overlays = load_overlays(repo, commit, cfg.claim_paths, kinds)
    listed = [
        (path, blob)
        for path, blob in repo.list_files(commit, cfg.claim_paths)
        if not path.startswith(f"{cfg.policies_dir}/")
        and path != ".feedbackctl.yaml"
        and not overlays.covers(path)
    ]
    cache = ClaimCache(repo.git_dir)
    contents = repo.read_blobs([blob for path, blob in listed if not cache.has(path, blob, kinds)])
    claim_set = parse_claims(
        [(path, blob, contents.get(blob, b"")) for path, blob in listed], kinds, parser=cache.parse
    )
    cache.save()
    claims, duplicates = _unique([*claim_set.claims, *overlays.claims])
    xrds = load_xrds(repo, commit)
    claims = with_schemas(claims, xrds, settings.policy)
    # Tree entries the listings refused ('..', '.git', control characters): one line each.
    errors = [*repo.unsafe_paths(commit), *claim_set.errors, *overlays.errors, *duplicates, *xrds.errors]
    return Snapshot(repo, branch, commit, settings, claims, errors, overlays.roots)


def _unique(claims: list[Claim]) -> tuple[list[Claim], list[FeedbackError]]:
    """A name both a plain file and an overlay define (or two overlays) is used by neither."""
    places: dict[str, list[str]] = {}
    for c in claims:
        places.setdefault(c.name, []).append(c.path)
    errors: list[FeedbackError] = [
        DuplicateClaimError(name, paths) for name, paths in places.items() if len(paths) > 1
    ]
    return [c for c in claims if len(places[c.name]) == 1], errors
