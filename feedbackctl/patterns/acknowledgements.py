"""The bridge from proposals to the auto-tuner: the acknowledgements it may act on.

An ``ack`` act on the authority branch lifts the risk ceiling for one proposed
change (``feedbackctl.patterns.proposals.acknowledge``); autotune reads the live
ones here and hands them to the core decision.
"""

from __future__ import annotations

from datetime import datetime

from feedbackctl.authority import acts
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.core.models import Acknowledgement


def acknowledgements(repo: GitRepo, commit: str, now: datetime) -> dict[tuple[str, str], Acknowledgement]:
    """The live acks on the authority branch at ``commit``, by (claim, field).

    They are inputs of the core decision (the risk-ceiling guard), nothing
    more: bounds, step, change cap and the time gates still decide.
    """
    return acts.live_acknowledgements(acts.read_acts(repo, commit), now)
