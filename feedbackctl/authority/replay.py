"""Walking the authority branch oldest first, knowing what git said at every commit.

``audit verify`` judges each feedback commit by the claims, policy and field
histories *as they were at its parent*. Loading a snapshot and a history per
commit is quadratic on long histories, so the replay keeps both up to date as
it walks: one ``git log --raw`` pass over every commit reachable through any
parent (parents before children), the changed claim files re-parsed from
their new blobs, and field events (trailers, and value changes without a
trailer, which are human) appended as they happen. A merge is read whole;
its own value changes are the values that differ from every parent (one it
took from a parent is that parent's change, replayed already). A commit that
touches the settings, the policies, a Kustomize file or any file under a
Kustomize root (a patch an overlay reads) is read with a full ``load_snapshot``
instead, so whatever that function knows (overlays) holds.

The histories it hands out are the ones ``load_histories`` + ``fill_baselines``
would build at the parent with ``now`` = the commit's date (the audit tests
check the two agree).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime

from feedbackctl.authority.claims import parse_claims
from feedbackctl.authority.commits import Commit, read_commits
from feedbackctl.authority.config import CONFIG_FILE
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.history import (
    Histories,
    _trailer_events,
    annotated_baseline,
    history_window,
)
from feedbackctl.authority.kustomize import KUSTOMIZATION_FILES
from feedbackctl.authority.snapshot import Snapshot, load_snapshot
from feedbackctl.core.commitcheck import scalars
from feedbackctl.core.identity import predecessors
from feedbackctl.core.models import (
    AUTOMATED_KINDS,
    HUMAN_KINDS,
    Claim,
    FieldChange,
    FieldHistory,
    FleetHistory,
    Scalar,
)
from feedbackctl.core.policy import Policy
from feedbackctl.errors import FeedbackError


class Replay:
    """Snapshots and histories, commit by commit, oldest first."""

    def __init__(self, repo: GitRepo) -> None:
        self.repo = repo
        self.snapshot: Snapshot | None = None
        self.events: dict[tuple[str, str], list[FieldChange]] = defaultdict(list)
        self.last_human: dict[tuple[str, str], Scalar] = {}
        self.fleet: list[tuple[str, FieldChange]] = []

    def walk(self, head: str) -> Iterator[tuple[Commit, Snapshot | None, Snapshot, FeedbackError | None]]:
        """(commit, snapshot at its parent, at it, why it is unreadable); recorded after the caller looks.

        A commit whose settings or policy cannot be read keeps its parent's
        snapshot (and says why), so one broken commit does not stop the walk.
        """
        commits = read_commits(self.repo, head, oldest_first=True)
        children: dict[str, int] = defaultdict(int)
        for c in commits:
            for p in c.parents:
                children[p] += 1
        at: dict[str, Snapshot] = {}  # snapshots a commit still to come builds on
        for c in commits:
            parents = [at[p] for p in c.parents if p in at]
            before = parents[0] if parents else None
            error = None
            try:
                after = load_snapshot(self.repo, c.sha) if c.is_merge else self._next(before, c)
            except FeedbackError as e:
                if before is None:
                    raise
                after, error = before, e
            yield c, before, after, error
            self._record(c, parents, after)
            self.snapshot = after
            for p in c.parents:
                children[p] -= 1
                if children[p] <= 0:
                    at.pop(p, None)
            if children[c.sha] > 0:
                at[c.sha] = after

    # -- snapshots ----------------------------------------------------------------

    def _next(self, before: Snapshot | None, c: Commit) -> Snapshot:
        if before is None:
            return load_snapshot(self.repo, c.sha)
        cfg = before.settings.config
        policies = f"{cfg.policies_dir}/"
        roots = before.kustomize_roots
        for p in c.paths:
            if (
                p == CONFIG_FILE
                or p.startswith(policies)
                or p.rpartition("/")[2] in KUSTOMIZATION_FILES
                or any(r == "" or p.startswith(f"{r}/") for r in roots)  # a patch an overlay reads
            ):
                return load_snapshot(self.repo, c.sha)
        changed = [p for p in c.paths if p.startswith(cfg.claim_paths) and p.endswith((".yaml", ".yml"))]
        if not changed:
            return replace(before, commit=c.sha)
        new_blobs = {p: c.blobs.get(p, (None, None))[1] for p in changed}
        contents = self.repo.read_blobs([b for b in new_blobs.values() if b])
        parsed = parse_claims(
            [(p, b, contents[b]) for p, b in sorted(new_blobs.items()) if b], kinds=cfg.claim_kinds or None
        )
        gone = set(changed)
        claims = [cl for cl in before.claims if cl.path not in gone] + parsed.claims
        claims.sort(key=lambda cl: (cl.path, cl.doc_index))
        errors = [e for e in before.errors if not any(p in str(e) for p in gone)] + parsed.errors
        return replace(before, commit=c.sha, claims=claims, errors=errors)

    # -- histories ------------------------------------------------------------------

    def _record(self, c: Commit, parents: Sequence[Snapshot], after: Snapshot) -> None:
        fields = set(after.settings.policy.tuned_fields)
        for p in parents:
            fields |= set(p.settings.policy.tuned_fields)
        happened = [(claim, f, ch) for claim, f, ch in _trailer_events([c])]
        olds = [{cl.name: scalars(cl) for cl in p.claims} for p in parents] or [{}]
        automated = any(k in AUTOMATED_KINDS for k in c.stray)
        renamed = self._renames(parents, after, fields)
        for cl in after.claims:
            new = scalars(cl)
            was = renamed.get(cl.name, cl.name)
            for f in sorted(fields):
                prior = [old.get(was, {}).get(f) for old in olds]
                if automated or c.trailer_for(cl.name, f) is not None:
                    continue
                if all(p != new.get(f) for p in prior):  # a merge's own value differs from every parent
                    happened.append((cl.name, f, FieldChange(c.sha, c.at, prior[0], new.get(f), "human")))
        for claim, f, ch in happened:
            self.events[(claim, f)].append(ch)
            if ch.kind in HUMAN_KINDS and ch.old != ch.new:
                self.last_human[(claim, f)] = ch.new
            if ch.automated:
                self.fleet.append((claim, ch))

    def _renames(self, parents: Sequence[Snapshot], after: Snapshot, fields: set[str]) -> dict[str, str]:
        """New name -> former name of the claims this commit renamed; each takes its former history.

        The rule is ``core.identity.predecessors`` (docs/history.md, "Claim identity").
        """
        if len(parents) != 1:
            return {}
        before = {cl.name: cl for cl in parents[0].claims}
        added = [cl for cl in after.claims if cl.name not in before]
        if not added:
            return {}
        names = {cl.name for cl in after.claims}
        gone = {(cl.kind, cl.name): cl.spec for cl in parents[0].claims if cl.name not in names}
        matched = predecessors(gone, {(cl.kind, cl.name): cl.spec for cl in added})
        renamed = {new[1]: old[1] for new, old in matched.items()}
        for new, old in renamed.items():
            for f in fields:
                self.events[(new, f)] = list(self.events.get((old, f), ()))
                if (old, f) in self.last_human:
                    self.last_human[(new, f)] = self.last_human[(old, f)]
        return renamed

    def histories(self, claims: Sequence[Claim], policy: Policy, now: datetime) -> Histories:
        """What ``load_histories`` + ``fill_baselines`` say at the current commit for ``now``."""
        since = now - history_window(policy, claims)
        out: dict[str, dict[str, FieldHistory]] = {}
        for cl in claims:
            out[cl.name] = {}
            for f in policy.tuned_fields:
                # All of them: a flap freeze counts changes of any age (it never expires).
                changes = tuple(self.events.get((cl.name, f), ()))
                humans = [ch for ch in changes if ch.kind in HUMAN_KINDS and ch.old != ch.new]
                baseline: Scalar
                if humans:
                    baseline = humans[-1].new
                else:
                    explicit = annotated_baseline(cl, f)
                    baseline = explicit if explicit is not None else self.last_human.get((cl.name, f))
                out[cl.name][f] = FieldHistory(cl.name, f, changes, baseline=baseline)
        recent = tuple((claim, ch) for claim, ch in self.fleet if ch.at >= since)
        return Histories(out, FleetHistory(recent))
