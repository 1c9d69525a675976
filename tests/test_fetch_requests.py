"""A full fetch asks, for every claim, exactly what ``fetchplan.claim_metrics`` says.

``fetching.full_requests`` works the answer out once per set of tuned fields
the claims set; random fleets and policies pin it to the per-claim answer.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from feedbackctl.core import fetchplan
from feedbackctl.core.decide import ClaimInputs
from feedbackctl.core.models import Claim
from feedbackctl.patterns.fetching import full_requests
from feedbackctl.sources.base import MetricRequest
from tests.corefix import claim, policy

POLICY = policy()
FIELDS = sorted({r.field for r in POLICY.rules} | {"environment", "other"})


@st.composite
def fleets(draw: st.DrawFn) -> list[Claim]:
    out = []
    for k in range(draw(st.integers(0, 12))):
        spec: dict[str, object] = {}
        for f in FIELDS:
            how = draw(st.sampled_from(["absent", "none", "value", "zero", "text"]))
            if how != "absent":
                spec[f] = {"none": None, "value": 512, "zero": 0, "text": "x"}[how]
        c = claim(f"app-{k}")
        out.append(replace(c, spec=spec))
    return out


@settings(max_examples=200, deadline=None)
@given(
    fleet=fleets(),
    rules=st.sets(st.integers(0, len(POLICY.rules) - 1)),
    guardrails=st.sets(st.integers(0, max(len(POLICY.guardrails) - 1, 0))),
)
def test_each_claim_is_asked_what_claim_metrics_says(
    fleet: list[Claim], rules: set[int], guardrails: set[int]
) -> None:
    pol = replace(
        POLICY,
        rules=tuple(r for i, r in enumerate(POLICY.rules) if i in rules),
        guardrails=tuple(g for i, g in enumerate(POLICY.guardrails) if i in guardrails),
    )
    expected = [MetricRequest(c, fetchplan.claim_metrics(ClaimInputs(c), pol), 1.0, 2.0) for c in fleet]
    assert full_requests(fleet, pol, 1.0, 2.0) == expected


def test_the_default_policy_asks_more_for_a_claim_that_sets_more() -> None:
    both, memory = claim("a"), replace(claim("b"), spec={"lambdaMemory": 256})
    requests = full_requests([both, memory], POLICY, 0.0, 1.0)
    assert set(requests[1].metrics) <= set(requests[0].metrics)
    assert requests[0].metrics == fetchplan.claim_metrics(ClaimInputs(both), POLICY)
