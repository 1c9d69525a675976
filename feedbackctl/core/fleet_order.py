"""The order of a run's decisions over the whole fleet, however its batches were read. Pure.

patterns/evaluation.py reads the fleet a batch of claims at a time (a staged
claim beside its validating claim); the fleet-wide rate limit (core/fleet.py)
must still see the decisions as one pass over every claim would give them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from feedbackctl.core.models import Claim, Decision


def in_fleet_order(
    parts: Sequence[tuple[list[Decision], int]], claims: Sequence[Claim], pairs: Mapping[str, str]
) -> list[Decision]:
    """The batches' decisions in the order one pass over the whole fleet gives them.

    Every claim's own decisions in claim order, then the promotions, each where
    the later stage that asked for it stands.
    """
    position = {c.name: i for i, c in enumerate(claims)}
    own: list[tuple[tuple[int, int], Decision]] = []
    promoted: list[tuple[tuple[int, int, int], Decision]] = []
    for decisions, n in parts:
        for k, d in enumerate(decisions[:n]):
            own.append(((position.get(d.claim, -1), k), d))
        for j, p in enumerate(decisions[n:]):
            asked = [
                (position.get(d.claim, -1), k)
                for k, d in enumerate(decisions[:n])
                if d.field == p.field and pairs.get(d.claim) == p.claim
            ]
            promoted.append(((*min(asked, default=(-1, -1)), j), p))
    own.sort(key=lambda x: x[0])
    promoted.sort(key=lambda x: x[0])
    return [d for _, d in own] + [d for _, d in promoted]
