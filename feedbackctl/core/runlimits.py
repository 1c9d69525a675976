"""The limits of one run, fleet-wide: the rate limit, one change per claim, proposal limits.

The per-claim guards (``core/guards.py``) judge one field; these judge what a
whole run may do (docs/autotune.md, "Rate limits" and sharding). ``core/fleet.py``
runs them in order for autotune and simulate, ``core/decide.py`` and
``core/promotion.py`` run one change per claim, propose runs ``proposal_limit``,
and ``audit verify`` replays ``rate_room`` and ``one_change_per_claim`` at every
commit (``core/runreplay.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from feedbackctl.core.models import Decision, FleetHistory, Outcome
from feedbackctl.core.policy import Limits, Source
from feedbackctl.core.rules import RuleId


@dataclass(frozen=True)
class Budget:
    """What the fleet's rate limit leaves one run, from the trailers of the last 24 h."""

    left: int
    detail: str  # the rate-limit guard's note when it blocks


def rate_room(limits: Limits, made: int, recent: int) -> tuple[int, int]:
    """The rate limit: how many more automated changes perRun and per24h allow (below 1: none).

    ``made`` is what this run (the whole cron slot) has made already, ``recent``
    every automated change in the 24 h window; both are counted from git by
    the caller (autotune before a run, audit at each replayed commit).
    """
    return limits.rate_per_run - made, limits.rate_per_24h - recent


def fleet_budget(fleet: FleetHistory, now: datetime, limits: Limits, slot: RunSlot | None = None) -> Budget:
    """perRun (a shard: its share, less what its run id already made) and per24h, from the trailers."""
    slot = slot or RunSlot()
    since = now - timedelta(hours=24)
    recent = sum(1 for _, c in fleet.recent if c.automated and c.at >= since)
    share = shard_share(limits.rate_per_run, slot.index, slot.count)
    made = sum(1 for _, c in fleet.recent if c.automated and slot.run is not None and c.run == slot.run)
    per_run = f"{limits.rate_per_run} per run"
    if slot.count > 1:
        per_run += f" ({share} for shard {slot.index}/{slot.count})"
    if made:
        per_run += f", {made} made by run {slot.run} already"
    return Budget(
        max(0, min(share, *rate_room(limits, made, recent))),
        f"{recent} auto-tunes in the last 24h (max {limits.rate_per_24h}), {per_run}",
    )


def one_change_per_claim(decisions: Sequence[Decision], source: Source) -> list[Decision]:
    """The source cooldown inside one run: one change per claim, the first tuned field first.

    Two fields of a claim changed by one evaluation would both be judged on
    metrics that the other change is about to alter; the second waits for
    the source's cooldown like any later change would.
    """
    changed: dict[str, str] = {}
    out = []
    for d in decisions:
        if d.outcome == Outcome.CHANGE:
            first = changed.setdefault(d.claim, d.field)
            if first != d.field:
                d = d.stopped(
                    RuleId.SOURCE_COOLDOWN,
                    f"source {source.name} changes spec.{first} of this claim in this run; "
                    f"its cooldown is {source.cooldown_minutes}m",
                )
        out.append(d)
    return out


@dataclass(frozen=True)
class RunSlot:
    """Which run this is: its ``Feedback-Run`` id and, with ``--shard i/n``, its shard.

    The per-run limit is for the whole cron slot (docs/autotune.md, sharding):
    each of the slot's shards gets its share, and the changes already made
    under the same run id (an earlier shard, a retried Job) count against it.
    """

    run: str | None = None
    index: int = 0
    count: int = 1


def shard_share(total: int, index: int, count: int) -> int:
    """Shard ``index`` of ``count``'s part of a per-run limit: the parts sum to ``total``.

    ``total // count`` each, and one more for the first ``total % count``
    shards, so no shard is starved and none can take another's part.
    """
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: need 0 <= index < count")
    base, extra = divmod(max(0, total), count)
    return base + (1 if index < extra else 0)


def rate_limit(
    decisions: Sequence[Decision],
    fleet: FleetHistory,
    now: datetime,
    limits: Limits,
    slot: RunSlot = RunSlot(),
) -> list[Decision]:
    """At most perRun changes a run (a shard: its share) and per24h in any rolling 24 h (from trailers)."""
    budget = fleet_budget(fleet, now, limits, slot)
    out: list[Decision] = []
    order = sorted(range(len(decisions)), key=lambda i: (decisions[i].claim, decisions[i].field))
    granted: set[int] = set()
    for i in order:
        if decisions[i].outcome == Outcome.CHANGE and len(granted) < budget.left:
            granted.add(i)
    for i, d in enumerate(decisions):
        if d.outcome == Outcome.CHANGE and i not in granted:
            d = d.stopped(RuleId.RATE_LIMIT, budget.detail)
        out.append(d)
    return out


def proposal_limit(
    wanted: int, open_now: int, new_recent: int, max_open: int, max_new: int
) -> list[str | None]:
    """For ``wanted`` new proposals in priority order: None for one that may open, else why it waits.

    At most ``max_open`` open and ``max_new`` opened in the last hour; the
    counts so far come from the proposal branches. A held-back proposal takes
    no room, so a later one is judged against the same counts.
    """
    out: list[str | None] = []
    for _ in range(wanted):
        if open_now >= max_open:
            out.append(f"{open_now} proposals are open (max {max_open}); decide some first")
        elif new_recent >= max_new:
            out.append(
                f"{new_recent} proposals opened in the last hour (max {max_new}); the next run proposes it"
            )
        else:
            out.append(None)
            open_now += 1
            new_recent += 1
    return out
