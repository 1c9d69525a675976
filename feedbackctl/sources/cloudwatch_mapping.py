"""The CloudWatch metric mapping (``policies/cloudwatch.yaml``): typed, validated, pure.

It says which functions a claim composes (per claim kind) and how each metric
name becomes a GetMetricData query: namespace, metric name, dimensions
templated from the claim, statistic, period, and how the per-function series
combine into the claim's series.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from feedbackctl.authority.yamldoc import YamlError, load_data
from feedbackctl.core.models import Claim
from feedbackctl.core.policy import PolicyError
from feedbackctl.resources import data_dir

FILE = "cloudwatch.yaml"
DEFAULT_KIND = "default"
DEFAULT_PERIOD = 300
COMBINES = ("max", "min", "sum")
Combine = Literal["max", "min", "sum"]

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_NAMES = re.compile(r"^(name|namespace|function|spec\.[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)$")
# CloudWatch's statistics, and the extended ones GetMetricData accepts (p99, tm90, PR(10:), ...).
_STAT = re.compile(
    r"^(SampleCount|Average|Sum|Minimum|Maximum|IQM"
    r"|(p|tm|wm|tc|ts)\d{1,2}(\.\d{1,10})?"
    r"|(TM|WM|TC|TS|PR)\(\d*(\.\d+)?%?:\d*(\.\d+)?%?\))$"
)


class MissingValue(Exception):
    """A template names a claim value that is not set (or not a scalar)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


@dataclass(frozen=True)
class Template:
    text: str

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.group(1) for m in _PLACEHOLDER.finditer(self.text))

    @property
    def uses_function(self) -> bool:
        return "function" in self.names

    def render(self, claim: Claim, function: str | None = None) -> str:
        def value(match: re.Match[str]) -> str:
            key = match.group(1)
            if key == "function":
                if function is None:
                    raise MissingValue("function")
                return function
            if key == "name":
                return claim.name
            if key == "namespace":
                if claim.namespace is None:
                    raise MissingValue("metadata.namespace")
                return claim.namespace
            node: Any = claim.spec
            for part in key.split(".")[1:]:
                node = node.get(part) if isinstance(node, Mapping) else None
            if node is None or isinstance(node, bool | Mapping | list) or str(node) == "":
                raise MissingValue(key)
            return str(node)

        return _PLACEHOLDER.sub(value, self.text)


@dataclass(frozen=True)
class KindMap:
    region: Template | None
    functions: tuple[Template, ...]


@dataclass(frozen=True)
class MetricMap:
    metric: str
    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, Template], ...]
    stat: str
    period: int
    combine: Combine
    unit: str | None = None

    @property
    def per_function(self) -> bool:
        return any(t.uses_function for _, t in self.dimensions)


DEFAULT_CE_REGION = "us-east-1"  # Cost Explorer has one endpoint


@dataclass(frozen=True)
class CostExplorerMap:
    """Which metric Cost Explorer supplies, and how a claim is found in its groups."""

    metric: str = "cost_daily"
    cost_metric: str = "UnblendedCost"
    tag_key: str = "feedbackctl-claim"
    tag_value: Template = Template("{name}")
    region: str = DEFAULT_CE_REGION
    enabled: bool = True


def parse_cost_explorer(raw: Any, file: str) -> CostExplorerMap:
    """The ``costExplorer:`` block; absent means the defaults, ``enabled: false`` turns it off."""
    if raw is None:
        return CostExplorerMap()
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{file}: costExplorer: expected a mapping; fix the file")
    known = {"metric", "costMetric", "tagKey", "tagValue", "region", "enabled"}
    unknown = sorted(str(k) for k in raw if k not in known)
    if unknown:
        raise PolicyError(
            f"{file}: costExplorer.{unknown[0]}: unknown key; use {', '.join(sorted(known))}"
        )

    def text(key: str, default: str) -> str:
        value = raw.get(key, default)
        if not isinstance(value, str) or not value.strip():
            raise PolicyError(f"{file}: costExplorer.{key}: expected a non-empty string, got {value!r}")
        return value

    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise PolicyError(f"{file}: costExplorer.enabled: expected true or false, got {enabled!r}")
    return CostExplorerMap(
        metric=text("metric", "cost_daily"),
        cost_metric=text("costMetric", "UnblendedCost"),
        tag_key=text("tagKey", "feedbackctl-claim"),
        tag_value=_template(file, "costExplorer.tagValue", raw.get("tagValue", "{name}")),
        region=text("region", DEFAULT_CE_REGION),
        enabled=enabled,
    )


@dataclass(frozen=True)
class Pricing:
    """What a run's requests cost, for the report (AWS list prices; a repo may set its own)."""

    per_thousand_metrics_usd: float = 0.01  # GetMetricData: per 1,000 metrics requested
    per_cost_request_usd: float = 0.01  # GetCostAndUsage: per request (page)


@dataclass(frozen=True)
class CloudWatchMapping:
    kinds: Mapping[str, KindMap]
    metrics: Mapping[str, MetricMap]
    cost: CostExplorerMap = field(default_factory=lambda: CostExplorerMap())
    pricing: Pricing = field(default_factory=lambda: Pricing())

    def kind(self, name: str) -> KindMap | None:
        return self.kinds.get(name) or self.kinds.get(DEFAULT_KIND)


def _fail(file: str, key: str, message: str) -> PolicyError:
    return PolicyError(f"{file}: {key}: {message}")


def _text(file: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(file, key, f"expected a non-empty string, got {value!r}; fix the file")
    return value


def _template(file: str, key: str, value: Any) -> Template:
    t = Template(_text(file, key, value))
    for name in t.names:
        if not _NAMES.match(name):
            raise _fail(
                file, key, f"unknown placeholder {{{name}}}; use {{name}}, {{namespace}}, "
                "{function} or {spec.FIELD}"
            )
    return t


def _mapping(file: str, key: str, value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(file, key, f"expected a mapping, got {type(value).__name__}; fix the file")
    return value


def _period(file: str, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 60 or value % 60:
        raise _fail(file, key, f"expected seconds, a multiple of 60 (e.g. 300), got {value!r}")
    return value


def parse_mapping(doc: Mapping[str, Any], file: str) -> CloudWatchMapping:
    kinds: dict[str, KindMap] = {}
    for name, raw in _mapping(file, "kinds", doc.get("kinds")).items():
        key = f"kinds.{name}"
        m = _mapping(file, key, raw)
        functions = m.get("functions") or []
        if not isinstance(functions, list):
            raise _fail(file, f"{key}.functions", "expected a list of function name templates")
        region = m.get("region")
        kinds[str(name)] = KindMap(
            region=_template(file, f"{key}.region", region) if region is not None else None,
            functions=tuple(_template(file, f"{key}.functions[{i}]", f) for i, f in enumerate(functions)),
        )
    default_period = _period(file, "period", doc.get("period", DEFAULT_PERIOD))
    metrics: dict[str, MetricMap] = {}
    for name, raw in _mapping(file, "metrics", doc.get("metrics")).items():
        key = f"metrics.{name}"
        m = _mapping(file, key, raw)
        stat = _text(file, f"{key}.stat", m.get("stat"))
        if not _STAT.match(stat):
            raise _fail(
                file, f"{key}.stat", f"'{stat}' is not a CloudWatch statistic "
                "(Maximum, Sum, Average, Minimum, SampleCount, or extended such as p99, tm90)"
            )
        combine = m.get("combine", "max")
        if combine not in COMBINES:
            raise _fail(file, f"{key}.combine", f"expected one of {', '.join(COMBINES)}, got {combine!r}")
        dims = _mapping(file, f"{key}.dimensions", m.get("dimensions"))
        if len(dims) > 30:
            raise _fail(file, f"{key}.dimensions", "CloudWatch allows at most 30 dimensions")
        unit = m.get("unit")
        metrics[str(name)] = MetricMap(
            metric=str(name),
            namespace=_text(file, f"{key}.namespace", m.get("namespace")),
            metric_name=_text(file, f"{key}.metricName", m.get("metricName")),
            dimensions=tuple(
                (_text(file, f"{key}.dimensions", str(k)), _template(file, f"{key}.dimensions.{k}", v))
                for k, v in dims.items()
            ),
            stat=stat,
            period=_period(file, f"{key}.period", m.get("period", default_period)),
            combine="max" if combine == "max" else "min" if combine == "min" else "sum",
            unit=_text(file, f"{key}.unit", unit) if unit is not None else None,
        )
    cost = parse_cost_explorer(doc.get("costExplorer"), file)
    if cost.metric in metrics:
        raise _fail(file, "costExplorer.metric", f"{cost.metric} is also under metrics:; name it once")
    return CloudWatchMapping(kinds, metrics, cost, _pricing(file, doc.get("pricing")))


def _pricing(file: str, raw: Any) -> Pricing:
    doc = _mapping(file, "pricing", raw)
    values: dict[str, float] = {}
    for key in ("perThousandMetricsUSD", "perCostRequestUSD"):
        if key not in doc:
            continue
        v = doc[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not v >= 0 or v != v or v == float("inf"):
            raise _fail(file, f"pricing.{key}", f"expected a price in USD >= 0, got {v!r}")
        values[key] = float(v)
    unknown = sorted(str(k) for k in doc if k not in ("perThousandMetricsUSD", "perCostRequestUSD"))
    if unknown:
        raise _fail(file, f"pricing.{unknown[0]}", "unknown key; fix the file")
    return Pricing(
        values.get("perThousandMetricsUSD", Pricing.per_thousand_metrics_usd),
        values.get("perCostRequestUSD", Pricing.per_cost_request_usd),
    )


def _load(text: bytes, file: str) -> Mapping[str, Any]:
    try:
        doc = load_data(file, text)
    except YamlError as exc:
        raise PolicyError(str(exc)) from None
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise PolicyError(f"{file}: expected a mapping at the top; fix the file")
    return doc


def load_mapping(override: tuple[str, bytes] | None = None) -> CloudWatchMapping:
    """The shipped mapping, with a repo's override merged in (kinds/metrics by name)."""
    doc = dict(_load((data_dir("policies") / FILE).read_bytes(), f"policies/{FILE}"))
    where = f"policies/{FILE}"
    if override is not None:
        where, text = override
        extra = _load(text, where)
        for key, value in extra.items():
            base = doc.get(key)
            if key in ("kinds", "metrics") and isinstance(value, Mapping) and isinstance(base, Mapping):
                doc[key] = {**base, **value}
            else:
                doc[key] = value
    return parse_mapping(doc, where)
