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

This module holds the windows and ``load_histories``; the parts live beside
it: ``claimvalues`` (values out of claim-file versions), ``valuechanges``
(changes out of commits: trailers, and values changed by anyone else),
``claimwalks`` (the value scan, coverage, following a claim across moves and
renames) and ``baselines`` (``fill_baselines``, walking back to a human act).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta

from feedbackctl.authority.baselines import _known_baseline
from feedbackctl.authority.baselines import annotated_baseline as annotated_baseline
from feedbackctl.authority.baselines import fill_baselines as fill_baselines
from feedbackctl.authority.claimvalues import ValueMemo as ValueMemo
from feedbackctl.authority.claimvalues import ValueReader, reader_for
from feedbackctl.authority.claimvalues import claim_values as claim_values
from feedbackctl.authority.claimvalues import parse_scalar as parse_scalar
from feedbackctl.authority.claimwalks import (
    PER_FILE_PASSES,
    Coverage,
    Segment,
    _batch,
    _before,
    _entries,
    _read_ahead,
    _renamed_frozen,
    _scan,
    aliased,
    has_bloom_filters,
    segments_of,
)
from feedbackctl.authority.claimwalks import Histories as Histories
from feedbackctl.authority.claimwalks import claim_files as claim_files
from feedbackctl.authority.commits import Commit as Commit
from feedbackctl.authority.commits import bulk
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.valuechanges import _group, _with_trailers, read_raw_log, read_trailer_log
from feedbackctl.authority.valuechanges import _trailer_events as _trailer_events
from feedbackctl.authority.valuechanges import _value_events as _value_events
from feedbackctl.authority.valuechanges import read_log as read_log
from feedbackctl.authority.valuechanges import value_events as value_events
from feedbackctl.core import flap
from feedbackctl.core.decide import SIZING_LOOKBACK_MINUTES, TRUST_WINDOW_FACTOR
from feedbackctl.core.models import (
    Claim,
    FieldChange,
    FieldHistory,
    FleetHistory,
)
from feedbackctl.core.policy import Policy

__all__ = [
    "Commit",
    "Histories",
    "ValueMemo",
    "_trailer_events",
    "_value_events",
    "annotated_baseline",
    "claim_files",
    "claim_values",
    "fill_baselines",
    "history_window",
    "load_histories",
    "parse_scalar",
    "read_log",
    "reader_for",
    "value_events",
    "value_window",
]


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


def _rests_on_unknown(changes: Sequence[FieldChange], now: datetime, since: datetime, policy: Policy) -> bool:
    """A flap freeze that counts changes older than ``since``, where a human edit may hide.

    Only changes after ``since`` are fully known; an edit without trailers
    before it would lift the freeze, or lower the count it reports.
    """
    if now >= since and all(c.at >= since for c in changes):
        return False  # nothing older to rest on (asked per claim and field of a fleet)
    if flap.flapping(changes, now, policy.limits) is None:
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


@bulk()  # builds tens of thousands of commits and changes, none in a cycle
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
    # Filtered, then sorted (a stable sort: the same order as sorting all of them first).
    automated = [(claim, ch) for claim, _, ch in events if ch.automated and ch.at >= since]
    recent = tuple(sorted(automated, key=lambda e: e[1].at))
    out: dict[str, dict[str, FieldHistory]] = {}
    for c in claims:
        mine, cov = per.get(c.name, {}), coverage.get(c.name)
        out[c.name] = fh = {}
        for f in fields:
            changes = tuple(mine.get(f, ()))
            baseline = _known_baseline(changes, cov) if changes else None
            fh[f] = FieldHistory(c.name, f, changes, baseline=baseline)
    memo.save()
    return Histories(out, FleetHistory(recent), coverage, since, memo)
