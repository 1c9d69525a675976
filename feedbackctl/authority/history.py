"""Field histories derived from git: git history is the tool's memory.

Cooldown, settling, rate limits and flap windows are bounded in time, so the
history a run needs is too, and it never walks history once per claim:

* one ``git log --grep`` pass over the longest window (the flap window, 30
  days by default) reads every ``Feedback-*`` trailer: auto-tunes, drift
  captures, approvals, markers; git filters the messages. Older trailers
  are read too, because a flap freeze never expires. Every walk follows
  every parent and filters by date without stopping (authority/commits.py).
* one ``git log --raw`` pass finds changes made by
  anyone else by value (the blob of a claim file at a commit against its
  parent), so a human edit or a merge also starts the settling window. By
  default it covers the whole window for every claim; autotune limits it to
  the claims that opt in and to the *value window*: the longest metric window
  a decision reads, plus settling (7 days + 2 hours by default). Each blob is
  parsed once; the snapshot's parsed claims seed them.
* a field whose flap freeze counts reversals older than the value window
  gets the newest edit without trailers before it (the one that would lift
  the freeze): a short walk per file with Bloom filters, else one pass.
* baselines (the value last set by a human) can lie before every window.
  They are derived only for the fields that need one, per file, walking back
  from where the value scan stopped in growing batches that end at the first
  human act. A commit-graph with Bloom filters
  (``git commit-graph write --reachable --changed-paths``) makes these
  path-limited walks cheap on long histories.
* every walk follows a claim, not a file: where a commit brought the claim
  into a file (a move, a consolidation, a split, a rename of
  ``metadata.name``), it is compared with what it was where it came from,
  and the walk goes on there (authority/identity.py; docs/history.md,
  "Claim identity").

Tests check that the windowed reading decides every opted-in field exactly
as a full scan of the same history does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from feedbackctl.authority import logcache
from feedbackctl.authority.claims import claim_name_problem, is_claim_kind, parse_claims
from feedbackctl.authority.commits import Commit as Commit
from feedbackctl.authority.commits import read_commits
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.identity import Origin, Origins
from feedbackctl.authority.overlays import RenderedLocation, read_values, rendered_fields
from feedbackctl.authority.trailers import RUN_KEY
from feedbackctl.authority.yamldoc import plain_fast_path_ok
from feedbackctl.core import flap
from feedbackctl.core.decide import SIZING_LOOKBACK_MINUTES, TRUST_WINDOW_FACTOR
from feedbackctl.core.models import (
    AUTOMATED_KINDS,
    HUMAN_KINDS,
    MARKER_KINDS,
    Claim,
    FieldChange,
    FieldHistory,
    FleetHistory,
    Scalar,
)
from feedbackctl.core.policy import Policy
from feedbackctl.errors import FeedbackError

# Reads {claim: {field: value}} out of one file's text (plain claims by default;
# reader_for adds the files that set values of Kustomize-rendered claims).
ValueReader = Callable[[str, bytes], Mapping[str, Mapping[str, Scalar]]]

_RS, _US = "\x1e", "\x1f"
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


# Every commit reachable from a rev (any parent), newest first, with trailers and blobs;
# ``only`` keeps just those paths' blobs, ``paths`` limits the walk (see authority/commits.py).
read_log = read_raw_log = read_commits


def read_trailer_log(
    repo: GitRepo, rev: str, *, since: datetime | None = None, until: datetime | None = None
) -> list[Commit]:
    """Commits between ``since`` and ``until`` that carry ``Feedback-*`` trailers, newest first.

    ``--grep`` lets git skip every other message; no diffs are computed.
    """
    commits = read_commits(repo, rev, since=since, until=until, diffs=False, trailers_only=True)
    return [c for c in commits if c.changes or c.stray]


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
            # A rendered claim's values come from its overlay's patches, not its own file.
            rendered = any(isinstance(loc, RenderedLocation) for loc in c.locations.values())
            if c.blob and c.path and not rendered and all(loc.path == c.path for loc in c.locations.values()):
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


def _scalars(spec: Mapping[str, object]) -> dict[str, Scalar]:
    return {k: v for k, v in spec.items() if v is None or isinstance(v, int | float | str | bool)}


def _value_events(
    repo: GitRepo,
    commits: Sequence[Commit],
    claim_paths: Mapping[str, set[str]],
    fields: Sequence[str],
    memo: ValueMemo,
) -> list[tuple[str, str, FieldChange]]:
    """Value changes made by commits without trailers for them (humans, merges)."""
    todo = [(c, p) for c in commits for p in c.paths if p in claim_paths]
    memo.load(repo, [b for c, p in todo for b in _blobs_of(c, p) if b is not None], [p for _, p in todo])
    events = []
    for c, p in todo:
        for claim, f, old, new in _own_changes(c, p, claim_paths[p], fields, memo, repo):
            if c.trailer_for(claim, f) is None:
                events.append((claim, f, FieldChange(c.sha, c.at, old, new, "human")))
    return events


value_events = _value_events  # the one reading of human changes: guards, ``history``, drift


def _blobs_of(c: Commit, path: str) -> tuple[str | None, ...]:
    if path in c.merged:
        parents, new = c.merged[path]
        return (*parents, new)
    return c.blobs.get(path, (None, None))


def _own_changes(
    c: Commit,
    path: str,
    claims: Collection[str],
    fields: Sequence[str],
    memo: ValueMemo,
    repo: GitRepo | None = None,
) -> list[tuple[str, str, Scalar, Scalar]]:
    """(claim, field, old, new) for the values this commit itself set in one file.

    A merge sets only the values that differ from every parent: one it took
    from a parent is that parent's change, already on the walk. A commit
    whose message calls it automated outside its trailer block sets nothing
    a human can be credited with. A claim new in the file that the commit
    moved or renamed from elsewhere (``repo`` given) is compared with the
    values it had there: moving a claim sets nothing (docs/history.md,
    "Claim identity").
    """
    if any(k in AUTOMATED_KINDS for k in c.stray):
        return []
    if c.is_merge:
        if path not in c.merged:
            return []  # the file is one parent's: nothing of the merge's own
        parent_blobs, new_blob = c.merged[path]
        parents = [memo.values(path, b) for b in parent_blobs]
    else:
        old_blob, new_blob = c.blobs.get(path, (None, None))
        parents = [memo.values(path, old_blob)]
    after = memo.values(path, new_blob)
    out = []
    for claim in sorted(claims):
        now = after.get(claim)
        before = []
        for i, p in enumerate(parents):
            was = p.get(claim)
            if was is None and now is not None and repo is not None:
                origin = memo.origin(repo, c, i, path, claim)
                was = origin.values if origin is not None else None
            before.append(was or {})
        for f in fields:
            new = (now or {}).get(f)
            olds = [b.get(f) for b in before]
            if all(old != new for old in olds):
                out.append((claim, f, olds[0], new))
    return out


def _trailer_events(commits: Sequence[Commit]) -> list[tuple[str, str, FieldChange]]:
    events = []
    for c in commits:
        for g in c.changes:
            claim, field = g.get("Feedback-Claim"), g.get("Feedback-Field", "")
            kind = g.get("Feedback-Kind", "")
            if not claim or not field:
                continue
            tags = tuple(t.strip() for t in g.get("Feedback-Tags", "").split(",") if t.strip())
            change = FieldChange(
                commit=c.sha,
                at=c.at,
                old=parse_scalar(g.get("Feedback-From")),
                new=parse_scalar(g.get("Feedback-To", g.get("Feedback-From"))),
                kind=kind,
                source=g.get("Feedback-Source"),
                rule=g.get("Feedback-Rule"),
                tags=tags,
                run=g.get(RUN_KEY),
            )
            if kind in MARKER_KINDS:
                change = replace(change, new=change.old)
            events.append((claim, field.removeprefix("spec."), change))
    return events


def history_window(policy: Policy, claims: Sequence[Claim]) -> timedelta:
    """How far back the time-bounded guards look."""
    lim = policy.limits
    minutes = max(lim.settling_minutes, lim.cooldown_minutes, 24 * 60, lim.flap_window_days * 1440)
    for c in claims:
        cd = c.spec.get("autoTune", {})
        if isinstance(cd, Mapping) and isinstance(cd.get("cooldownMinutes"), int):
            minutes = max(minutes, cd["cooldownMinutes"])
    minutes = max([minutes] + [s.cooldown_minutes for s in policy.sources.values()])
    return timedelta(minutes=minutes)


def value_window(policy: Policy, claims: Sequence[Claim], trust_level: str = "high") -> timedelta:
    """How far back a change found by value can still shape a decision.

    Settling, and every metric window the core reads (rules, scaled for the
    source's trust; the claims' own triggers; guardrails; sizing), plus
    settling, because data from before a change's settling end is not used.
    """
    factor = TRUST_WINDOW_FACTOR.get(trust_level, 1)
    minutes = [SIZING_LOOKBACK_MINUTES, policy.limits.settling_minutes]
    minutes += [r.sustained_minutes * factor for r in policy.rules]
    minutes += [g.window_minutes for g in policy.guardrails]
    for c in claims:
        trigger = c.spec.get("autoTune", {})
        trigger = trigger.get("trigger") if isinstance(trigger, Mapping) else None
        if isinstance(trigger, Mapping) and isinstance(trigger.get("sustainedMinutes"), int):
            minutes.append(trigger["sustainedMinutes"] * factor)
    return timedelta(minutes=max(minutes) + policy.limits.settling_minutes)


def claim_files(claims: Sequence[Claim]) -> dict[str, set[str]]:
    """Every file that sets a value of a claim -> the claims it sets."""
    files: dict[str, set[str]] = defaultdict(set)
    for c in claims:
        files[c.path].add(c.name)
        for loc in c.locations.values():
            files[loc.path].add(c.name)
    return files


@dataclass(frozen=True)
class Coverage:
    """Where one claim's changes by value are complete.

    Every value change of its files at or after ``since`` is known; older
    ones are found by walking its files' history from ``resume`` (the tip the
    scan started at) filtered to the commits dated before ``since``. The walk
    follows every parent, so "where a walk stopped" is a date, not a commit.
    """

    since: datetime
    resume: str | None
    # Where its history older than ``since`` lies when a move or a rename since
    # then brought it to its files (None: its files now, under its name, from
    # ``resume``); and the names it had before such renames, with their dates.
    segments: tuple[Segment, ...] | None = None
    aliases: tuple[tuple[str, datetime], ...] = ()


@dataclass(frozen=True)
class Segment:
    """A stretch of one claim's history: in file ``path``, named ``name``, reachable from ``tip``."""

    path: str
    name: str
    tip: str


def segments_of(claim: Claim, cov: Coverage | None, tip: str) -> tuple[Segment, ...]:
    """Where to read a claim's history older than its coverage (all of it without one)."""
    if cov is not None and cov.segments is not None:
        return cov.segments
    start = cov.resume if cov is not None and cov.resume else tip
    return tuple(Segment(p, claim.name, start) for p in sorted(claim_files([claim])))


def _entries(
    walked: Sequence[tuple[Sequence[Commit], Mapping[str, Collection[str]]]], memo: ValueMemo
) -> dict[tuple[str, str], Origin]:
    """(path, name) -> the newest commit on these walks that brought that claim into that file."""
    found: dict[tuple[str, str], Origin] = {}
    for commits, files in walked:
        for c in commits:
            for path in c.paths:
                for name in files.get(path, ()):
                    o = memo.entries.get((c.sha, path, name))
                    if o is not None and ((path, name) not in found or found[(path, name)].at < o.at):
                        found[(path, name)] = o
    return found


def _follow(
    repo: GitRepo,
    since: datetime,
    upto: Mapping[str, datetime | None],
    opened: Sequence[tuple[str, Segment]],
    fields: Sequence[str],
    memo: ValueMemo,
    marked: Mapping[str, Commit],
) -> tuple[list[tuple[str, str, FieldChange]], dict[str, tuple[list[Segment], list[tuple[str, datetime]]]]]:
    """Value changes back to ``since`` along each (claim, segment), following moves and renames.

    Returns the events (under the claim's name now) and, per claim, the
    segments where its older history lies and the names it had before.
    """
    events: list[tuple[str, str, FieldChange]] = []
    out: dict[str, tuple[list[Segment], list[tuple[str, datetime]]]] = {}
    todo = list(opened)
    seen: set[tuple[str, Segment]] = set()
    while todo:
        claim, seg = todo.pop(0)
        if (claim, seg) in seen:
            continue
        seen.add((claim, seg))
        leaves, aliases = out.setdefault(claim, ([], []))
        commits = read_raw_log(repo, seg.tip, since=since, until=_before(upto.get(claim)), paths=[seg.path])
        ordered = [_with_trailers(c, marked) for c in reversed(commits)]
        files = {seg.path: {seg.name}}
        events += [(claim, f, ch) for _, f, ch in _value_events(repo, ordered, files, fields, memo)]
        entry = _entries([(ordered, files)], memo).get((seg.path, seg.name))
        if entry is None:
            leaves.append(seg)
            continue
        if entry.name != seg.name:
            aliases.append((entry.name, entry.at))
        todo.append((claim, Segment(entry.path, entry.name, entry.tip)))
    return events, out


def aliased(
    events: Sequence[tuple[str, str, FieldChange]], aliases: Mapping[str, Sequence[tuple[str, datetime]]]
) -> list[tuple[str, str, FieldChange]]:
    """The events of names a claim had before a rename, under its name now (older than the rename)."""
    out = []
    for claim, former in aliases.items():
        for name, at in former:
            out += [(claim, f, ch) for n, f, ch in events if n == name and ch.at < at]
    return out


def _renamed_frozen(
    repo: GitRepo,
    tip: str,
    events: Sequence[tuple[str, str, FieldChange]],
    known: Collection[str],
    now: datetime,
    policy: Policy,
    memo: ValueMemo,
) -> list[tuple[str, str, datetime]]:
    """(former name, the name it has now, when renamed) for renamed claims whose fields are frozen.

    The value scan meets only renames inside its window, and a flap freeze
    never expires; so a name that is no claim now and whose trailers freeze
    a field is followed forward from its newest trailer to what it became.
    """
    per = _group([e for e in events if e[0] not in known])
    out = []
    for name, changes in sorted(per.items()):
        if not any(flap.assess(chs, now, policy.limits).flapping for chs in changes.values()):
            continue
        newest = max((ch for chs in changes.values() for ch in chs), key=lambda ch: ch.at)
        found = _successor(repo, tip, name, newest.commit, memo)
        if found is not None:
            out.append((name, *found))
    return out


def _successor(repo: GitRepo, tip: str, name: str, sha: str, memo: ValueMemo) -> tuple[str, datetime] | None:
    """What claim ``name`` as of commit ``sha`` is called at ``tip``, and when it was first renamed."""
    found = read_commits(repo, sha, max_count=1)
    if not found:
        return None
    c = found[0]
    memo.load(repo, [new for _, new in c.blobs.values() if new], list(c.blobs))
    path = next((p for p, (_, new) in sorted(c.blobs.items()) if name in memo.values(p, new)), None)
    current, renamed, since = name, None, c.at
    seen: set[str] = set()
    while path is not None:
        left = None
        for d in reversed(read_raw_log(repo, tip, since=since, paths=[path])):  # oldest first
            old, new = d.blobs.get(path, (None, None))
            memo.load(repo, [b for b in (old, new) if b], [path])
            gone = current in memo.values(path, old) and current not in memo.values(path, new)
            if gone and d.sha not in seen:
                left = d
                break
        if left is None or left.parent is None:
            break
        seen.add(left.sha)
        went = memo.origins.successor(repo, left.parent, left.sha, current)
        if went is None:
            return None  # deleted
        path, now_called = went
        if now_called != current:
            renamed = renamed or left.at
            current = now_called
        since = left.at
    return (current, renamed) if renamed is not None and current != name and path is not None else None


@dataclass(frozen=True)
class Histories:
    fields: dict[str, dict[str, FieldHistory]]  # claim -> field -> history
    fleet: FleetHistory
    coverage: Mapping[str, Coverage] = field(default_factory=dict)  # missing: nothing by value
    window_since: datetime | None = None  # trailers are known from here on
    memo: ValueMemo | None = field(default=None, compare=False, repr=False)

    def for_claim(self, claim: str) -> dict[str, FieldHistory]:
        return self.fields.get(claim, {})


# Past this many files, one unfiltered pass over a time range beats one
# path-limited pass per file (git 2.39 uses Bloom filters for one path only).
PER_FILE_PASSES = 8


def _before(t: datetime | None) -> datetime | None:
    """The newest date not yet covered by a scan down to ``t`` (git compares whole seconds)."""
    return None if t is None else datetime.fromtimestamp(int(t.timestamp()) - 1, UTC)


def _unknown(
    events: list[tuple[str, str, FieldChange]], upto: Mapping[str, datetime | None]
) -> list[tuple[str, str, FieldChange]]:
    """Drop the events of a claim already covered (at or after its ``upto``)."""
    out = []
    for e in events:
        u = _before(upto.get(e[0]))
        if u is None or e[2].at <= u:
            out.append(e)
    return out


def _scan(
    repo: GitRepo,
    tip: str,
    since: datetime,
    claims: Sequence[Claim],
    fields: Sequence[str],
    memo: ValueMemo,
    marked: Mapping[str, Commit],
    known: Mapping[str, Coverage] | None = None,
) -> tuple[list[tuple[str, str, FieldChange]], dict[str, Coverage]]:
    """Value changes of ``claims`` back to ``since``, and their coverage afterwards.

    ``known`` is each claim's current coverage: only older commits are read
    for it. Many files take one unfiltered pass; otherwise each file takes a
    path-limited one.
    """
    upto = {c.name: (known[c.name].since if known and c.name in known else None) for c in claims}
    # A claim whose older history lies elsewhere (moved, renamed) is read there.
    moved = {n: cov for n, cov in (known or {}).items() if n in upto and cov.segments is not None}
    files = claim_files([c for c in claims if c.name not in moved])
    coverage = {c.name: Coverage(since, tip) for c in claims}
    walked: list[tuple[Sequence[Commit], Mapping[str, Collection[str]]]] = []
    events: list[tuple[str, str, FieldChange]] = []
    if len(files) > PER_FILE_PASSES:
        until = _newest_date(upto[n] for names in files.values() for n in names)
        commits = read_raw_log(repo, tip, since=since, until=_before(until), only=files)
        ordered = [_with_trailers(c, marked) for c in reversed(commits) if c.paths]
        events += _value_events(repo, ordered, files, fields, memo)
        walked.append((ordered, files))
    else:
        for path, names in sorted(files.items()):
            until = _newest_date(upto[n] for n in names)
            commits = read_raw_log(repo, tip, since=since, until=_before(until), paths=[path])
            ordered = [_with_trailers(c, marked) for c in reversed(commits)]
            events += _value_events(repo, ordered, {path: names}, fields, memo)
            walked.append((ordered, {path: names}))
    entered = _entries(walked, memo)
    opened = [(name, seg) for name, cov in moved.items() for seg in cov.segments or ()]
    walked_here: dict[str, list[Segment]] = {}  # files read above that the claim did not enter
    renamed: dict[str, list[tuple[str, datetime]]] = {}
    for c in claims:
        paths = sorted(claim_files([c]))
        if c.name in moved or not any((p, c.name) in entered for p in paths):
            continue
        for p in paths:
            o = entered.get((p, c.name))
            if o is None:
                walked_here.setdefault(c.name, []).append(Segment(p, c.name, tip))
                continue
            opened.append((c.name, Segment(o.path, o.name, o.tip)))
            if o.name != c.name:
                renamed.setdefault(c.name, []).append((o.name, o.at))
    for name, cov in moved.items():
        coverage[name] = Coverage(since, tip, (), cov.aliases)  # nothing older, unless followed below
    if opened:
        more, found = _follow(repo, since, upto, opened, fields, memo, marked)
        events += more
        for name, (leaves, aliases) in found.items():
            old = moved[name].aliases if name in moved else ()
            segments = (*walked_here.get(name, ()), *leaves)
            coverage[name] = Coverage(since, tip, segments, (*old, *renamed.get(name, ()), *aliases))
    return _unknown(events, upto), coverage


def _newest_date(dates: Iterable[datetime | None]) -> datetime | None:
    """Of several coverage bounds, the newest (None if any is None: read from the tip)."""
    bounds = list(dates)
    return None if not bounds or any(d is None for d in bounds) else max(d for d in bounds if d is not None)


def _rests_on_unknown(changes: Sequence[FieldChange], now: datetime, since: datetime, policy: Policy) -> bool:
    """A flap freeze that counts changes older than ``since``, where a human edit may hide.

    Only changes after ``since`` are fully known; an edit without trailers
    before it would lift the freeze, or lower the count it reports.
    """
    if not flap.assess(changes, now, policy.limits).flapping:
        return False
    return _first_state(changes, now) < since


def _first_state(changes: Sequence[FieldChange], now: datetime) -> datetime:
    """The oldest change a flap freeze counts (since the last lifting act known)."""
    counted = flap.since_lift(changes, now)
    return counted[0][0] if counted else now


def _find_lifts(
    repo: GitRepo,
    suspects: Sequence[tuple[Claim, str]],
    coverage: Mapping[str, Coverage],
    since: datetime,
    fields: Sequence[str],
    memo: ValueMemo,
    marked: Mapping[str, Commit],
) -> tuple[list[tuple[str, str, FieldChange]], dict[str, Coverage]]:
    """Human edits that may lift the flap freezes of ``suspects``.

    Only the newest one before the value window matters (a lift resets every
    reversal before it). With Bloom filters a short walk per file finds it;
    without them, one unfiltered pass over the rest of the flap window is
    cheaper than many path-limited walks.
    """
    claims = list({c.name: c for c, _ in suspects}.values())
    if not claims:
        return [], {}
    if len(claim_files(claims)) > PER_FILE_PASSES and not has_bloom_filters(repo):
        tip = coverage[claims[0].name].resume or ""
        return _scan(repo, tip, since, claims, fields, memo, marked, coverage)
    ahead = []
    for c, _ in suspects:
        cov = coverage[c.name]
        for path in claim_files([c]) if cov.resume is not None else ():
            ahead += _read_ahead(repo, cov.resume or "", path, LIFT_BATCHES[0], since, _before(cov.since))
    memo.load(repo, ahead, [])
    events: list[tuple[str, str, FieldChange]] = []
    for c, f in suspects:
        cov = coverage[c.name]
        if cov.resume is None:
            continue
        for seg in segments_of(c, cov, cov.resume):
            found = _newest_edit(repo, seg, cov, since, f, memo, marked)
            if found is not None:
                events.append((c.name, f, found))
    return events, {}


LIFT_BATCHES = (2, 16, 128)


def _batch(sizes: Sequence[int], n: int) -> int:
    """The n-th batch of a walk back: the listed sizes, then doubling (a walk costs O(commits))."""
    return sizes[n] if n < len(sizes) else sizes[-1] * 2 ** (n - len(sizes) + 1)


def _newest_edit(
    repo: GitRepo,
    seg: Segment,
    cov: Coverage,
    since: datetime,
    field_name: str,
    memo: ValueMemo,
    marked: Mapping[str, Commit],
) -> FieldChange | None:
    """The newest change of one field without trailers for it, older than ``cov`` and back to ``since``.

    Read along ``seg``; where a commit brought the claim into the file (a
    move, a rename) the walk goes on where it came from.
    """
    offset, batch = 0, 0
    while True:
        size = _batch(LIFT_BATCHES, batch)
        batch += 1
        commits = read_raw_log(
            repo,
            seg.tip,
            since=since,
            until=_before(cov.since),
            paths=[seg.path],
            max_count=size,
            skip=offset,
        )
        ordered = [_with_trailers(c, marked) for c in commits]  # newest first
        files = {seg.path: {seg.name}}
        events = _value_events(repo, ordered, files, [field_name], memo)
        if events:
            return max(events, key=lambda e: e[2].at)[2]
        entry = _entries([(ordered, files)], memo).get((seg.path, seg.name))
        if entry is not None:
            seg = Segment(entry.path, entry.name, entry.tip)
            return _newest_edit(repo, seg, cov, since, field_name, memo, marked)
        if len(commits) < size:
            return None
        offset += size


READ_AHEAD = 160  # about the commits of a walk back's first three batches


def _read_ahead(
    repo: GitRepo, tip: str, path: str, first: int, since: datetime | None, until: datetime | None
) -> list[str]:
    """The blobs a walk back over ``path`` from ``tip`` will likely read, to read them all at once.

    What is remembered of the walk (authority/logcache.py), else its first
    batch (``first`` commits between the dates): one ``cat-file`` instead of
    one per batch and file.
    """
    commits = logcache.known(repo, tip, path, READ_AHEAD) or read_log(
        repo, tip, since=since, until=until, paths=[path], max_count=first
    )
    return [b for c in commits for b in _blobs_of(c, path) if b is not None]


def has_bloom_filters(repo: GitRepo) -> bool:
    """Whether the repo's commit-graph carries changed-path Bloom filters (git uses them for one path)."""
    info = Path(
        repo.git("rev-parse", "--path-format=absolute", "--git-path", "objects/info").decode().strip()
    )
    chain = info / "commit-graphs" / "commit-graph-chain"
    try:
        if chain.exists():
            layers = [info / "commit-graphs" / f"graph-{h}.graph" for h in chain.read_text().split()]
        else:
            layers = [info / "commit-graph"]
        return bool(layers) and all(_graph_has_bloom(layer) for layer in layers)
    except OSError:
        return False


def _graph_has_bloom(graph: Path) -> bool:
    with graph.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8 or head[:4] != b"CGPH":
            return False
        table = fh.read(12 * (head[6] + 1))
    ids = {table[i : i + 4] for i in range(0, len(table), 12)}
    return b"BIDX" in ids and b"BDAT" in ids


def load_histories(
    repo: GitRepo,
    commit: str,
    claims: Sequence[Claim],
    policy: Policy,
    now: datetime,
    *,
    reader: ValueReader | None = None,
    value_claims: Collection[str] | None = None,
    value_span: timedelta | None = None,
) -> Histories:
    """Windowed histories of every tuned field of every claim.

    Trailers are read over the whole window. Changes by value are read for
    ``value_claims`` (None: every claim) over ``value_span`` (None: the whole
    window), and over the whole window for a field whose flap freeze rests on
    older changes. See the module docstring for why that is enough.
    """
    since = now - history_window(policy, claims)
    value_since = max(since, now - value_span) if value_span is not None else since
    marked = {c.sha: c for c in read_trailer_log(repo, commit, since=since)}
    valued = [c for c in claims if value_claims is None or c.name in value_claims]
    fields = policy.tuned_fields
    memo = ValueMemo(reader or reader_for(claims), claims)
    events = _trailer_events(list(marked.values()))
    # A flap freeze never expires, so trailers older than the window still count for it.
    older = _trailer_events(read_trailer_log(repo, commit, until=_before(since)))
    older = [e for e in older if e[1] in fields]
    scanned, coverage = _scan(repo, commit, value_since, valued, fields, memo, marked)
    # A renamed claim's trailers are still under its former name.
    names = {c.name for c in claims}
    aliases = {n: list(cov.aliases) for n, cov in coverage.items() if cov.aliases}
    owner = {former: n for n, listed in aliases.items() for former, _ in listed}
    trailers = [*events, *older]
    for former, called, at in _renamed_frozen(repo, commit, trailers, {*names, *owner}, now, policy, memo):
        claim = called if called in names else owner.get(called)
        if claim is not None:
            aliases.setdefault(claim, []).append((former, at))
    copies = aliased(trailers, aliases)  # kept apart: the fleet's rate limits count each change once
    events += [e for e in older if e[0] in names]
    events += scanned
    per = _group([*events, *copies])
    suspects = [
        (c, f) for c in valued for f in fields if _rests_on_unknown(per[c.name][f], now, value_since, policy)
    ]
    if suspects:
        reach = min(_first_state(per[c.name][f], now) for c, f in suspects)
        more, extended = _find_lifts(repo, suspects, coverage, min(since, reach), fields, memo, marked)
        events += more
        coverage.update(extended)
    per = _group([*events, *copies])
    recent = tuple(
        (claim, ch)
        for claim, _, ch in sorted(events, key=lambda e: e[2].at)
        if ch.automated and ch.at >= since
    )
    out: dict[str, dict[str, FieldHistory]] = {}
    for c in claims:
        out[c.name] = {}
        cov = coverage.get(c.name)
        for f in fields:
            changes = tuple(per.get(c.name, {}).get(f, ()))
            out[c.name][f] = FieldHistory(c.name, f, changes, baseline=_known_baseline(changes, cov))
    memo.save()
    return Histories(out, FleetHistory(recent), coverage, since, memo)


def _known_baseline(changes: Sequence[FieldChange], cov: Coverage | None) -> Scalar:
    """The newest human-set value, where every change since it is known."""
    if cov is None:
        return None
    humans = [ch for ch in changes if ch.kind in HUMAN_KINDS and ch.old != ch.new and ch.at >= cov.since]
    return humans[-1].new if humans else None


def _group(events: Sequence[tuple[str, str, FieldChange]]) -> dict[str, dict[str, list[FieldChange]]]:
    per: dict[str, dict[str, list[FieldChange]]] = defaultdict(lambda: defaultdict(list))
    for claim, name, change in sorted(events, key=lambda e: e[2].at):
        per[claim][name].append(change)
    return per


def _with_trailers(c: Commit, marked: Mapping[str, Commit]) -> Commit:
    found = marked.get(c.sha)
    return replace(c, changes=found.changes) if found is not None else c


def annotated_baseline(claim: Claim, field: str) -> Scalar:
    """An explicit baseline: annotation ``feedbackctl.io/baseline.<field>``."""
    raw = claim.annotations.get(f"feedbackctl.io/baseline.{field}")
    return parse_scalar(raw) if raw is not None else None


def fill_baselines(
    repo: GitRepo,
    commit: str,
    claims: Sequence[Claim],
    histories: Histories,
    *,
    reader: ValueReader | None = None,
    wanted: Collection[tuple[str, str]] | None = None,
) -> Histories:
    """Find the human-set value of each claim field that has no baseline yet.

    ``wanted`` limits the work to those (claim, field) pairs. Where a claim's
    changes by value are known only over the value window, one pass first
    widens that to the trailer window; fields still without a human change
    are then traced per file, walking back in growing batches that stop at
    the first human act (an edit without trailers for the field, or a
    human-kind trailer); automated changes on the way are skipped.
    """
    fields = {name: dict(per) for name, per in histories.fields.items()}
    memo = histories.memo or ValueMemo(reader or reader_for(claims), claims)
    coverage = dict(histories.coverage)
    todo: list[tuple[Claim, str]] = []
    for c in claims:
        for f, h in fields.get(c.name, {}).items():
            if h.baseline is not None or (wanted is not None and (c.name, f) not in wanted):
                continue
            explicit = annotated_baseline(c, f)
            if explicit is not None:
                fields[c.name][f] = replace(h, baseline=explicit)
            elif c.value(f) is not None:
                todo.append((c, f))
    window = histories.window_since
    narrow = [
        c
        for c in {c.name: c for c, _ in todo}.values()
        if window is not None and c.name in coverage and coverage[c.name].since > window
    ]
    if window is not None and len(claim_files(narrow)) > PER_FILE_PASSES and not has_bloom_filters(repo):
        more, extended = _scan(repo, commit, window, narrow, sorted({f for _, f in todo}), memo, {}, coverage)
        coverage.update(extended)
        for claim, f, change in more:
            h = fields[claim][f]
            fields[claim][f] = replace(h, changes=tuple(sorted((*h.changes, change), key=lambda x: x.at)))
    pending: dict[tuple[str, str], Scalar] = {}
    starts: dict[str, datetime | None] = {}  # claim -> where its known changes begin (None: nothing known)
    segments: dict[str, tuple[Segment, ...]] = {}
    for c, f in todo:
        h = fields[c.name][f]
        cov = coverage.get(c.name)
        known = _known_baseline(h.changes, cov)
        if known is not None:
            fields[c.name][f] = replace(h, baseline=known)
            continue
        starts[c.name] = cov.since if cov is not None else None
        segments[c.name] = segments_of(c, cov, commit)
        pending[(c.name, f)] = c.value(f)
    found = _walk_back(repo, pending, starts, segments, memo)
    for (claim, f), value in found.items():
        fields[claim][f] = replace(fields[claim][f], baseline=value)
    memo.save()
    return replace(histories, fields=fields, coverage=coverage)


BASELINE_BATCHES = (2, 16, 128, 1024)


def _walk_back(
    repo: GitRepo,
    pending: Mapping[tuple[str, str], Scalar],
    starts: Mapping[str, datetime | None],
    segments: Mapping[str, Sequence[Segment]],
    memo: ValueMemo,
) -> dict[tuple[str, str], Scalar]:
    """Per file, walk its commits older than its start back to each field's last human act.

    A claim set by several files (a Kustomize base and overlay) takes the
    newest act found in any of them; a field no file ever changed keeps its
    value (the first commit, a human's, wrote it). Where a commit brought the
    claim into the file (a move, a rename) the walk goes on where it came from.
    """
    acts: dict[tuple[str, str], tuple[datetime, Scalar]] = {}
    walks: dict[tuple[str, str], dict[tuple[str, str], tuple[str, str]]] = defaultdict(dict)
    begin: dict[tuple[str, str], datetime | None] = {}  # (path, tip) -> its start (the newest of its claims')

    def add(seg: Segment, key: tuple[str, str]) -> None:
        w = (seg.path, seg.tip)
        walks[w][(seg.name, key[1])] = key  # (name in the file, field) -> (claim, field)
        start = starts[key[0]]
        begin[w] = _newest_date([begin[w], start]) if w in begin else start

    for key in pending:
        for seg in segments[key[0]]:
            add(seg, key)
    ahead = []
    for (path, tip), start in sorted(begin.items()):
        ahead += _read_ahead(repo, tip, path, BASELINE_BATCHES[0], None, _before(start))
    memo.load(repo, ahead, [])
    done: set[tuple[str, str]] = set()
    while walks:
        path, tip = w = min(walks)
        back, start = walks.pop(w), begin.pop(w)
        done.add(w)
        todo = set(back)
        offset, batch = 0, 0
        while todo:
            size = _batch(BASELINE_BATCHES, batch)
            batch += 1
            commits = read_log(repo, tip, until=_before(start), paths=[path], max_count=size, skip=offset)
            # One blob read per batch, not one per commit.
            memo.load(repo, [b for c in commits for b in _blobs_of(c, path) if b is not None], [path])
            for c in commits:  # newest first
                for k, value in _settle(repo, c, path, todo, memo).items():
                    key = back[k]
                    if key not in acts or acts[key][0] < c.at:
                        acts[key] = (c.at, value)
                for k in sorted(todo):
                    o = memo.entries.get((c.sha, path, k[0]))
                    if o is not None:
                        todo.discard(k)
                        if (o.path, o.tip) not in done:
                            add(Segment(o.path, o.name, o.tip), back[k])
                if not todo:
                    break
            if len(commits) < size:
                break
            offset += size
    return {key: acts[key][1] if key in acts else value for key, value in pending.items()}


def _settle(
    repo: GitRepo, c: Commit, path: str, todo: set[tuple[str, str]], memo: ValueMemo
) -> dict[tuple[str, str], Scalar]:
    """The fields this commit set by a human act (taken off ``todo``); automated ones are passed over."""
    memo.load(repo, [b for b in _blobs_of(c, path) if b is not None], [path])
    own = {
        (claim, f): new
        for claim, f, _, new in _own_changes(
            c, path, {k[0] for k in todo}, sorted({k[1] for k in todo}), memo, repo
        )
    }
    found: dict[tuple[str, str], Scalar] = {}
    for claim, f in sorted(todo):
        g = c.trailer_for(claim, f)
        if g is not None:
            if g.get("Feedback-Kind") in HUMAN_KINDS:
                found[(claim, f)] = parse_scalar(g.get("Feedback-To"))
            continue
        if (claim, f) in own:
            found[(claim, f)] = own[(claim, f)]
    todo.difference_update(found)
    return found
