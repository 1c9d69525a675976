"""The claim identity rule across one commit (core.identity), with plain values."""

from __future__ import annotations

from feedbackctl.core.identity import predecessors

KIND = "ServerlessEventAppClaim"
SPEC = {"environment": "prod", "lambdaMemory": 256, "autoTune": {"enabled": True}}
OTHER = {"environment": "dev", "lambdaMemory": 512}


def test_a_claim_in_both_is_itself_wherever_it_moved() -> None:
    assert predecessors({(KIND, "app"): SPEC}, {(KIND, "app"): SPEC}) == {(KIND, "app"): (KIND, "app")}
    # Its values changed in the same commit: still the same claim (the change is the commit's).
    changed = {**SPEC, "lambdaMemory": 1024}
    assert predecessors({(KIND, "app"): SPEC}, {(KIND, "app"): changed}) == {(KIND, "app"): (KIND, "app")}


def test_a_rename_keeping_the_spec_is_the_same_claim() -> None:
    before = {(KIND, "app"): SPEC, (KIND, "dev"): OTHER}
    after = {(KIND, "app-prod"): dict(SPEC), (KIND, "dev"): OTHER}
    assert predecessors(before, after) == {(KIND, "app-prod"): (KIND, "app"), (KIND, "dev"): (KIND, "dev")}


def test_a_rename_that_changes_the_spec_or_the_kind_is_a_new_claim() -> None:
    assert predecessors({(KIND, "app"): SPEC}, {(KIND, "app2"): {**SPEC, "lambdaMemory": 384}}) == {}
    assert predecessors({(KIND, "app"): SPEC}, {("OtherClaim", "app2"): SPEC}) == {}
    # Nested values count too: the whole spec must be identical.
    assert (
        predecessors({(KIND, "app"): SPEC}, {(KIND, "app2"): {**SPEC, "autoTune": {"enabled": False}}}) == {}
    )


def test_a_claim_that_still_exists_was_not_renamed() -> None:
    # X stays and Y is a copy of it: Y is new (X did not go anywhere).
    before = {(KIND, "x"): SPEC}
    after = {(KIND, "x"): SPEC, (KIND, "y"): SPEC}
    assert predecessors(before, after) == {(KIND, "x"): (KIND, "x")}
    # Y existed before: not a rename of X, whatever the specs say.
    assert predecessors({(KIND, "x"): SPEC, (KIND, "y"): OTHER}, {(KIND, "y"): SPEC}) == {
        (KIND, "y"): (KIND, "y")
    }


def test_an_ambiguous_match_is_no_rename() -> None:
    two_gone = {(KIND, "a"): SPEC, (KIND, "b"): SPEC}
    assert predecessors(two_gone, {(KIND, "c"): SPEC}) == {}
    assert predecessors({(KIND, "a"): SPEC}, {(KIND, "b"): SPEC, (KIND, "c"): SPEC}) == {}
