"""Gathering the core's inputs for every claim: metrics, histories, problems.

Shared by analyze, autotune, propose and simulate so that all of them judge
a claim from the same evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from feedbackctl.authority.config import CONFIG_FILE, metrics_location
from feedbackctl.authority.history import Histories, fill_baselines, load_histories, value_window
from feedbackctl.authority.snapshot import Snapshot
from feedbackctl.core.decide import SIZING_LOOKBACK_MINUTES, ClaimInputs
from feedbackctl.core.fetchplan import needed_metrics as needed_metrics  # simulate's import
from feedbackctl.core.models import Claim
from feedbackctl.core.policy import Policy, Source
from feedbackctl.core.results import Problem as Problem  # the patterns' import
from feedbackctl.core.results import located as located  # simulate's import
from feedbackctl.core.tuning import check_sources, check_trigger, parse_autotune
from feedbackctl.errors import ClaimError, UsageError
from feedbackctl.patterns import fetching
from feedbackctl.sources.base import (
    MetricBatch,
    MetricRequest,
    MetricsCost,
    MetricSource,
    ReadsRepoPolicies,
    open_source,
)


@dataclass
class Gathered:
    inputs: list[ClaimInputs]
    problems: list[Problem]
    source: Source
    histories: Histories
    warnings: list[str] = field(default_factory=list)
    metrics_cost: MetricsCost = field(default_factory=MetricsCost)


def metric_source(snapshot: Snapshot, metrics: str | None) -> MetricSource:
    spec = metrics or metrics_location(snapshot.settings.config, snapshot.repo)
    if not spec:
        raise UsageError("no metric source: pass --metrics DIR (fixtures) or --metrics cloudwatch")
    source = open_source(spec)
    if isinstance(source, ReadsRepoPolicies):
        folder = snapshot.settings.config.policies_dir

        def read(name: str) -> tuple[str, bytes] | None:
            path = f"{folder}/{name}"
            text = snapshot.read(path)
            return (path, text) if text is not None else None

        source.use_repo_policies(read)
    return source


def _valid_claims(snapshot: Snapshot, problems: list[Problem]) -> list[Claim]:
    """Claims whose own settings (autoTune block, names) are usable."""
    ok = []
    for c in snapshot.claims:
        try:
            policy = snapshot.settings.policy
            tuning = parse_autotune(c)
            check_trigger(c.name, tuning, policy.rules, band=policy.limits.hysteresis_band, path=c.path)
            check_sources(c.name, tuning, policy.sources, registry_file(snapshot))
        except ClaimError as e:
            problems.append(Problem.of(e, c))
            continue
        ok.append(c)
    return ok


def registry_file(snapshot: Snapshot) -> str:
    return f"{snapshot.settings.config.policies_dir}/sources.yaml"


def unregistered(snapshot: Snapshot, metrics: str | None, source: Source) -> Problem | None:
    """The run's source, named by --metrics or .feedbackctl.yaml, is no registry entry: say so once."""
    if source.registered:
        return None
    spec = snapshot.settings.config.metrics_source
    named = f"--metrics {metrics}" if metrics else f"{CONFIG_FILE}: metrics: {spec}"
    return Problem(
        "",
        f"{named}: feedback source '{source.name}' is not in the registry ({registry_file(snapshot)}: "
        "feedbackSources), so no claim is changed from it; register it there with its trustLevel, "
        "or fix the name",
    )


def _naming(claim: str, problem: str) -> str:
    """One line in a cron log says which claim it is about (a fixture's path already does)."""
    if problem.startswith(f"{claim}:") or f"/{claim}/" in problem or problem.startswith(f"{claim}/"):
        return problem
    return f"{claim}: {problem}"


@dataclass
class Fleet:
    """What a run reads once for all its claims: the source, histories and claim problems.

    Series are read per batch of claims (``fetch_inputs``), so they never all sit in
    memory at once (see docs/performance.md).
    """

    claims: list[Claim]
    problems: list[Problem]
    source: MetricSource
    histories: Histories
    start: float
    policy: Policy


def prepare(
    snapshot: Snapshot,
    metrics: str | None,
    now: datetime,
    *,
    claims: list[Claim] | None = None,
    values_for: Callable[[Claim], bool] | None = None,
) -> Fleet:
    """The usable claims, their histories and the problems found so far; no series yet.

    ``values_for`` limits the search for changes by value (humans, merges) to
    the claims it accepts, over the value window only (autotune: the claims
    that opt in; the others can only be reported as not opted in).
    """
    policy = snapshot.settings.policy
    problems = [Problem.of(e) for e in snapshot.errors]
    chosen = _valid_claims(snapshot, problems) if claims is None else claims
    source = metric_source(snapshot, metrics)
    start = (now - timedelta(minutes=SIZING_LOOKBACK_MINUTES)).timestamp()
    if values_for is None:
        histories = load_histories(snapshot.repo, snapshot.commit, chosen, policy, now)
    else:
        histories = load_histories(
            snapshot.repo,
            snapshot.commit,
            chosen,
            policy,
            now,
            value_claims={c.name for c in chosen if values_for(c)},
            value_span=value_window(policy, chosen, policy.source(source.name).trust_level),
        )
    refused = unregistered(snapshot, metrics, policy.source(source.name))
    if refused is not None:
        problems.insert(0, refused)
    return Fleet(chosen, problems, source, histories, start, policy)


def requests_for(fleet: Fleet, claims: Sequence[Claim], now: datetime) -> list[MetricRequest]:
    """A full fetch of ``claims``: what their decisions can read (analyze, propose, fixtures)."""
    return fetching.full_requests(claims, fleet.policy, fleet.start, now.timestamp())


def claim_inputs(
    fleet: Fleet, claims: Sequence[Claim], batch: MetricBatch, problems: list[Problem]
) -> list[ClaimInputs]:
    """Each claim's inputs from a fetched ``batch``; its metric problems go to ``problems``."""
    inputs = []
    for c in claims:
        problems.extend(Problem(c.name, _naming(c.name, p)) for p in batch.problems.get(c.name, []))
        found = fetching.inputs_of(c, batch, fleet.histories)
        if found is not None:
            inputs.append(found)
    return inputs


def absent_warnings(batch: MetricBatch, claims: Sequence[Claim]) -> list[str]:
    return [batch.absent[c.name] for c in claims if c.name in batch.absent]


def gather(
    snapshot: Snapshot,
    metrics: str | None,
    now: datetime,
    *,
    claims: list[Claim] | None = None,
    values_for: Callable[[Claim], bool] | None = None,
) -> Gathered:
    """Metrics, histories and problems for every claim, all at once (see ``prepare``).

    analyze and autotune read a fleet in batches instead (patterns/batches.py).
    """
    fleet = prepare(snapshot, metrics, now, claims=claims, values_for=values_for)
    chosen, problems = fleet.claims, fleet.problems
    fetched = fetching.fetch(
        fleet.source, chosen, fleet.policy, fleet.histories, (fleet.start, now.timestamp()), now
    )
    batch = fetched.batch
    inputs = claim_inputs(fleet, chosen, batch, problems)
    warnings = [*batch.warnings, *absent_warnings(batch, chosen)]
    source = fleet.policy.source(fleet.source.name)
    return Gathered(inputs, problems, source, fleet.histories, warnings, fetched.cost)


def add_baselines(snapshot: Snapshot, gathered: Gathered, wanted: Collection[tuple[str, str]]) -> None:
    """Look up the baselines of the ``wanted`` (claim, field) pairs into ``gathered``.

    Baselines can lie far back in history, so callers ask only for the fields
    a decision depends on.
    """
    names = {claim for claim, _ in wanted}
    histories = fill_baselines(
        snapshot.repo,
        snapshot.commit,
        [i.claim for i in gathered.inputs if i.claim.name in names],
        gathered.histories,
        wanted=wanted,
    )
    gathered.histories = histories
    gathered.inputs = [
        replace(i, histories=histories.for_claim(i.claim.name)) if i.claim.name in names else i
        for i in gathered.inputs
    ]
