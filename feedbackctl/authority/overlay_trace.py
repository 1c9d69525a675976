"""Where a value of a claim rendered from a Kustomize overlay is set.

Tracing finds the scalar that sets ``spec.<field>`` of a rendered claim: the
last JSON 6902 ``add``/``replace`` op or strategic-merge patch of the overlay
that targets the claim (inline in ``kustomization.yaml`` or in a patch file),
else the same question one layer down, ending in the base resource file. A
traced value must equal the rendered one; anything kustomize could have set
another way (components, replacements, vars, transformer plugins, ops on a
parent path, selectors we cannot evaluate) leaves the field untraced, with
the reason, and an untraced field is never edited. ``overlays.py`` runs it
over every claim an overlay renders.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from feedbackctl.authority.kustomize import (
    ADD_REPLACE,
    Kustomization,
    KustomizeError,
    Patch,
    Tree,
)
from feedbackctl.authority.kustomize_render import render_one
from feedbackctl.authority.yamldoc import Doc, KeyPath
from feedbackctl.core import regex
from feedbackctl.core.models import ValueLocation

# --- target selection --------------------------------------------------------------------


def _fullmatch(pattern: Any, value: str) -> bool | None:
    # Kustomize anchors target patterns and evaluates them on Go's RE2.
    return regex.fullmatch(str(pattern), value)


def _label_selector(selector: Any, labels: Mapping[str, Any]) -> bool | None:
    """Equality-based selectors (``a=b,c!=d``); None for set-based ones we do not evaluate."""
    if not isinstance(selector, str):
        return None
    for term in (t.strip() for t in selector.split(",") if t.strip()):
        m = re.fullmatch(r"([^=!\s]+)\s*(==|=|!=)\s*([^=!\s]*)", term)
        if m is None:
            return None
        key, op, value = m.groups()
        has = key in labels and str(labels[key]) == value
        if has if op == "!=" else not has:
            return False
    return True


def _identity(data: Mapping[str, Any]) -> tuple[str, str, str, str, Mapping[str, Any], Mapping[str, Any]]:
    api = str(data.get("apiVersion") or "")
    group, _, version = api.rpartition("/")
    meta = data.get("metadata") if isinstance(data.get("metadata"), Mapping) else {}
    assert isinstance(meta, Mapping)
    labels = meta.get("labels") if isinstance(meta.get("labels"), Mapping) else {}
    notes = meta.get("annotations") if isinstance(meta.get("annotations"), Mapping) else {}
    assert isinstance(labels, Mapping) and isinstance(notes, Mapping)
    return group, version, str(data.get("kind") or ""), str(meta.get("namespace") or ""), labels, notes


def selects(selector: Mapping[str, Any], data: Mapping[str, Any], names: Collection[str]) -> bool | None:
    """Does a patch target select this resource? None when we cannot tell."""
    group, version, kind, namespace, labels, annotations = _identity(data)
    verdicts: list[bool | None] = []
    for key, actual in (("group", group), ("version", version), ("kind", kind), ("namespace", namespace)):
        if selector.get(key) not in (None, ""):
            verdicts.append(_fullmatch(selector[key], actual))
    if selector.get("name") not in (None, ""):
        matches = [_fullmatch(selector["name"], n) for n in names]
        verdicts.append(True if any(matches) else None if None in matches else False)
    if selector.get("labelSelector"):
        verdicts.append(_label_selector(selector["labelSelector"], labels))
    if selector.get("annotationSelector"):
        verdicts.append(_label_selector(selector["annotationSelector"], annotations))
    if False in verdicts:
        return False
    return None if None in verdicts else True


def _smp_selects(patch: Mapping[str, Any], data: Mapping[str, Any], names: Collection[str]) -> bool:
    meta = patch.get("metadata") if isinstance(patch.get("metadata"), Mapping) else {}
    assert isinstance(meta, Mapping)
    _, _, kind, namespace, _, _ = _identity(data)
    if patch.get("kind") != kind or meta.get("name") not in names:
        return False
    return not meta.get("namespace") or meta.get("namespace") == namespace


# --- tracing ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedLocation(ValueLocation):
    """Where a rendered claim's value is set: a patch op, a patch file or the base resource.

    ``key_path`` addresses the scalar inside document ``doc_index`` of
    ``path``; for a patch written inline in ``kustomization.yaml`` it addresses
    the patch text, and ``inner_key_path`` the scalar inside that text. The
    offsets point at the scalar itself (inside the block scalar for an inline
    patch). ``reason`` is set instead when the value could not be traced; such
    a location is never edited.
    """

    key_path: KeyPath = ()
    inner_key_path: KeyPath | None = None
    inner_doc: int = 0
    setter: str = ""  # e.g. "JSON 6902 patch patches[0] op 5"
    overlay: str = ""  # the overlay directory that renders the claim
    overlays: tuple[str, ...] = ()  # every overlay of the snapshot (re-rendered to verify an edit)
    reason: str = ""  # non-empty: not traced, and why


@dataclass(frozen=True)
class _Found:
    file: str
    doc_index: int
    key_path: KeyPath
    value: Any
    setter: str
    inner_doc: int = 0
    inner_key_path: KeyPath | None = None
    inner_docs: tuple[Doc, ...] = ()  # the inline patch's documents


@dataclass
class _Input:
    data: Mapping[str, Any]
    sub: str | None = None  # the base directory that rendered it
    file: str | None = None  # or the resource file
    doc_index: int = 0


class TargetError(KustomizeError):
    """A patch selects nothing: kustomize would skip it silently, so its overlay is wrong."""


class Untraced(Exception):
    """Internal: why a value cannot be traced."""


def _doc_name(data: Mapping[str, Any]) -> str:
    meta = data.get("metadata")
    return str(meta.get("name") or "") if isinstance(meta, Mapping) else ""


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _same_value(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def op_effect(op: Any, field_name: str) -> str:
    """'set' when the op sets /spec/<field>, 'other' when it may change it another way, '' if not."""
    if not isinstance(op, Mapping):
        return "other"
    target = f"/spec/{field_name}"
    name, path, source = op.get("op"), op.get("path"), op.get("from")

    def touches(p: Any) -> bool:
        return isinstance(p, str) and (p == target or target.startswith(p.rstrip("/") + "/") or p == "")

    if name == "test":
        return ""
    if name in ADD_REPLACE and path == target:
        return "set"
    if touches(path) or (isinstance(path, str) and path.startswith(target + "/")):
        return "other"
    if name == "move" and touches(source):
        return "other"
    return ""


class Tracer:
    """Traces rendered values to their source, layer by layer, for one tree."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self._inputs: dict[str, list[_Input]] = {}

    def inputs(self, k: Kustomization) -> list[_Input]:
        if k.dir not in self._inputs:
            found: list[_Input] = []
            for e in k.resources:
                if e.is_dir:
                    for doc in render_one(self.tree, e.path).docs:
                        if isinstance(doc.data, Mapping):
                            found.append(_Input(doc.data, sub=e.path))
                else:
                    for doc in self.tree.docs(e.path):
                        if isinstance(doc.data, Mapping):
                            found.append(_Input(doc.data, file=e.path, doc_index=doc.index))
            self._inputs[k.dir] = found
        return self._inputs[k.dir]

    def names_of(self, k: Kustomization, data: Mapping[str, Any]) -> list[str]:
        """Names a resource may carry while this kustomization's patches apply, last = final."""
        meta = data.get("metadata") if isinstance(data.get("metadata"), Mapping) else {}
        assert isinstance(meta, Mapping)
        names = [str(meta.get("name") or "")]
        for p in k.patches:
            if not p.json6902:
                continue
            assert p.target is not None
            if selects(p.target, data, names) is False:
                continue
            for op in p.docs[0].data:
                renames = isinstance(op, Mapping) and op.get("path") == "/metadata/name"
                if renames and op.get("op") in ADD_REPLACE:
                    names.append(str(op.get("value")))
        final = f"{k.name_prefix}{names[-1]}{k.name_suffix}"
        if final != names[-1]:
            names.append(final)
        return names

    def check_targets(self, k: Kustomization) -> None:
        """A patch that selects nothing is silently ignored by kustomize: make it an error."""
        inputs = self.inputs(k)
        named = [(i.data, self.names_of(k, i.data)) for i in inputs]
        for p in k.patches:
            if p.json6902:
                assert p.target is not None
                hit = any(selects(p.target, data, names) is not False for data, names in named)
                shown = ", ".join(f"{key}={v}" for key, v in p.target.items())
            elif p.target is not None:
                hit = any(selects(p.target, data, names) is not False for data, names in named)
                shown = ", ".join(f"{key}={v}" for key, v in p.target.items())
            else:
                docs = [d.data for d in p.docs if isinstance(d.data, Mapping)]
                hit = all(any(_smp_selects(d, data, names) for data, names in named) for d in docs)
                shown = "; ".join(f"kind={d.get('kind')}, name={_doc_name(d)}" for d in docs)
            if not hit:
                raise TargetError(
                    f"{k.path}: {p.where}: target {{{shown}}} matches no resource, so kustomize "
                    "would skip the patch silently; fix the target"
                )

    def source_of(self, k: Kustomization, out: Mapping[str, Any]) -> _Input:
        _, _, kind, _, _, _ = _identity(out)
        same = [i for i in self.inputs(k) if i.data.get("kind") == kind]
        if len(same) == 1:
            return same[0]
        name = _doc_name(out)
        hits = [i for i in same if self.names_of(k, i.data)[-1] == name]
        if len(hits) != 1:
            raise Untraced(f"cannot tell which resource of {k.dir or '.'}/ renders {kind} {name}")
        return hits[0]

    def _setter(self, k: Kustomization, data: Mapping[str, Any], field_name: str) -> _Found | None:
        names = self.names_of(k, data)
        found: _Found | None = None
        for p in k.patches:
            if p.json6902:
                assert p.target is not None
                chosen = selects(p.target, data, names)
                if chosen is False:
                    continue
                for j, op in enumerate(p.docs[0].data):
                    effect = op_effect(op, field_name)
                    if effect and chosen is None:
                        raise Untraced(f"{k.path}: cannot evaluate the target of {p.where}")
                    if effect == "other":
                        raise Untraced(f"{k.path}: {p.where} op {j} changes spec.{field_name} indirectly")
                    if effect == "set":
                        found = self._found(p, k, 0, (j, "value"), op.get("value"), f"{p.describe()} op {j}")
                continue
            for doc in p.docs:
                smp = doc.data
                if not isinstance(smp, Mapping):
                    continue
                chosen = (
                    selects(p.target, data, names) if p.target is not None else _smp_selects(smp, data, names)
                )
                if chosen is False:
                    continue
                spec = smp.get("spec")
                keys = list(spec) if isinstance(spec, Mapping) else []
                if "$patch" in smp or any(str(key).startswith("$") for key in keys):
                    raise Untraced(f"{k.path}: {p.where} uses a $patch directive on spec")
                if "spec" in smp and not isinstance(spec, Mapping):
                    raise Untraced(f"{k.path}: {p.where} replaces spec as a whole")
                if isinstance(spec, Mapping) and field_name in spec:
                    if chosen is None:
                        raise Untraced(f"{k.path}: cannot evaluate the target of {p.where}")
                    if not _scalar(spec[field_name]):
                        raise Untraced(f"{k.path}: {p.where} sets spec.{field_name} to a structure")
                    found = self._found(p, k, doc.index, ("spec", field_name), spec[field_name], p.describe())
        return found

    @staticmethod
    def _found(p: Patch, k: Kustomization, doc_index: int, key: KeyPath, value: Any, setter: str) -> _Found:
        if p.file is not None:
            return _Found(p.file, doc_index, key, value, setter)
        return _Found(k.path, k.doc.index, p.key_path, value, setter, doc_index, key, p.docs)

    def trace(self, directory: str, out: Mapping[str, Any], field_name: str) -> _Found:
        k = self.tree.kustomization(directory)
        if k.untraceable:
            raise Untraced(k.untraceable)
        source = self.source_of(k, out)
        found = self._setter(k, source.data, field_name)
        if found is not None:
            return found
        if source.sub is not None:
            return self.trace(source.sub, source.data, field_name)
        assert source.file is not None
        spec = source.data.get("spec")
        if not isinstance(spec, Mapping) or field_name not in spec:
            raise Untraced(f"spec.{field_name} is not set in {source.file} nor by a patch")
        return _Found(source.file, source.doc_index, ("spec", field_name), spec[field_name], "resource")

    def locate(self, found: _Found) -> ValueLocation:
        """Offsets of the traced scalar (inside the block scalar of an inline patch)."""
        docs = self.tree.docs(found.file)
        doc = next(d for d in docs if d.index == found.doc_index)
        outer = doc.positions.get(found.key_path)
        if outer is None:
            raise Untraced(f"{found.file}: the value has no position (an alias or a merge key)")
        if found.inner_key_path is None:
            return outer
        text = self.tree.text(found.file)
        inner_text = _lookup(doc.data, found.key_path)
        inner_doc = next(d for d in found.inner_docs if d.index == found.inner_doc)
        inner = inner_doc.positions.get(found.inner_key_path)
        if inner is None:
            raise Untraced(f"{found.file}: the value has no position inside {found.setter}")
        mapped = map_inline(text, outer, inner_text, inner.start, inner.end)
        if mapped is None:
            raise Untraced(f"{found.file}: the patch text is not a literal block scalar (|); edit it by hand")
        start, end, line, column = mapped
        return ValueLocation(found.file, found.doc_index, start, end, line, column)


def _lookup(data: Any, key_path: KeyPath) -> Any:
    for part in key_path:
        data = data[part]
    return data


def block_lines(text: str, outer: ValueLocation) -> tuple[int, list[int]] | None:
    """For a literal block scalar: its indentation and the offset where each content line starts."""
    if text[outer.start : outer.start + 1] != "|":
        return None
    header_end = text.find("\n", outer.start)
    if header_end < 0 or any(ch.isdigit() for ch in text[outer.start : header_end].split("#")[0]):
        return None
    starts = []
    pos = header_end + 1
    while pos <= outer.end and pos < len(text):
        starts.append(pos)
        nl = text.find("\n", pos)
        if nl < 0:
            break
        pos = nl + 1
    indent = None
    for s in starts:
        line = text[s : text.find("\n", s) if text.find("\n", s) >= 0 else len(text)]
        if line.strip():
            indent = len(line) - len(line.lstrip(" "))
            break
    if indent is None:
        return None
    return indent, starts


def map_inline(
    text: str, outer: ValueLocation, inner_text: str, start: int, end: int
) -> tuple[int, int, int, int] | None:
    """Map [start, end) of a literal block scalar's value to offsets in the file's text.

    Returns (start, end, line, column); None when the span cannot be mapped
    exactly (another scalar style, an explicit indentation indicator, a span
    across lines) or the file's text there differs from the value's.
    """
    layout = block_lines(text, outer)
    if layout is None or "\n" in inner_text[start:end]:
        return None
    indent, starts = layout
    line_no = inner_text.count("\n", 0, start)
    column = start - (inner_text.rfind("\n", 0, start) + 1)
    if line_no >= len(starts):
        return None
    s = starts[line_no] + indent + column
    e = s + (end - start)
    if text[s:e] != inner_text[start:end]:
        return None
    line = text.count("\n", 0, s) + 1
    return s, e, line, s - (text.rfind("\n", 0, s) + 1) + 1


