"""Packed decisions' text is the report's JSON of each decision, for every shape of decision.

``patterns/packed.py`` builds a decision's JSON text itself (the report writes it as it
is); these pin it to ``json.dumps(render.decision_json(d))`` and the packed round trip
to what JSON gives back, including the values it gives back changed.
"""

from __future__ import annotations

import contextlib
import enum
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedbackctl.core.models import Decision, Evidence, Note, Outcome
from feedbackctl.patterns import analyzecache
from feedbackctl.patterns.packed import PackedDecisions, decision_text, packed_line, plain_decision
from feedbackctl.render import decision_json


class Shade(enum.StrEnum):
    A = "memory-pressure"


class Whole(int):
    def __repr__(self) -> str:
        return "Whole()"


class Real(float):
    def __repr__(self) -> str:
        return "Real()"


texts = st.text(max_size=12) | st.sampled_from(["", "memory-pressure", 'q"\\\t\n\u2028\x7f\U0001f600'])
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 1e300, 5e-324])
ints = st.integers(min_value=-(10**30), max_value=10**30) | st.sampled_from([0, -1, 10**4000])
odd = st.sampled_from([(1, 2), [1, [2.5]], {"k": 1}, {1: "v"}, Shade.A, Whole(3), Real(0.5), b"x", object()])
scalars = st.one_of(st.none(), st.booleans(), ints, floats, texts)
values = scalars | odd
strings = texts | st.sampled_from([Shade.A])
# Evidence's numbers stay within floats: its summary cannot show a larger one (on any path).
effects = st.sampled_from(["fired", "shaped", "blocked", "info"])
numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    floats,
    st.booleans(),
    st.sampled_from([Whole(60), Real(2.5)]),
)


@st.composite
def decisions(draw: Any) -> Decision:
    evidence = draw(
        st.lists(
            st.builds(
                Evidence,
                strings,
                strings,
                st.integers(min_value=-5, max_value=20000) | st.sampled_from([Whole(60), 90.0, True]),
                numbers,
                numbers,
                st.none() | numbers,
                st.sampled_from(["", "percent", "%", "USD", "ms", "MB", "s", "count"]) | strings,
            ),
            max_size=3,
        )
    )
    notes = draw(st.lists(st.builds(Note, strings, effects, strings), max_size=4))
    return Decision(
        draw(strings),
        draw(strings),
        draw(values),
        draw(st.sampled_from(list(Outcome))),
        recommended=draw(values),
        uncapped=draw(values),
        direction=draw(st.sampled_from([None, "increase", "decrease"])),
        confidence=draw(numbers | values),
        rule=draw(st.none() | strings),
        source=draw(st.none() | strings | odd),
        risk=draw(st.none() | strings),
        evidence=tuple(evidence),
        notes=tuple(notes),
        validated_in=draw(st.none() | strings | odd),
        acknowledged=draw(st.none() | strings),
    )


def _dumped(d: Decision, **kwargs: Any) -> str | None:
    try:
        return json.dumps(decision_json(d), **kwargs)
    except (TypeError, ValueError):
        return None


SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(decisions())
def test_a_decision_text_is_its_json_dumped(d: Decision) -> None:
    text = decision_text(d)
    assert text is None or text == _dumped(d, default=str)


@SETTINGS
@given(decisions())
def test_packed_decisions_are_the_json_round_trip(d: Decision) -> None:
    """Packed, a decision is what JSON gives back of it; one JSON cannot hold is kept as it is."""
    try:
        back = json.loads(json.dumps(plain_decision(d)))
    except (TypeError, ValueError):
        back = None
    packed = PackedDecisions([d])
    if back is None:
        assert not packed.all_json and packed.texts(0, 1) is None and packed[0] is d
        return
    decided = packed[0]
    assert plain_decision(decided) == back or json.dumps(plain_decision(decided)) == json.dumps(back)
    if packed.all_json:
        # What the report prints: the text of the decision as JSON gives it back.
        assert packed.texts(0, 1) == [_dumped(decided, default=str)]
        (line,) = packed.lines()
        # The cache's reader takes it back as it is, or not at all (it wants the types analyze writes).
        with contextlib.suppress(analyzecache._Invalid):
            assert analyzecache._valid(line) == line
    else:  # a value JSON holds but another type than it gives back, where the text derives from it
        assert packed[0] is d


exact = st.floats(allow_nan=False)  # NaN is not equal to itself: a round trip could not be compared
well_typed = st.builds(
    Decision,
    st.text(max_size=8),
    st.text(max_size=8),
    st.one_of(st.none(), st.booleans(), ints, exact, texts),
    st.sampled_from(list(Outcome)),
    recommended=st.none() | exact | texts,
    uncapped=st.none() | ints,
    direction=st.sampled_from([None, "increase", "decrease"]),
    confidence=exact | st.integers(min_value=-5, max_value=5),
    rule=st.none() | texts,
    source=st.none() | texts,
    risk=st.none() | texts,
    evidence=st.lists(
        st.builds(
            Evidence, texts, texts, st.integers(0, 20000), st.integers(0, 500), exact, st.none() | exact,
            st.sampled_from(["", "percent", "USD", "ms"]),
        ),  # fmt: skip
        max_size=3,
    ).map(tuple),
    notes=st.lists(st.builds(Note, texts, effects, texts)).map(tuple),
    validated_in=st.none() | texts,
    acknowledged=st.none() | texts,
)


@SETTINGS
@given(well_typed)
def test_the_cache_reads_back_every_line_analyze_writes(d: Decision) -> None:
    (line,) = PackedDecisions([d]).lines()
    assert analyzecache._valid(line) == line
    assert list(PackedDecisions([d])) == [d]


def test_a_line_that_disagrees_with_its_decision_is_not_valid() -> None:
    d = Decision(
        "app", "lambdaMemory", 256, Outcome.CHANGE, recommended=512, confidence=0.5, rule="memory-pressure",
        evidence=(Evidence("memory_utilization", "min", 60, 12, 81.25, 80.0, unit="percent"),),
        notes=(Note("memory-pressure", "fired", "held for 60m"),),
    )  # fmt: skip
    line = packed_line(d)
    assert line is not None and analyzecache._valid(line) == line
    for damaged in (
        line.replace('"reason": "memory-pressure: held', '"reason": "held'),
        line.replace('"summary": "memory_utilization', '"summary": "other'),
        line.replace('"percent"', '"ms"'),
        line.replace('"field": "spec.', '"field": "'),
        line.replace('"claim": "app", "field"', '"field"'),
        line.replace('"blockedBy": []', '"blockedBy": ["x"]'),
        line.replace("\t", "\t\t"),
    ):
        assert damaged != line
        try:
            analyzecache._valid(damaged)
        except (ValueError, TypeError, KeyError, analyzecache._Invalid):
            continue
        raise AssertionError(damaged)
