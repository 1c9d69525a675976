"""The values of claim files as history reads them: old versions, parsed once each.

A version of a file is a blob, which never changes, so its values are
remembered by (path, blob): in the process (``ValueMemo``) and, for plain
claim files, in the git dir (authority/logcache.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml

from feedbackctl.authority import logcache
from feedbackctl.authority.claims import claim_name_problem, is_claim_kind, parse_claims
from feedbackctl.authority.commits import Commit as Commit
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.identity import Origin, Origins
from feedbackctl.authority.overlay_trace import RenderedLocation
from feedbackctl.authority.overlays import read_values, rendered_fields
from feedbackctl.authority.yamldoc import plain_fast_path_ok
from feedbackctl.core.models import (
    Claim,
    Scalar,
)
from feedbackctl.errors import FeedbackError

# Reads {claim: {field: value}} out of one file's text (plain claims by default;
# reader_for adds the files that set values of Kustomize-rendered claims).
ValueReader = Callable[[str, bytes], Mapping[str, Mapping[str, Scalar]]]

_FastLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_KUSTOMIZATION_FILES = frozenset({"kustomization.yaml", "kustomization.yml", "Kustomization"})


def parse_scalar(text: str | None) -> Scalar:
    """A trailer value back to the scalar it was written from."""
    if text is None:
        return None
    t = text.strip()
    for cast in (int, float):
        try:
            return cast(t)
        except ValueError:
            pass
    if t in ("true", "false"):
        return t == "true"
    if t in ("null", "~", ""):
        return None
    return t


def claim_values(path: str, content: bytes) -> dict[str, dict[str, Scalar]]:
    """Scalar spec values of every claim in a plain claim file.

    History reads hundreds of old versions, so the common case (well-formed
    claims) takes PyYAML's C loader without positions, about 3x faster than
    the full parse; anything unusual goes through ``parse_claims``, whose
    checks (and whose silence about broken files) decide.
    """
    if path.rpartition("/")[2] in _KUSTOMIZATION_FILES or b"Claim" not in content:
        return {}
    if not plain_fast_path_ok(content):
        return _checked_values(path, content)
    try:
        docs = list(yaml.load_all(content, Loader=_FastLoader))
    except (FeedbackError, yaml.YAMLError, ValueError, TypeError, RecursionError):
        return _checked_values(path, content)
    out: dict[str, dict[str, Scalar]] = {}
    seen: set[str] = set()
    for doc in docs:
        if not isinstance(doc, dict) or not is_claim_kind(doc.get("kind")):
            continue
        meta, spec = doc.get("metadata"), doc.get("spec")
        name = meta.get("name") if isinstance(meta, dict) else None
        if not isinstance(name, str) or claim_name_problem(name) is not None or not isinstance(spec, dict):
            return _checked_values(path, content)
        if name in seen:  # defined twice: neither counts, as in parse_claims
            out.pop(name, None)
            continue
        seen.add(name)
        out[name] = _scalars(spec)
    return out


def _checked_values(path: str, content: bytes) -> dict[str, dict[str, Scalar]]:
    parsed = parse_claims([(path, "", content)])
    return {c.name: _scalars(c.spec) for c in parsed.claims}


def reader_for(claims: Sequence[Claim]) -> ValueReader:
    """Plain claim files, plus the files that set values of Kustomize-rendered claims."""
    rendered = rendered_fields(claims)
    if not rendered:
        return claim_values

    def read(path: str, content: bytes) -> dict[str, dict[str, Scalar]]:
        values = claim_values(path, content)
        for claim, fields in read_values(path, content, rendered.get(path, ())).items():
            values.setdefault(claim, {}).update(fields)
        return values

    return read


class ValueMemo:
    """Values read out of blobs, keyed by blob id: a blob's content never changes.

    Seeded from the snapshot's already-parsed claims, so the files the window's
    commits touched that are unchanged since are never parsed twice.
    """

    def __init__(self, reader: ValueReader, claims: Sequence[Claim] = ()) -> None:
        self.reader = reader
        self.content: dict[str, bytes] = {}
        self.known: dict[tuple[str, str], Mapping[str, Mapping[str, Scalar]]] = {}
        seeded: dict[tuple[str, str], dict[str, Mapping[str, Scalar]]] = defaultdict(dict)
        for c in claims:
            if c.blob and c.path and _in_own_file(c):
                seeded[(c.path, c.blob)][c.name] = _scalars(c.spec)
        self.known.update(seeded)
        self.parsed = {blob for _, blob in self.known}  # the blobs of ``known``, for ``load``
        self.origins = Origins()
        self._repo: GitRepo | None = None
        # Plain claim files' values are remembered in the git dir (logcache.load_values):
        # what was read from there, and which entries this run used or parsed anew.
        self._stored: dict[tuple[str, str], Mapping[str, Mapping[str, Scalar]]] | None = None
        self._stored_blobs: set[str] = set()
        self._used: dict[tuple[str, str], Mapping[str, Mapping[str, Scalar]]] = {}
        self._fresh = False
        # (commit, path, name) -> where that commit brought the claim into the file from.
        self.entries: dict[tuple[str, str, str], Origin] = {}

    def origin(self, repo: GitRepo, c: Commit, parent: int, path: str, name: str) -> Origin | None:
        """Where ``c`` took claim ``name``, new in ``path``, from (its ``parent``-th parent's claims)."""
        if parent >= len(c.parents):
            return None
        found = self.origins.origin(repo, c.parents[parent], c.sha, c.at, name)
        if found is not None and parent == 0:
            self.entries[(c.sha, path, name)] = found
        return found

    def load(self, repo: GitRepo, blobs: Sequence[str], paths: Sequence[str]) -> None:
        """Read, in one batch, the blobs not known yet (paths name them for errors)."""
        del paths
        self._repo = repo
        if self._stored is None and self.reader is claim_values:
            stored = logcache.load_values(repo)
            self._stored = dict(stored)
            self._stored_blobs = {blob for _, blob in stored}
        have, done, skip = self.content, self.parsed, self._stored_blobs
        missing = [b for b in dict.fromkeys(blobs) if b not in have and b not in done and b not in skip]
        if missing:
            self.content.update(repo.read_blobs(missing))

    def values(self, path: str, blob: str | None) -> Mapping[str, Mapping[str, Scalar]]:
        if blob is None:
            return {}
        key = (path, blob)
        if key not in self.known and self._stored is not None and key in self._stored:
            self.known[key] = self._used[key] = self._stored[key]
            self.parsed.add(blob)
        if key not in self.known:
            raw = self.content.get(blob)
            if raw is None and self._repo is not None:
                # Seeded under another path (a moved file's blob): its content was never read.
                self.content.update(self._repo.read_blobs([blob]))
                raw = self.content.get(blob)
            self.known[key] = self.reader(path, raw) if raw is not None else {}
            self.parsed.add(blob)
            if self._stored is not None and raw is not None:
                self._used[key] = self.known[key]
                self._fresh = True
        return self.known[key]

    def save(self) -> None:
        """Remember the values this run parsed, with those remembered before (past a bound, only
        those this run used)."""
        if self._fresh and self._repo is not None:
            kept = {**(self._stored or {}), **self._used}
            logcache.save_values(self._repo, kept if len(kept) <= logcache.MAX_VALUES else self._used)
            self._stored, self._fresh = kept, False


def _in_own_file(c: Claim) -> bool:
    """Every value is set in the claim's own file: not a rendered claim, whose values come
    from its overlay's patches."""
    path = c.path
    return all(loc.path == path and not isinstance(loc, RenderedLocation) for loc in c.locations.values())


_SCALAR_TYPES = frozenset({int, float, str, bool, type(None)})


def _scalars(spec: Mapping[str, Any]) -> dict[str, Scalar]:
    # The exact types first (a set lookup), the subclasses by isinstance: once per claim of a fleet.
    return {k: v for k, v in spec.items() if type(v) in _SCALAR_TYPES or isinstance(v, int | float | str)}
