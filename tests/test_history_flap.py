"""The history's flap question ("does a freeze rest on changes older than the value window?").

``history._rests_on_unknown`` is asked per claim and field of a fleet and
answers at once when no change is older than the window; random histories
(reversals, human acts, changes after ``now``, any reversal limit) pin it to
the full check: flapping, and its oldest counted state before ``since``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from feedbackctl.authority.history import _first_state, _rests_on_unknown
from feedbackctl.core import flap
from feedbackctl.core.models import FieldChange
from tests.corefix import NOW, change, policy

POLICY = policy()

_changes = st.lists(
    st.tuples(
        st.integers(-600, 60 * 24 * 60),  # minutes ago (negative: after now)
        st.sampled_from([128, 256, 512, None, "x"]),
        st.sampled_from([128, 256, 512, None]),
        st.sampled_from(["auto-tune", "human", "unfreeze", "reset", "drift-capture"]),
    ),
    max_size=12,
)


@settings(max_examples=400, deadline=None)
@given(
    raw=_changes,
    since_days=st.integers(-2, 40),
    reversals=st.integers(0, 3),
)
def test_the_quick_answer_is_the_full_one(
    raw: list[tuple[int, object, object, str]], since_days: int, reversals: int
) -> None:
    changes: list[FieldChange] = sorted((change(m, o, n, k) for m, o, n, k in raw), key=lambda c: c.at)
    pol = replace(POLICY, limits=replace(POLICY.limits, flap_reversals=reversals))
    since = NOW - timedelta(days=since_days)
    full = flap.assess(changes, NOW, pol.limits).flapping and _first_state(changes, NOW) < since
    assert _rests_on_unknown(changes, NOW, since, pol) == full
