"""Claims rendered from Kustomize overlays, and where each of their values is set.

Each value is traced to the scalar that sets it by ``overlay_trace.py``.

A scalar that sets the values of several claims (a base shared by overlays)
carries their names in ``shared_by``: editing it is a batch change. A patch
whose target selects nothing (kustomize skips it silently) is an error for its
overlay. The edit and its verification live in ``kustomize_edit.py``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from feedbackctl.authority.claims import parse_claims
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.kustomize import KustomizeError, Tree
from feedbackctl.authority.kustomize_render import render
from feedbackctl.authority.overlay_trace import (
    RenderedLocation,
    TargetError,
    Tracer,
    Untraced,
    _lookup,
    _same_value,
    _scalar,
    op_effect,
)
from feedbackctl.authority.yamldoc import KeyPath, YamlError, load_documents
from feedbackctl.core.models import Claim, ValueLocation
from feedbackctl.errors import FeedbackError

# --- overlays -> claims --------------------------------------------------------------------


@dataclass
class Overlays:
    """The claims rendered from the Kustomize roots under the claim paths."""

    claims: list[Claim] = field(default_factory=list)
    errors: list[FeedbackError] = field(default_factory=list)
    roots: tuple[str, ...] = ()  # every Kustomize root under the claim paths
    overlays: tuple[str, ...] = ()  # the roots that render effective claims
    bases: tuple[str, ...] = ()  # the roots only used by other roots

    def covers(self, path: str) -> bool:
        """Is ``path`` a Kustomize input (never a plain claim file)?"""
        return any(path.startswith(r + "/") or r == "" for r in self.roots)


def load_overlays(
    repo: GitRepo, commit: str, claim_paths: Sequence[str], kinds: Collection[str] | None = None
) -> Overlays:
    tree = Tree(repo, commit)
    roots = tree.roots(claim_paths)
    if not roots:
        return Overlays()
    result = Overlays(roots=tuple(roots))
    referenced: set[str] = set()
    usable = []
    for r in roots:
        try:
            k = tree.kustomization(r)
        except KustomizeError as e:
            result.errors.append(e)
            continue
        usable.append(r)
        referenced.update(e.path for e in k.reaches)
        if k.kind == "Component":
            referenced.add(r)
    result.overlays = tuple(r for r in usable if r not in referenced)
    result.bases = tuple(r for r in usable if r in referenced)
    renders = render(tree, result.overlays)
    tracer = Tracer(tree)
    for overlay in result.overlays:
        got = renders[overlay]
        if isinstance(got, KustomizeError):
            result.errors.append(got)
            continue
        try:
            for d in tree.reachable(overlay):
                tracer.check_targets(tree.kustomization(d))
        except TargetError as e:
            result.errors.append(e)
            continue
        except KustomizeError:
            pass  # a base that does not render on its own: its values stay untraced, with the reason
        k = tree.kustomization(overlay)
        parsed = parse_claims([(f"{overlay or '.'}/ (rendered)", "", got.text.encode())], kinds)
        result.errors.extend(parsed.errors)
        docs = {d.index: d.data for d in got.docs}
        for c in parsed.claims:
            locations = _trace_claim(tracer, overlay, docs[c.doc_index], c, result.overlays)
            result.claims.append(replace(c, path=k.path, blob=tree.blobs[k.path], locations=locations))
    result.claims = _mark_shared(result.claims)
    return result


def _trace_claim(
    tracer: Tracer, overlay: str, out: Mapping[str, Any], claim: Claim, overlays: tuple[str, ...]
) -> dict[str, ValueLocation]:
    locations: dict[str, ValueLocation] = {}
    k_path = tracer.tree.kustomization(overlay).path
    for name, value in claim.spec.items():
        if not _scalar(value):
            continue
        try:
            found = tracer.trace(overlay, out, str(name))
            if not _same_value(found.value, value):
                raise Untraced(
                    f"traced to {found.file} ({found.setter}) = {found.value!r}, "
                    f"but the overlay renders {value!r}"
                )
            loc = tracer.locate(found)
        except (Untraced, KustomizeError, YamlError) as why:
            locations[f"spec.{name}"] = RenderedLocation(
                k_path, 0, 0, 0, 0, 0, overlay=overlay, overlays=overlays, reason=str(why)
            )
            continue
        locations[f"spec.{name}"] = RenderedLocation(
            loc.path,
            loc.doc_index,
            loc.start,
            loc.end,
            loc.line,
            loc.column,
            key_path=found.key_path,
            inner_key_path=found.inner_key_path,
            inner_doc=found.inner_doc,
            setter=found.setter,
            overlay=overlay,
            overlays=overlays,
        )
    return locations


def _mark_shared(claims: list[Claim]) -> list[Claim]:
    """Give every location that sets several claims' values the list of those claims."""
    by_scalar: dict[tuple[str, int, int], list[str]] = {}
    for c in claims:
        for loc in c.locations.values():
            if isinstance(loc, RenderedLocation) and not loc.reason:
                by_scalar.setdefault((loc.path, loc.doc_index, loc.start), []).append(c.name)
    out = []
    for c in claims:
        locations = dict(c.locations)
        for key, loc in c.locations.items():
            names = by_scalar.get((loc.path, loc.doc_index, loc.start), [])
            if isinstance(loc, RenderedLocation) and not loc.reason and len(set(names)) > 1:
                locations[key] = replace(loc, shared_by=tuple(sorted(set(names))))
        out.append(replace(c, locations=locations))
    return out


# --- values of rendered claims in any version of a file (for history) ---------------------


def rendered_fields(claims: Iterable[Claim]) -> dict[str, list[tuple[str, str, RenderedLocation]]]:
    """File path -> (claim, field, location) for every traced value of a rendered claim."""
    out: dict[str, list[tuple[str, str, RenderedLocation]]] = {}
    for c in claims:
        for key, loc in c.locations.items():
            if isinstance(loc, RenderedLocation) and not loc.reason:
                out.setdefault(loc.path, []).append((c.name, key.removeprefix("spec."), loc))
    return out


def _ops_value(ops: Any, field_name: str) -> tuple[bool, Any]:
    found: tuple[bool, Any] = (False, None)
    if isinstance(ops, list):
        for op in ops:
            if op_effect(op, field_name) == "set":
                found = (True, op.get("value"))
    return found


def _value_at(data: Any, key_path: KeyPath, field_name: str) -> tuple[bool, Any]:
    """The value at ``key_path`` when it still sets ``field_name``; else search the list of ops."""
    try:
        value = _lookup(data, key_path)
    except (KeyError, IndexError, TypeError):
        value = None
    else:
        if len(key_path) >= 2 and key_path[-1] == "value" and isinstance(key_path[-2], int):
            op = _lookup(data, key_path[:-1])
            if op_effect(op, field_name) == "set":
                return True, value
        elif key_path[-2:] == ("spec", field_name):
            return True, value
    if len(key_path) >= 2 and key_path[-1] == "value":
        return _ops_value(data, field_name)
    return False, None


def read_values(
    path: str, content: bytes, entries: Sequence[tuple[str, str, RenderedLocation]]
) -> dict[str, dict[str, Any]]:
    """{claim: {field: value}} for rendered claims whose values ``content`` (a version of ``path``) sets.

    Uses the traced address (document, key path, op index), so a human edit of
    an overlay's patch is seen in every commit that made it. A version where
    the address no longer sets the field (ops reordered) is searched for the
    op; a version that cannot be read sets nothing.
    """
    out: dict[str, dict[str, Any]] = {}
    try:
        docs = {d.index: d for d in load_documents(path, content.decode("utf-8"))}
    except (YamlError, UnicodeDecodeError):
        return out
    for claim, field_name, loc in entries:
        doc = docs.get(loc.doc_index)
        if doc is None:
            continue
        if loc.inner_key_path is None:
            found, value = _value_at(doc.data, loc.key_path, field_name)
        else:
            try:
                inner_text = _lookup(doc.data, loc.key_path)
                inner = {d.index: d for d in load_documents(path, str(inner_text))}
            except (KeyError, IndexError, TypeError, YamlError):
                continue
            inner_doc = inner.get(loc.inner_doc)
            if inner_doc is None:
                continue
            found, value = _value_at(inner_doc.data, loc.inner_key_path, field_name)
        if found and _scalar(value):
            out.setdefault(claim, {})[field_name] = value
    return out
