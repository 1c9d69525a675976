"""Field histories derived from git: git history is the tool's memory.

Cooldown, settling, rate limits and flap windows are bounded in time, so one
first-parent ``git log --since`` pass over the authority branch serves every
claim. Changes made by feedbackctl are read from their ``Feedback-*``
trailers; changes made by anyone else are found by value (the claim file at
the commit against its parent), so a human edit or a merge also starts the
settling window. Baselines (the value last set by a human) can lie before the
window; they are looked up only for the claims that need one, in one
path-limited pass.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from feedbackctl.authority.claims import parse_claims
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.trailers import parse_trailers
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

# Reads {claim: {field: value}} out of one file's text (plain claims by default;
# Kustomize overlays plug in their own reader).
ValueReader = Callable[[str, bytes], Mapping[str, Mapping[str, Scalar]]]

_RS, _US = "\x1e", "\x1f"


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
    """Scalar spec values of every claim in a plain claim file."""
    parsed = parse_claims([(path, "", content)])
    return {c.name: _scalars(c.spec) for c in parsed.claims}


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
    repo: GitRepo, rev: str, *, since: datetime | None = None, paths: Sequence[str] = ()
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


def _raw_blobs(raw: str) -> dict[str, tuple[str | None, str | None]]:
    """``--raw`` lines (``:old new oldsha newsha S\tpath``) -> path -> (old, new) blob ids."""
    out: dict[str, tuple[str | None, str | None]] = {}
    for line in raw.splitlines():
        if not line.startswith(":"):
            continue
        meta, _, path = line.partition("\t")
        parts = meta.split()
        old, new = parts[2], parts[3]
        out[path] = (None if set(old) == {"0"} else old, None if set(new) == {"0"} else new)
    return out


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
            if c.blob and c.path and all(loc.path == c.path for loc in c.locations.values()):
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


def claim_files(claims: Sequence[Claim]) -> dict[str, set[str]]:
    """Every file that sets a value of a claim -> the claims it sets."""
    files: dict[str, set[str]] = defaultdict(set)
    for c in claims:
        files[c.path].add(c.name)
        for loc in c.locations.values():
            files[loc.path].add(c.name)
    return files


@dataclass(frozen=True)
class Histories:
    fields: dict[str, dict[str, FieldHistory]]  # claim -> field -> history
    fleet: FleetHistory

    def for_claim(self, claim: str) -> dict[str, FieldHistory]:
        return self.fields.get(claim, {})


def load_histories(
    repo: GitRepo,
    commit: str,
    claims: Sequence[Claim],
    policy: Policy,
    now: datetime,
    *,
    reader: ValueReader = claim_values,
) -> Histories:
    """Windowed histories of every tuned field of every claim (one log pass)."""
    since = now - history_window(policy, claims)
    commits = list(reversed(read_log(repo, commit, since=since)))  # oldest first
    fields = policy.tuned_fields
    memo = ValueMemo(reader, claims)
    events = _trailer_events(commits) + _value_events(repo, commits, claim_files(claims), fields, memo)
    events.sort(key=lambda e: e[2].at)
    per: dict[str, dict[str, list[FieldChange]]] = defaultdict(lambda: defaultdict(list))
    for claim, name, change in events:
        per[claim][name].append(change)
    recent = tuple((claim, ch) for claim, _, ch in events if ch.automated)
    out: dict[str, dict[str, FieldHistory]] = {}
    for c in claims:
        out[c.name] = {}
        for f in fields:
            changes = tuple(per.get(c.name, {}).get(f, ()))
            humans = [ch for ch in changes if ch.kind in HUMAN_KINDS and ch.old != ch.new]
            baseline = humans[-1].new if humans else None
            out[c.name][f] = FieldHistory(c.name, f, changes, baseline=baseline)
    return Histories(out, FleetHistory(recent))


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
    reader: ValueReader = claim_values,
    wanted: Collection[tuple[str, str]] | None = None,
) -> Histories:
    """Find the human-set value of each claim field that has no baseline yet.

    Walks newest to oldest, in one path-limited log over the files of just
    these claims, skipping changes that trailers mark as automated.
    """
    need: list[tuple[Claim, str]] = []
    fields = dict(histories.fields)
    for c in claims:
        for f, h in fields.get(c.name, {}).items():
            if h.baseline is not None or (wanted is not None and (c.name, f) not in wanted):
                continue
            explicit = annotated_baseline(c, f)
            if explicit is not None:
                fields[c.name] = {**fields[c.name], f: replace(h, baseline=explicit)}
            elif c.value(f) is not None:
                need.append((c, f))
    if not need:
        return Histories(fields, histories.fleet)
    files = claim_files([c for c, _ in need])
    memo = ValueMemo(reader, [c for c, _ in need])
    commits = read_log(repo, commit, paths=sorted(files))
    found: dict[tuple[str, str], Scalar] = {}
    pending = {(c.name, f) for c, f in need}
    # Read candidate versions in chunks so that the common case (the newest
    # human commit is near the top) reads little.
    chunk = 32
    for start in range(0, len(commits), chunk):
        if not pending:
            break
        part = commits[start : start + chunk]
        for claim, f, change in sorted(
            _value_events(repo, part, files, sorted({f for _, f in pending}), memo),
            key=lambda e: e[2].at,
            reverse=True,
        ):
            if (claim, f) in pending:
                found[(claim, f)] = change.new
                pending.discard((claim, f))
        for commit_ in part:
            for g in commit_.changes:
                key = (g.get("Feedback-Claim", ""), g.get("Feedback-Field", "").removeprefix("spec."))
                if key in pending and g.get("Feedback-Kind") in HUMAN_KINDS:
                    found[key] = parse_scalar(g.get("Feedback-To"))
                    pending.discard(key)
    for (claim, f), value in found.items():
        fields[claim] = {**fields[claim], f: replace(fields[claim][f], baseline=value)}
    return Histories(fields, histories.fleet)
