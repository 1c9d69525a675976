"""Reading policy files into the typed model of ``core/policy.py``.

Parsing is pure: it takes plain mappings (already read from YAML) and the
name of the file they came from, validates them, and names the file and key
at fault in a one-line error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from feedbackctl.core.policy import (
    RISK_LEVELS,
    TRUST_LEVELS,
    AlsoCondition,
    Condition,
    FieldPolicy,
    FieldRisk,
    Guardrail,
    Limits,
    MetricPolicy,
    Policy,
    PolicyError,
    RiskPolicy,
    Rule,
    Sizing,
    Source,
    hysteresis_inverted,
)

# p50 alone never justifies a change (metric gaming: docs/design.md, risk 3).
P50_METRICS = frozenset({"duration_p50"})

class _Reader:
    """Reads typed values out of a mapping, naming file and key on error."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, key: str, message: str) -> PolicyError:
        return PolicyError(f"{self.file}: {key}: {message}")

    def mapping(self, value: Any, key: str) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected a mapping, got {type(value).__name__}; fix the file")
        return value

    def seq(self, value: Any, key: str) -> Sequence[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list, got {type(value).__name__}; fix the file")
        return value

    def number(self, value: Any, key: str, *, minimum: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"expected a number, got {value!r}; fix the file")
        if value != value or value in (float("inf"), float("-inf")):
            raise self.fail(key, f"expected a finite number, got {value!r}; fix the file")
        if minimum is not None and value < minimum:
            raise self.fail(key, f"must be at least {minimum:g}, got {value!r}; fix the file")
        return float(value)

    def integer(self, value: Any, key: str, *, minimum: int = 0) -> int:
        number = self.number(value, key, minimum=minimum)
        if number != int(number):
            raise self.fail(key, f"expected a whole number, got {value!r}; fix the file")
        return int(number)

    def text(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"expected a non-empty string, got {value!r}; fix the file")
        return value

    def choice(self, value: Any, key: str, options: Sequence[str]) -> str:
        if value not in options:
            raise self.fail(key, f"expected one of {', '.join(options)}, got {value!r}; fix the file")
        return str(value)


_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_UNIT_MINUTES = {"s": 1 / 60, "m": 1, "h": 60, "d": 1440}


def parse_duration_minutes(value: Any, reader: _Reader, key: str) -> int:
    """'60m', '24h', '7d' or a number of minutes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return reader.integer(value, key)
    match = _DURATION.match(str(value).strip()) if isinstance(value, str) else None
    if not match:
        raise reader.fail(key, f"expected a duration like 60m, 24h or 7d, got {value!r}; fix the file")
    return max(0, round(int(match.group(1)) * _UNIT_MINUTES[match.group(2)]))


def _condition(raw: Any, r: _Reader, key: str, metrics: Mapping[str, MetricPolicy]) -> Condition:
    m = r.mapping(raw, key)
    metric = r.text(m.get("metric"), f"{key}.metric")
    if metric not in metrics:
        known = ", ".join(sorted(metrics))
        raise r.fail(f"{key}.metric", f"unknown metric '{metric}' (known: {known}); add it under metrics:")
    ops = [op for op in ("above", "below") if op in m]
    if len(ops) != 1:
        raise r.fail(key, "set exactly one of 'above' or 'below'")
    op: Literal["above", "below"] = "above" if ops[0] == "above" else "below"
    relative = m.get("relativeTo")
    return Condition(
        metric=metric,
        op=op,
        threshold=r.number(m[op], f"{key}.{op}", minimum=0),
        relative_to=r.text(relative, f"{key}.relativeTo") if relative is not None else None,
        scale=r.number(m.get("scale", 1.0), f"{key}.scale", minimum=0),
    )


def parse_rules(
    doc: Mapping[str, Any], file: str
) -> tuple[dict[str, FieldPolicy], dict[str, MetricPolicy], tuple[Rule, ...], tuple[Guardrail, ...], Limits]:
    r = _Reader(file)
    fields: dict[str, FieldPolicy] = {}
    for name, raw in r.mapping(doc.get("fields"), "fields").items():
        m = r.mapping(raw, f"fields.{name}")
        lo = r.number(m.get("min"), f"fields.{name}.min", minimum=0)
        hi = r.number(m.get("max"), f"fields.{name}.max", minimum=0)
        if lo > hi:
            raise r.fail(f"fields.{name}", f"min {lo:g} is greater than max {hi:g}; swap them")
        step = r.number(m.get("step"), f"fields.{name}.step", minimum=0)
        if step <= 0:
            raise r.fail(f"fields.{name}.step", "must be greater than 0")
        fields[name] = FieldPolicy(str(name), step, lo, hi, str(m.get("unit", "")))
    metrics: dict[str, MetricPolicy] = {}
    for name, raw in r.mapping(doc.get("metrics"), "metrics").items():
        m = r.mapping(raw, f"metrics.{name}")
        coupled = tuple(str(x) for x in r.seq(m.get("coupledTo"), f"metrics.{name}.coupledTo"))
        stale, points, gap = m.get("maxStalenessMinutes"), m.get("minPoints"), m.get("maxGapMinutes")
        metrics[str(name)] = MetricPolicy(
            str(name),
            str(m.get("unit", "")),
            coupled,
            r.integer(stale, f"metrics.{name}.maxStalenessMinutes", minimum=1) if stale is not None else None,
            r.integer(points, f"metrics.{name}.minPoints", minimum=2) if points is not None else None,
            r.integer(gap, f"metrics.{name}.maxGapMinutes", minimum=1) if gap is not None else None,
        )
    rules: list[Rule] = []
    for i, raw in enumerate(r.seq(doc.get("rules"), "rules")):
        key = _item_key("rules", i, raw)
        m = r.mapping(raw, key)
        name = r.text(m.get("name"), f"{key}.name")
        field_name = r.text(m.get("field"), f"{key}.field")
        if field_name not in fields:
            raise r.fail(
                f"{key}.field",
                f"rule '{name}' names field '{field_name}' that has no "
                "entry under fields: (step, min, max); add one",
            )
        when = _condition(m.get("when"), r, f"{key}.when", metrics)
        if when.metric in P50_METRICS:
            raise r.fail(
                f"{key}.when.metric",
                f"rule '{name}' acts on {when.metric} alone; p50 never justifies a change (use duration_p99)",
            )
        size = None
        if m.get("size") is not None:
            s = r.mapping(m.get("size"), f"{key}.size")
            size_metric = r.text(s.get("metric"), f"{key}.size.metric")
            if size_metric not in metrics:
                raise r.fail(f"{key}.size.metric", f"unknown metric '{size_metric}'; add it under metrics:")
            size = Sizing(
                size_metric,
                r.number(s.get("margin", 0.15), f"{key}.size.margin", minimum=0),
                r.number(s.get("scale", 1.0), f"{key}.size.scale", minimum=0),
            )
        also = []
        for j, raw_also in enumerate(r.seq(m.get("also"), f"{key}.also")):
            also_key = f"{key}.also[{j}]"
            extra = _condition(raw_also, r, also_key, metrics)
            minutes = r.mapping(raw_also, also_key).get("sustainedMinutes")
            window = None
            if minutes is not None:
                window = r.integer(minutes, f"{also_key}.sustainedMinutes", minimum=1)
            also.append(AlsoCondition(extra, window))
        rules.append(
            Rule(
                name=name,
                field=field_name,
                direction="increase"
                if r.choice(m.get("direction"), f"{key}.direction", ("increase", "decrease")) == "increase"
                else "decrease",
                when=when,
                sustained_minutes=r.integer(m.get("sustainedMinutes"), f"{key}.sustainedMinutes", minimum=1),
                size=size,
                also=tuple(also),
            )
        )
    guardrails: list[Guardrail] = []
    for i, raw in enumerate(r.seq(doc.get("guardrails"), "guardrails")):
        key = _item_key("guardrails", i, raw)
        m = r.mapping(raw, key)
        blocks = r.choice(m.get("blocks", "decrease"), f"{key}.blocks", ("increase", "decrease", "any"))
        guardrails.append(
            Guardrail(
                name=r.text(m.get("name"), f"{key}.name"),
                blocks="increase" if blocks == "increase" else "decrease" if blocks == "decrease" else "any",
                when=_condition(m.get("when"), r, f"{key}.when", metrics),
                window_minutes=r.integer(m.get("windowMinutes", 60), f"{key}.windowMinutes", minimum=1),
            )
        )
    lim = r.mapping(doc.get("limits"), "limits")
    cap = r.mapping(lim.get("changeCap"), "limits.changeCap")
    rate = r.mapping(lim.get("rateLimit"), "limits.rateLimit")
    flap = r.mapping(lim.get("flap"), "limits.flap")
    d = Limits()
    limits = Limits(
        min_points=r.integer(lim.get("minPoints", d.min_points), "limits.minPoints", minimum=2),
        max_staleness_minutes=r.integer(
            lim.get("maxStalenessMinutes", d.max_staleness_minutes), "limits.maxStalenessMinutes", minimum=1
        ),
        max_gap_minutes=r.integer(lim["maxGapMinutes"], "limits.maxGapMinutes", minimum=1)
        if lim.get("maxGapMinutes") is not None
        else None,
        settling_minutes=r.integer(lim.get("settlingMinutes", d.settling_minutes), "limits.settlingMinutes"),
        cooldown_minutes=r.integer(lim.get("cooldownMinutes", d.cooldown_minutes), "limits.cooldownMinutes"),
        cap_up=r.number(cap.get("up", d.cap_up), "limits.changeCap.up", minimum=1),
        cap_down=r.number(cap.get("down", d.cap_down), "limits.changeCap.down", minimum=0),
        rate_per_run=r.integer(rate.get("perRun", d.rate_per_run), "limits.rateLimit.perRun"),
        rate_per_24h=r.integer(rate.get("per24h", d.rate_per_24h), "limits.rateLimit.per24h"),
        flap_window_days=r.integer(
            flap.get("windowDays", d.flap_window_days), "limits.flap.windowDays", minimum=1
        ),
        flap_reversals=r.integer(flap.get("reversals", d.flap_reversals), "limits.flap.reversals", minimum=1),
        auto_apply_ceiling=r.choice(
            lim.get("autoApplyCeiling", d.auto_apply_ceiling), "limits.autoApplyCeiling", RISK_LEVELS
        ),
        hysteresis_band=r.number(
            lim.get("hysteresisBand", d.hysteresis_band), "limits.hysteresisBand", minimum=0
        ),
    )
    if limits.cap_down > 1:
        raise r.fail("limits.changeCap.down", "must be at most 1 (a fraction of the baseline)")
    if limits.hysteresis_band >= 1:
        raise r.fail("limits.hysteresisBand", "must be below 1 (a fraction of the increase threshold)")
    _check_hysteresis(rules, limits.hysteresis_band, r)
    return fields, metrics, tuple(rules), tuple(guardrails), limits


def same_signal(a: Condition, b: Condition) -> bool:
    """Two conditions whose thresholds are on one scale (and so can be compared)."""
    return (a.metric, a.relative_to, a.scale) == (b.metric, b.relative_to, b.scale)


def _check_hysteresis(rules: Sequence[Rule], band: float, r: _Reader) -> None:
    """An increase rule must fire only above every decrease rule of its field on the same signal."""
    for up in rules:
        if up.direction != "increase" or up.when.op != "above":
            continue
        for down in rules:
            if (
                down.direction == "decrease"
                and down.field == up.field
                and down.when.op == "below"
                and same_signal(up.when, down.when)
                and hysteresis_inverted(up.when.threshold, down.when.threshold, band)
            ):
                raise r.fail(
                    f"rules[{up.name}].when.above",
                    f"increase threshold {up.when.threshold:g} is not above rule '{down.name}''s "
                    f"decrease threshold {down.when.threshold:g} by the {band:.0%} band "
                    f"(limits.hysteresisBand); the two would undo each other: raise it above "
                    f"{down.when.threshold / (1 - band):g} or lower the decrease threshold",
                )


def parse_risk(doc: Mapping[str, Any], file: str) -> RiskPolicy:
    r = _Reader(file)
    fields = {}
    for name, raw in r.mapping(doc.get("fields"), "fields").items():
        m = r.mapping(raw, f"fields.{name}")
        fields[str(name)] = FieldRisk(
            base=r.choice(m.get("base"), f"fields.{name}.base", RISK_LEVELS),
            concern=r.text(m.get("concern"), f"fields.{name}.concern"),
        )
    return RiskPolicy(
        fields=fields,
        unknown_field=r.choice(doc.get("unknownField", "MEDIUM"), "unknownField", RISK_LEVELS),
        security_fields=frozenset(str(x) for x in r.seq(doc.get("securityFields"), "securityFields")),
    )


def _item_key(section: str, index: int, raw: Any) -> str:
    """How a message names one list item: by its name when it has one.

    A repo's rules, guardrails and sources merge by name into the defaults, so
    an index into the merged list is not the line a human would look for.
    """
    name = raw.get("name") if isinstance(raw, Mapping) else None
    return f"{section}[{name}]" if isinstance(name, str) and name else f"{section}[{index}]"


def parse_sources(doc: Mapping[str, Any], file: str) -> dict[str, Source]:
    r = _Reader(file)
    sources: dict[str, Source] = {}
    for i, raw in enumerate(r.seq(doc.get("feedbackSources"), "feedbackSources")):
        key = _item_key("feedbackSources", i, raw)
        m = r.mapping(raw, key)
        name = r.text(m.get("name"), f"{key}.name")
        if name in sources:
            raise r.fail(f"{key}.name", f"source '{name}' is registered twice; keep one")
        kind = r.choice(m.get("type"), f"{key}.type", ("pull", "push"))
        requires = m.get("requiresProposal", False)
        if not isinstance(requires, bool):
            raise r.fail(f"{key}.requiresProposal", f"expected true or false, got {requires!r}")
        sources[name] = Source(
            name=name,
            type="pull" if kind == "pull" else "push",
            trust_level=r.choice(m.get("trustLevel", "medium"), f"{key}.trustLevel", TRUST_LEVELS),
            cooldown_minutes=parse_duration_minutes(m.get("cooldown", "60m"), r, f"{key}.cooldown"),
            requires_proposal=requires,
            endpoint=str(m["endpoint"]) if m.get("endpoint") is not None else None,
        )
    return sources


def build_policy(
    rules_doc: Mapping[str, Any],
    rules_file: str,
    risk_doc: Mapping[str, Any],
    risk_file: str,
    sources_doc: Mapping[str, Any],
    sources_file: str,
) -> Policy:
    fields, metrics, rules, guardrails, limits = parse_rules(rules_doc, rules_file)
    return Policy(
        fields=fields,
        metrics=metrics,
        rules=rules,
        guardrails=guardrails,
        limits=limits,
        risk=parse_risk(risk_doc, risk_file),
        sources=parse_sources(sources_doc, sources_file),
    )
