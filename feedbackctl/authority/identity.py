"""Where a claim that appears in a file at some commit came from.

History is read per file, so a claim that a commit moves into a file (``git
mv``, a new directory, consolidating documents, splitting a file) or renames
(a new ``metadata.name``, same kind and spec) "appears" there. This module
answers, for such a commit, which claim of its parent it is: the matching
rule is ``core.identity.predecessors``; the reading is one ``git diff-tree``
of the commit against that parent and the claim files it changed, once per
(parent, commit). The claim's earlier history is then read at the file and
name it had, from that parent (docs/history.md, "Claim identity").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from feedbackctl.authority.claims import parse_claims
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.core.identity import Identity, predecessors
from feedbackctl.core.models import Claim, Scalar
from feedbackctl.errors import FeedbackError

_CLAIM_FILE = (".yaml", ".yml")


@dataclass(frozen=True)
class Origin:
    """A claim's place in the parent of the commit that brought it into a file."""

    path: str  # the file that held it there
    name: str  # its metadata.name there
    tip: str  # that parent: the claim's earlier history is reachable from it
    at: datetime  # the date of the commit that moved (or renamed) it
    values: Mapping[str, Scalar]  # its scalar spec values there


# For one (parent, commit): claim name after -> (path before, name before, values before, path after).
_Moves = dict[str, tuple[str, str, dict[str, Scalar], str]]


class Origins:
    """Origins looked up per (parent, commit); every answer is kept (a commit never changes)."""

    def __init__(self) -> None:
        self._moves: dict[tuple[str, str], _Moves] = {}

    def origin(self, repo: GitRepo, parent: str, commit: str, at: datetime, name: str) -> Origin | None:
        """Where claim ``name`` of ``commit`` was in ``parent`` (None: a new claim)."""
        found = self._of(repo, parent, commit).get(name)
        if found is None:
            return None
        path, old_name, values, _ = found
        return Origin(path, old_name, parent, at, values)

    def successor(self, repo: GitRepo, parent: str, commit: str, name: str) -> tuple[str, str] | None:
        """Where claim ``name`` of ``parent`` went in ``commit``: (path, name) after it; None if gone."""
        for new_name, (_, old_name, _, path) in self._of(repo, parent, commit).items():
            if old_name == name:
                return path, new_name
        return None

    def _of(self, repo: GitRepo, parent: str, commit: str) -> _Moves:
        key = (parent, commit)
        if key not in self._moves:
            self._moves[key] = _moves(repo, parent, commit)
        return self._moves[key]


def _moves(repo: GitRepo, parent: str, commit: str) -> _Moves:
    raw = repo.git("diff-tree", "-r", "-z", "--no-renames", "--no-abbrev", parent, commit)
    tokens = raw.decode("utf-8", "surrogateescape").split("\0")
    null = repo.null_oid
    changed: list[tuple[str, str | None, str | None]] = []
    for meta, path in zip(tokens[0::2], tokens[1::2], strict=False):
        parts = meta.lstrip(":").split()
        if len(parts) < 4 or not path.endswith(_CLAIM_FILE):
            continue
        old, new = (None if b == null else b for b in parts[2:4])
        changed.append((path, old, new))
    if not any(old for _, old, _ in changed):
        return {}  # nothing left any file: no claim can have moved
    contents = repo.read_blobs(sorted({b for _, old, new in changed for b in (old, new) if b}))
    before = _claims([(p, old, contents[old]) for p, old, _ in changed if old])
    after = _claims([(p, new, contents[new]) for p, _, new in changed if new])
    out: _Moves = {}
    matched = predecessors({i: c.spec for i, c in before.items()}, {i: c.spec for i, c in after.items()})
    for ident, was in matched.items():
        old_claim = before[was]
        out[ident[1]] = (old_claim.path, old_claim.name, _scalars(old_claim), after[ident].path)
    return out


def _claims(files: list[tuple[str, str, bytes]]) -> dict[Identity, Claim]:
    try:
        parsed = parse_claims(files)
    except FeedbackError:
        return {}
    return {(c.kind, c.name): c for c in parsed.claims}


def _scalars(claim: Claim) -> dict[str, Scalar]:
    return {k: v for k, v in claim.spec.items() if v is None or isinstance(v, int | float | str | bool)}
