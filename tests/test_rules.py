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


def test_audit_provable_list_is_the_registry_in_report_order() -> None:
    assert audit.PROVABLE == rules.PROVABLE
    assert [str(r) for r in audit.PROVABLE] == list(CHECKED_BEFORE)
    assert json.dumps(list(audit.PROVABLE)) == json.dumps(list(CHECKED_BEFORE))


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
