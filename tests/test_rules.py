"""The rule registry (core/rules.py): one place that names every safety rule."""

from __future__ import annotations

import importlib
import json

from feedbackctl.core import rules
from feedbackctl.core.rules import REGISTRY, RuleId
from feedbackctl.patterns import audit

# audit verify's "checked" list as it was before the registry: its text and order are output.
CHECKED_BEFORE = (
    "trailer-misplaced",
    "trailer-incomplete",
    "trailer-diff",
    "undeclared-change",
    "bounds-tampering",
    "schema",
    "opt-in",
    "trust",
    "flap-freeze",
    "cooldown",
    "source-cooldown",
    "settling",
    "step-limit",
    "bounds",
    "change-cap",
    "risk-ceiling",
    "rate-limit",
    "reset-target",
    "drift-tags",
    "validated-in",
)
# Since shared-value became provable (the replay knows where each value is set), it is appended.
CHECKED = (*CHECKED_BEFORE, "shared-value")


def test_audit_provable_list_is_the_registry_in_report_order() -> None:
    assert audit.PROVABLE == rules.PROVABLE
    assert [str(r) for r in audit.PROVABLE] == list(CHECKED)
    assert json.dumps(list(audit.PROVABLE)) == json.dumps(list(CHECKED))


def test_every_rule_id_is_registered_once() -> None:
    assert [r.id for r in REGISTRY] == list(RuleId)
    assert all(r.meaning and "\n" not in r.meaning for r in REGISTRY)


def test_each_rule_names_a_definition_that_exists() -> None:
    for r in REGISTRY:
        module, _, name = r.defined_by.partition(":")
        target: object = importlib.import_module(f"feedbackctl.{module}")
        for part in name.split("."):
            target = getattr(target, part)
        assert callable(target), r


def test_rule_ids_print_as_their_text() -> None:
    assert RuleId.COOLDOWN == "cooldown"
    assert f"{RuleId.RATE_LIMIT}" == "rate-limit"
    assert json.dumps({"rule": RuleId.SOURCE_COOLDOWN}) == '{"rule": "source-cooldown"}'


def test_proposal_limit_holds_back_past_either_limit() -> None:
    from feedbackctl.core.runlimits import proposal_limit

    assert proposal_limit(3, open_now=1, new_recent=0, max_open=2, max_new=5) == [
        None,
        "2 proposals are open (max 2); decide some first",
        "2 proposals are open (max 2); decide some first",
    ]
    held = proposal_limit(2, open_now=0, new_recent=4, max_open=10, max_new=5)
    assert held[0] is None and held[1] is not None and "last hour (max 5)" in held[1]


def test_rate_room_is_what_both_limits_leave() -> None:
    from feedbackctl.core.policy import Limits
    from feedbackctl.core.runlimits import rate_room

    limits = Limits(rate_per_run=3, rate_per_24h=10)
    assert rate_room(limits, made=0, recent=0) == (3, 10)
    assert rate_room(limits, made=3, recent=9) == (0, 1)
