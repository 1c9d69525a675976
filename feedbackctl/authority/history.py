"""Field histories derived from git: git history is the tool's memory.

Cooldown, settling, rate limits and flap windows are bounded in time, so the
history a run needs is too, and it never walks history once per claim:

* one first-parent ``git log --since --grep`` pass over the longest window
  (the flap window, 30 days by default) reads every ``Feedback-*`` trailer:
  auto-tunes, drift captures, approvals, markers. Git filters the messages.
* one first-parent ``git log --since --raw`` pass finds changes made by
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

Tests check that the windowed reading decides every opted-in field exactly
as a full scan of the same history does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from feedbackctl.authority.claims import claim_name_problem, is_claim_kind, parse_claims
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.overlays import RenderedLocation, read_values, rendered_fields
from feedbackctl.authority.trailers import parse_trailers
from feedbackctl.authority.yamldoc import plain_fast_path_ok
from feedbackctl.core.decide import SIZING_LOOKBACK_MINUTES, TRUST_WINDOW_FACTOR
from feedbackctl.core.guards import reversals
from feedbackctl.core.models import (
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


@dataclass(frozen=True)
class Commit:
    sha: str
    parent: str | None
    at: datetime
    changes: tuple[dict[str, str], ...]  # trailer groups
    paths: tuple[str, ...]
    blobs: Mapping[str, tuple[str | None, str | None]] = field(default_factory=dict)  # path -> (old, new)

    def trailer_for(self, claim: str, field: str) -> dict[str, str] | None:
        for g in self.changes:
            if g.get("Feedback-Claim") == claim and g.get("Feedback-Field") in (field, f"spec.{field}"):
                return g
        return None


def read_log(
    repo: GitRepo,
    rev: str,
    *,
    since: datetime | None = None,
    paths: Sequence[str] = (),
    max_count: int | None = None,
) -> list[Commit]:
    """One first-parent pass, newest first, with trailers and touched paths."""
    args = [
        "log",
        "--first-parent",
        "--no-renames",
        "--diff-merges=first-parent",
        "--raw",
        "--no-abbrev",
        f"--format={_RS}%H{_US}%P{_US}%ct{_US}%B{_US}",
    ]
    if since is not None:
        args.append(f"--since=@{int(since.timestamp())}")
    if max_count is not None:
        args.append(f"--max-count={max_count}")
    args.append(rev)
    if paths:
        args += ["--", *paths]
    out = repo.git(*args).decode("utf-8", "replace")
    commits = []
    for record in out.split(_RS)[1:]:
        sha, parents, ct, body, raw = record.split(_US, 4)
        blobs = _raw_blobs(raw)
        commits.append(
            Commit(
                sha=sha,
                parent=parents.split()[0] if parents.strip() else None,
                at=datetime.fromtimestamp(int(ct), UTC),
                changes=tuple(parse_trailers(body)),
                paths=tuple(blobs),
                blobs=blobs,
            )
        )
    return commits


def _raw_blobs(raw: str, only: Collection[str] | None = None) -> dict[str, tuple[str | None, str | None]]:
    """``--raw`` lines (``:old new oldsha newsha S\tpath``) -> path -> (old, new) blob ids."""
    out: dict[str, tuple[str | None, str | None]] = {}
    for line in raw.splitlines():
        if not line.startswith(":"):
            continue
        meta, _, path = line.partition("\t")
        if only is not None and path not in only:
            continue
        parts = meta.split()
        old, new = parts[2], parts[3]
        out[path] = (None if set(old) == {"0"} else old, None if set(new) == {"0"} else new)
    return out


def read_trailer_log(repo: GitRepo, rev: str, *, since: datetime) -> list[Commit]:
    """First-parent commits since ``since`` that carry ``Feedback-*`` trailers, newest first.

    ``--grep`` lets git skip every other message; no diffs are computed.
    """
    args = [
        "log",
        "--first-parent",
        "--regexp-ignore-case",
        "--grep=^feedback-[a-z]*:",
        f"--since=@{int(since.timestamp())}",
        f"--format={_RS}%H{_US}%P{_US}%ct{_US}%B",
        rev,
    ]
    out = repo.git(*args).decode("utf-8", "replace")
    commits = []
    for record in out.split(_RS)[1:]:
        sha, parents, ct, body = record.split(_US, 3)
        changes = tuple(parse_trailers(body))
        if changes:
            commits.append(Commit(sha, parents.split()[0] if parents.strip() else None, _at(ct), changes, ()))
    return commits


def read_raw_log(
    repo: GitRepo,
    rev: str,
    *,
    since: datetime | None = None,
    paths: Sequence[str] = (),
    only: Collection[str] | None = None,
    max_count: int | None = None,
) -> list[Commit]:
    """First-parent commits of ``rev``, newest first, with the blobs they changed.

    ``paths`` limits the walk (git); ``only`` just keeps those paths' blobs,
    which is cheaper than a walk limited to many paths.
    """
    args = [
        "log",
        "--first-parent",
        "--no-renames",
        "--diff-merges=first-parent",
        "--root",
        "--raw",
        "--no-abbrev",
        f"--format={_RS}%H{_US}%P{_US}%ct{_US}",
    ]
    if since is not None:
        args.append(f"--since=@{int(since.timestamp())}")
    if max_count is not None:
        args.append(f"--max-count={max_count}")
    args.append(rev)
    if paths:
        args += ["--", *paths]
    out = repo.git(*args).decode("utf-8", "replace")
    commits = []
    for record in out.split(_RS)[1:]:
        sha, parents, ct, raw = record.split(_US, 3)
        blobs = _raw_blobs(raw, only)
        parent = parents.split()[0] if parents.strip() else None
        commits.append(Commit(sha, parent, _at(ct), (), tuple(blobs), blobs))
    return commits


def _at(ct: str) -> datetime:
    return datetime.fromtimestamp(int(ct), UTC)


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

    def load(self, repo: GitRepo, blobs: Sequence[str], paths: Sequence[str]) -> None:
        """Read, in one batch, the blobs not known yet (paths name them for errors)."""
        known = {blob for _, blob in self.known}
        missing = [b for b in dict.fromkeys(blobs) if b not in self.content and b not in known]
        del paths
        if missing:
            self.content.update(repo.read_blobs(missing))

    def values(self, path: str, blob: str | None) -> Mapping[str, Mapping[str, Scalar]]:
        if blob is None:
            return {}
        key = (path, blob)
        if key not in self.known:
            raw = self.content.get(blob)
            self.known[key] = self.reader(path, raw) if raw is not None else {}
        return self.known[key]


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
    memo.load(repo, [b for c, p in todo for b in c.blobs[p] if b is not None], [p for _, p in todo])
    events = []
    for c, p in todo:
        old_blob, new_blob = c.blobs[p]
        after = memo.values(p, new_blob)
        before = memo.values(p, old_blob)
        for claim in claim_paths[p]:
            for f in fields:
                old = before.get(claim, {}).get(f)
                new = after.get(claim, {}).get(f)
                if old == new or c.trailer_for(claim, f) is not None:
                    continue
                events.append((claim, f, FieldChange(c.sha, c.at, old, new, "human")))
    return events


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

    Every value change of its files after ``since`` is known; older ones are
    found by walking its files' history back from ``resume`` (None: the
    history ends there, the claim's first commit is known).
    """

    since: datetime
    resume: str | None


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


def _boundary(commits_newest_first: Sequence[Commit], start: str | None) -> str | None:
    """Where a first-parent walk that returned these commits continues."""
    if not commits_newest_first:
        return start
    return commits_newest_first[-1].parent


def _scan(
    repo: GitRepo,
    start: Mapping[str, str | None] | str,
    since: datetime,
    claims: Sequence[Claim],
    fields: Sequence[str],
    memo: ValueMemo,
    marked: Mapping[str, Commit],
) -> tuple[list[tuple[str, str, FieldChange]], dict[str, Coverage]]:
    """Value changes of ``claims`` back to ``since``, and their coverage afterwards.

    ``start`` is where each claim's walk begins (a commit, or claim -> the
    ``resume`` of its current coverage). Many files sharing one start take one
    unfiltered pass; otherwise each file takes a path-limited one.
    """
    files = claim_files(claims)
    begin = {c.name: start if isinstance(start, str) else start.get(c.name) for c in claims}
    events: list[tuple[str, str, FieldChange]] = []
    coverage: dict[str, Coverage] = {}
    shared = set(begin.values())
    if len(files) > PER_FILE_PASSES and len(shared) == 1:
        first = shared.pop()
        commits = read_raw_log(repo, first, since=since, only=files) if first is not None else []
        ordered = [_with_trailers(c, marked) for c in reversed(commits) if c.paths]
        events = _value_events(repo, ordered, files, fields, memo)
        resume = _boundary(commits, first)
        return events, {c.name: Coverage(since, resume) for c in claims}
    for path, names in sorted(files.items()):
        path_start = _newest(repo, [begin[n] for n in names])
        commits = read_raw_log(repo, path_start, since=since, paths=[path]) if path_start else []
        ordered = [_with_trailers(c, marked) for c in reversed(commits)]
        events += _value_events(repo, ordered, {path: names}, fields, memo)
        resume = _boundary(commits, path_start)
        for name in names:
            # A claim spread over several files resumes at the newest of their ends.
            prev = coverage.get(name)
            coverage[name] = Coverage(since, _newest(repo, [prev.resume, resume]) if prev else resume)
    return events, coverage


def _rests_on_unknown(changes: Sequence[FieldChange], now: datetime, since: datetime, policy: Policy) -> bool:
    """A flap freeze that counts changes older than ``since``, where a human edit may hide.

    Only changes after ``since`` are fully known; an edit without trailers
    before it would lift the freeze, or lower the count it reports.
    """
    lim = policy.limits
    counted = reversals(changes, now, lim.flap_window_days)
    if counted < lim.flap_reversals:
        return False
    return counted != reversals([c for c in changes if c.at >= since], now, lim.flap_window_days)


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
        return _scan(
            repo, {c.name: coverage[c.name].resume for c in claims}, since, claims, fields, memo, marked
        )
    events: list[tuple[str, str, FieldChange]] = []
    for c, f in suspects:
        for path in claim_files([c]):
            found = _newest_edit(repo, path, coverage[c.name].resume, since, c.name, f, memo, marked)
            if found is not None:
                events.append((c.name, f, found))
    return events, {}


LIFT_BATCHES = (2, 16, 128)


def _newest_edit(
    repo: GitRepo,
    path: str,
    start: str | None,
    since: datetime,
    claim: str,
    field_name: str,
    memo: ValueMemo,
    marked: Mapping[str, Commit],
) -> FieldChange | None:
    """The newest change of one field without trailers for it, from ``start`` back to ``since``."""
    rev, batch = start, 0
    while rev is not None:
        size = LIFT_BATCHES[min(batch, len(LIFT_BATCHES) - 1)]
        batch += 1
        commits = read_raw_log(repo, rev, since=since, paths=[path], max_count=size)
        ordered = [_with_trailers(c, marked) for c in commits]  # newest first
        events = _value_events(repo, ordered, {path: {claim}}, [field_name], memo)
        if events:
            return events[0][2]
        rev = commits[-1].parent if len(commits) == size else None
    return None


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
    scanned, coverage = _scan(repo, commit, value_since, valued, fields, memo, marked)
    events += scanned
    if value_since > since:
        per = _group(events)
        suspects = [
            (c, f)
            for c in valued
            for f in fields
            if _rests_on_unknown(per[c.name][f], now, value_since, policy)
        ]
        more, extended = _find_lifts(repo, suspects, coverage, since, fields, memo, marked)
        events += more
        coverage.update(extended)
    per = _group(events)
    recent = tuple((claim, ch) for claim, _, ch in sorted(events, key=lambda e: e[2].at) if ch.automated)
    out: dict[str, dict[str, FieldHistory]] = {}
    for c in claims:
        out[c.name] = {}
        cov = coverage.get(c.name)
        for f in fields:
            changes = tuple(per.get(c.name, {}).get(f, ()))
            out[c.name][f] = FieldHistory(c.name, f, changes, baseline=_known_baseline(changes, cov))
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
        resumes = {c.name: coverage[c.name].resume for c in narrow}
        more, extended = _scan(repo, resumes, window, narrow, sorted({f for _, f in todo}), memo, {})
        coverage.update(extended)
        for claim, f, change in more:
            h = fields[claim][f]
            fields[claim][f] = replace(h, changes=tuple(sorted((*h.changes, change), key=lambda x: x.at)))
    pending: dict[tuple[str, str], Scalar] = {}
    starts: dict[str, str | None] = {}
    for c, f in todo:
        h = fields[c.name][f]
        cov = coverage.get(c.name)
        known = _known_baseline(h.changes, cov)
        if known is not None:
            fields[c.name][f] = replace(h, baseline=known)
            continue
        start = cov.resume if cov is not None else commit
        pending[(c.name, f)] = c.value(f)
        for path in claim_files([c]):
            starts[path] = _newest(repo, [starts[path], start]) if path in starts else start
    found = _walk_back(repo, pending, starts, {c.name: c for c in claims}, memo)
    for (claim, f), value in found.items():
        fields[claim][f] = replace(fields[claim][f], baseline=value)
    return replace(histories, fields=fields, coverage=coverage)


def _newest(repo: GitRepo, points: Sequence[str | None]) -> str | None:
    """Of starting points on one first-parent line, the one nearest the tip.

    Walking back from there covers all of them: between it and an older
    point the changes are known already, and the walk just meets them again.
    None (the history has ended) yields to any commit.
    """
    best: str | None = None
    for p in points:
        if p is None or p == best:
            continue
        if best is None or repo.is_ancestor(best, p):
            best = p
    return best


BASELINE_BATCHES = (2, 16, 128, 1024)


def _walk_back(
    repo: GitRepo,
    pending: Mapping[tuple[str, str], Scalar],
    starts: Mapping[str, str | None],
    claims: Mapping[str, Claim],
    memo: ValueMemo,
) -> dict[tuple[str, str], Scalar]:
    """Per file, walk its commits back from its start to each field's last human act.

    A claim set by several files (a Kustomize base and overlay) takes the
    newest act found in any of them; a field no file ever changed keeps its
    value (the first commit, a human's, wrote it).
    """
    acts: dict[tuple[str, str], tuple[datetime, Scalar]] = {}
    files = claim_files([claims[name] for name, _ in pending])
    for path, start in sorted(starts.items()):
        todo = {key for key in pending if key[0] in files[path]}
        rev, batch = start, 0
        while todo and rev is not None:
            size = BASELINE_BATCHES[min(batch, len(BASELINE_BATCHES) - 1)]
            batch += 1
            commits = read_log(repo, rev, paths=[path], max_count=size)
            for c in commits:  # newest first
                for key, value in _settle(repo, c, path, todo, memo).items():
                    if key not in acts or acts[key][0] < c.at:
                        acts[key] = (c.at, value)
                if not todo:
                    break
            rev = commits[-1].parent if len(commits) == size else None
    return {key: acts[key][1] if key in acts else value for key, value in pending.items()}


def _settle(
    repo: GitRepo, c: Commit, path: str, todo: set[tuple[str, str]], memo: ValueMemo
) -> dict[tuple[str, str], Scalar]:
    """The fields this commit set by a human act (taken off ``todo``); automated ones are passed over."""
    old_blob, new_blob = c.blobs.get(path, (None, None))
    memo.load(repo, [b for b in (old_blob, new_blob) if b is not None], [path])
    before, after = memo.values(path, old_blob), memo.values(path, new_blob)
    found: dict[tuple[str, str], Scalar] = {}
    for claim, f in sorted(todo):
        g = c.trailer_for(claim, f)
        if g is not None:
            if g.get("Feedback-Kind") in HUMAN_KINDS:
                found[(claim, f)] = parse_scalar(g.get("Feedback-To"))
            continue
        old, new = before.get(claim, {}).get(f), after.get(claim, {}).get(f)
        if old != new:
            found[(claim, f)] = new
    todo.difference_update(found)
    return found
