"""Schema rules from the repo's Crossplane CompositeResourceDefinitions (XRDs).

An XRD applies to a claim when its ``spec.group`` is the claim's API group,
``spec.claimNames.kind`` (or ``spec.names.kind``) is the claim's kind, and one
of ``spec.versions`` is the claim's version. The rules of each top-level spec
property (type, enum, minimum, maximum, exclusive bounds, pattern) become
:class:`FieldSchema` values on the claim, next to the policy's field ranges,
so the core clamps to them and the writer refuses any value that breaks one.

XRDs are found anywhere in the repo at the authority ref, with one
``git grep`` for the kind name, and cached per commit within a run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.yamldoc import YamlError, load_documents
from feedbackctl.core import regex
from feedbackctl.core.models import Claim
from feedbackctl.core.policy import Policy
from feedbackctl.core.schema import FieldSchema
from feedbackctl.errors import FeedbackError

XRD_KIND = "CompositeResourceDefinition"
XRD_GROUP = "apiextensions.crossplane.io/"

# (API group, version, kind) -> field -> rules
SchemaKey = tuple[str, str, str]


@dataclass
class XrdIndex:
    schemas: dict[SchemaKey, dict[str, FieldSchema]] = field(default_factory=dict)
    errors: list[FeedbackError] = field(default_factory=list)

    def for_claim(self, claim: Claim) -> Mapping[str, FieldSchema]:
        group, _, version = claim.api_version.rpartition("/")
        return self.schemas.get((group, version, claim.kind), {})


class XrdError(FeedbackError):
    """An XRD cannot be read: its limits are not applied (the policy's still are)."""


_CACHE: dict[tuple[str, str], XrdIndex] = {}


def load_xrds(repo: GitRepo, commit: str) -> XrdIndex:
    key = (str(repo.git_dir), commit)
    if key in _CACHE:
        return _CACHE[key]
    index = XrdIndex()
    for path in repo.files_containing(commit, XRD_KIND):
        raw = repo.read_file(commit, path)
        if raw is None:
            continue
        try:
            docs = load_documents(path, raw.decode("utf-8"))
        except (YamlError, UnicodeDecodeError) as e:
            index.errors.append(XrdError(f"{e}; the XRD's schema limits are not applied until it is fixed"))
            continue
        for doc in docs:
            data = doc.data
            if not isinstance(data, Mapping) or data.get("kind") != XRD_KIND:
                continue
            if not str(data.get("apiVersion") or "").startswith(XRD_GROUP):
                continue
            try:
                _add(index, path, doc.line, data)
            except XrdError as e:
                index.errors.append(e)
    if len(_CACHE) > 16:
        _CACHE.clear()
    _CACHE[key] = index
    return index


def _add(index: XrdIndex, path: str, line: int, data: Mapping[str, Any]) -> None:
    where = f"{path}:{line}"
    spec = data.get("spec")
    if not isinstance(spec, Mapping) or not isinstance(spec.get("group"), str):
        raise XrdError(f"{where}: XRD has no spec.group; its limits are not applied")
    kinds = [
        names.get("kind")
        for names in (spec.get("claimNames"), spec.get("names"))
        if isinstance(names, Mapping) and isinstance(names.get("kind"), str)
    ]
    versions = spec.get("versions")
    if not isinstance(versions, list):
        raise XrdError(f"{where}: XRD has no spec.versions list; its limits are not applied")
    for i, version in enumerate(versions):
        if not isinstance(version, Mapping) or not isinstance(version.get("name"), str):
            continue
        props = _get(version, "schema", "openAPIV3Schema", "properties", "spec", "properties")
        if not isinstance(props, Mapping):
            continue
        source = f"xrd {path}"
        rules = {
            str(name): _field_schema(str(name), raw, source, f"{where}: spec.versions[{i}] spec.{name}")
            for name, raw in props.items()
            if isinstance(raw, Mapping)
        }
        for kind in kinds:
            assert isinstance(kind, str)
            index.schemas[(spec["group"], version["name"], kind)] = rules


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _number(raw: Mapping[str, Any], key: str, where: str) -> float | None:
    value = raw.get(key)
    if value is None or isinstance(value, bool):
        return None
    if not isinstance(value, int | float):
        raise XrdError(f"{where}: {key} must be a number, not {value!r}; fix the XRD")
    return float(value)


def _field_schema(name: str, raw: Mapping[str, Any], source: str, where: str) -> FieldSchema:
    type_ = raw.get("type")
    enum = raw.get("enum")
    if enum is not None and not isinstance(enum, list):
        raise XrdError(f"{where}: enum must be a list; fix the XRD")
    pattern = raw.get("pattern")
    if pattern is not None:
        problem = regex.pattern_error(str(pattern))
        if problem:
            raise XrdError(
                f"{where}: pattern {pattern!r} is not a valid RE2 regular expression ({problem}); fix the XRD"
            )
    minimum, maximum = _number(raw, "minimum", where), _number(raw, "maximum", where)
    exclusive_min = raw.get("exclusiveMinimum") is True
    exclusive_max = raw.get("exclusiveMaximum") is True
    # JSON Schema (draft 6+) spells exclusive bounds as numbers.
    if not isinstance(raw.get("exclusiveMinimum"), bool) and raw.get("exclusiveMinimum") is not None:
        minimum, exclusive_min = _number(raw, "exclusiveMinimum", where), True
    if not isinstance(raw.get("exclusiveMaximum"), bool) and raw.get("exclusiveMaximum") is not None:
        maximum, exclusive_max = _number(raw, "exclusiveMaximum", where), True
    return FieldSchema(
        field=name,
        source=source,
        type=str(type_) if isinstance(type_, str) else None,
        enum=tuple(e for e in enum if e is None or isinstance(e, bool | int | float | str))
        if enum is not None
        else None,
        minimum=minimum,
        maximum=maximum,
        exclusive_minimum=exclusive_min,
        exclusive_maximum=exclusive_max,
        pattern=str(pattern) if pattern is not None else None,
    )


def policy_rules(policy: Policy) -> dict[str, FieldSchema]:
    """The policy's ranges for tunable fields (they apply with or without an XRD)."""
    return {
        name: FieldSchema(name, f"policy fields.{name}", minimum=fp.min, maximum=fp.max)
        for name, fp in policy.fields.items()
    }


def with_schemas(claims: Sequence[Claim], index: XrdIndex, policy: Policy) -> list[Claim]:
    """Each claim with its schema rules: its XRD's rules, then the policy's ranges.

    The rules are built once per API version and kind and shared; the claims
    are shallow copies (``dataclasses.replace`` costs ~20 us a claim, a
    noticeable share of a 10k-claim snapshot).
    """
    base = policy_rules(policy)
    by_kind: dict[tuple[str, str], dict[str, tuple[FieldSchema, ...]]] = {}
    out = []
    for c in claims:
        key = (c.api_version, c.kind)
        schema = by_kind.get(key)
        if schema is None:
            xrd = index.for_claim(c)
            schema = by_kind[key] = {
                name: tuple(s for s in (xrd.get(name), base.get(name)) if s is not None)
                for name in dict.fromkeys([*xrd, *base])
            }
        copy = object.__new__(Claim)
        copy.__dict__.update(c.__dict__, schema=schema)
        out.append(copy)
    return out
