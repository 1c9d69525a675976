"""Editing a rendered claim where its value is set, proven by re-rendering every overlay.

The edit is a splice of the one traced scalar (inside the block scalar of an
inline patch, or in a patch file or base resource), re-parsed to show that
only that value moved. Then every overlay whose inputs changed is rendered
again and compared, document by document, with its render at the base
commit: the intended claims must render the new value and nothing else in any
rendered document may differ. Otherwise the edit is undone and refused.

A value set where several claims share it (a base used by several overlays)
is refused unless the caller asks for a batch (``batch=True``): then every
sharing claim must change, and only those.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.kustomize import Kustomization, KustomizeError, Patch, Tree
from feedbackctl.authority.kustomize_render import render, render_one
from feedbackctl.authority.overlay_trace import (
    RenderedLocation,
    Tracer,
    Untraced,
    block_lines,
    map_inline,
    op_effect,
    selects,
)
from feedbackctl.authority.yamldoc import KeyPath, YamlError, load_documents
from feedbackctl.authority.yamlsplice import edit_value, render_scalar, replaced
from feedbackctl.core.models import Claim, Scalar
from feedbackctl.errors import ClaimError

# (claim kind, claim name, field) -> the value the edit must render
Expected = dict[tuple[str, str, str], Scalar]


class StagedTexts(Protocol):
    repo: GitRepo
    base: str
    texts: dict[str, str]
    rendered: Expected

    def text(self, path: str) -> str: ...


class EditRefused(Exception):
    """Internal: why the staged edit does not do exactly what was intended."""


def set_rendered_value(
    staging: StagedTexts, claim: Claim, field_name: str, value: int | float | str | bool, *, batch: bool
) -> str:
    """Edit where ``spec.<field>`` of a rendered claim is set; verify by re-rendering."""
    loc = claim.locations[f"spec.{field_name}"]
    assert isinstance(loc, RenderedLocation)
    if loc.reason:
        raise ClaimError(
            claim.name,
            f"spec.{field_name} cannot be traced to where it is set ({loc.reason}); "
            f"edit {loc.overlay or '.'}/ by hand",
        )
    where = f"{loc.path}:{loc.line}"
    others = [n for n in loc.shared_by if n != claim.name]
    if others and not batch:
        raise ClaimError(
            claim.name,
            f"spec.{field_name} is set in {where}, shared with {', '.join(others)}: editing it there "
            f"changes {len(loc.shared_by)} claims (a batch change), and overriding it in one overlay "
            "is a structural edit; only a proposal may do either",
        )
    saved_texts, saved_expected = dict(staging.texts), dict(staging.rendered)
    try:
        text = staging.text(loc.path)
        staging.texts[loc.path] = splice(loc, text, field_name, value)
        for name in loc.shared_by or (claim.name,):
            staging.rendered[(claim.kind, name, field_name)] = value
        verify(staging.repo, staging.base, staging.texts, staging.rendered, loc.overlays)
    except (EditRefused, YamlError, KustomizeError) as why:
        staging.texts.clear()
        staging.texts.update(saved_texts)
        staging.rendered.clear()
        staging.rendered.update(saved_expected)
        raise ClaimError(
            claim.name,
            f"setting spec.{field_name} to {value!r} at {where} ({loc.setter}): {why}; nothing was written",
        ) from None
    return loc.path


def override_in_overlay(
    staging: StagedTexts, claim: Claim, field_name: str, value: int | float | str | bool
) -> str:
    """Add a ``replace`` op for ``spec.<field>`` to the claim's own overlay (a structural edit).

    For a value the claim shares with others through a base: only this claim
    changes. The op goes at the end of the last inline JSON 6902 patch of the
    overlay that targets the claim; re-rendering proves nothing else moved.
    Only proposals may make structural edits.
    """
    loc = claim.locations.get(f"spec.{field_name}")
    if not isinstance(loc, RenderedLocation):
        raise ClaimError(claim.name, f"spec.{field_name} is not rendered by a Kustomize overlay to override")
    saved_texts, saved_expected = dict(staging.texts), dict(staging.rendered)
    path = loc.overlay
    try:
        tree = Tree(staging.repo, staging.base, overrides=staging.texts)
        k = tree.kustomization(loc.overlay)
        path = k.path
        patch = _patch_for(Tracer(tree), tree, k, claim, field_name)
        staging.texts[k.path] = _append_op(
            k.path, staging.text(k.path), k.doc.index, patch, field_name, value
        )
        staging.rendered[(claim.kind, claim.name, field_name)] = value
        verify(staging.repo, staging.base, staging.texts, staging.rendered, loc.overlays)
    except (EditRefused, Untraced, YamlError, KustomizeError) as why:
        staging.texts.clear()
        staging.texts.update(saved_texts)
        staging.rendered.clear()
        staging.rendered.update(saved_expected)
        raise ClaimError(
            claim.name, f"overriding spec.{field_name} with {value!r} in {path}: {why}; nothing was written"
        ) from None
    return path


def _patch_for(tracer: Tracer, tree: Tree, k: Kustomization, claim: Claim, field_name: str) -> Patch:
    out = next(
        (
            d.data
            for d in render_one(tree, k.dir).docs
            if isinstance(d.data, Mapping)
            and d.data.get("kind") == claim.kind
            and (d.data.get("metadata") or {}).get("name") == claim.name
        ),
        None,
    )
    if out is None:
        raise EditRefused(f"{k.dir or '.'}/ does not render {claim.name}")
    source = tracer.source_of(k, out).data
    names = tracer.names_of(k, source)
    inline = [
        p
        for p in k.patches
        if p.json6902
        and p.file is None
        and p.key_path[:1] == ("patches",)
        and p.target is not None
        and selects(p.target, source, names) is True
    ]
    if not inline:
        raise EditRefused(f"no inline JSON 6902 patch there targets {claim.name}; add the op by hand")
    if any(op_effect(op, field_name) for p in inline for op in p.docs[0].data):
        raise EditRefused(f"a patch there already changes spec.{field_name}; edit it by hand")
    return inline[-1]


def _append_op(
    path: str, text: str, doc_index: int, patch: Patch, field_name: str, value: int | float | str | bool
) -> str:
    docs = {d.index: d for d in load_documents(path, text)}
    doc = docs[doc_index]
    outer = doc.positions.get(patch.key_path)
    inner = _get(doc.data, patch.key_path)
    layout = block_lines(text, outer) if outer is not None else None
    if layout is None or not isinstance(inner, str):
        raise EditRefused(f"{patch.where} is not a literal block scalar (|) to add an op to; edit it by hand")
    indent, starts = layout
    lines = inner.split("\n")
    item = next((ln for ln in lines if ln.lstrip().startswith("- ")), None)
    content = [i for i, ln in enumerate(lines) if ln.strip()]
    if item is None or not content or content[-1] >= len(starts):
        raise EditRefused(f"{patch.where} is not a block list of ops; edit it by hand")
    pad = " " * (indent + len(item) - len(item.lstrip()))
    newline = text.find("\n", starts[content[-1]])
    at = len(text) if newline < 0 else newline + 1
    shown = render_scalar(value, where=f"{path}:{patch.where}")
    op = f"{pad}- op: replace\n{pad}  path: /spec/{field_name}\n{pad}  value: {shown}\n"
    new_text = text[:at] + ("\n" if newline < 0 else "") + op + text[at:]
    after_docs = load_documents(path, new_text)
    after = {d.index: d for d in after_docs}.get(doc_index)
    new_inner = _get(after.data, patch.key_path) if after is not None else None
    ops = load_documents(path, new_inner)[0].data if isinstance(new_inner, str) else None
    want_ops = [*patch.docs[0].data, {"op": "replace", "path": f"/spec/{field_name}", "value": value}]
    same_rest = after is not None and _dump(replaced(after.data, patch.key_path, inner)) == _dump(doc.data)
    if len(after_docs) != len(docs) or not same_rest or _dump(ops) != _dump(want_ops):
        raise EditRefused(f"adding the op to {patch.where} would change more than that patch")
    return new_text


def splice(loc: RenderedLocation, text: str, field_name: str, value: int | float | str | bool) -> str:
    """The file's text with the traced scalar set to ``value`` (and nothing else changed)."""
    if loc.inner_key_path is None:
        docs = {d.index: d for d in load_documents(loc.path, text)}
        doc = docs.get(loc.doc_index)
        _check_still_sets(doc.data if doc is not None else None, loc.key_path, field_name)
        return edit_value(loc.path, text, loc.doc_index, loc.key_path, value)
    return _splice_inline(loc, text, field_name, value)


def _get(data: Any, key_path: KeyPath) -> Any:
    for part in key_path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _check_still_sets(data: Any, key_path: KeyPath, field_name: str) -> None:
    is_op_value = len(key_path) >= 2 and key_path[-1] == "value" and isinstance(key_path[-2], int)
    if is_op_value and op_effect(_get(data, key_path[:-1]), field_name) != "set":
        raise EditRefused(f"the op at {list(key_path[:-1])} no longer sets /spec/{field_name}; re-read")


def _splice_inline(loc: RenderedLocation, text: str, field_name: str, value: int | float | str | bool) -> str:
    assert loc.inner_key_path is not None
    docs = {d.index: d for d in load_documents(loc.path, text)}
    doc = docs.get(loc.doc_index)
    outer = doc.positions.get(loc.key_path) if doc is not None else None
    inner_text = _get(doc.data, loc.key_path) if doc is not None else None
    if doc is None or outer is None or not isinstance(inner_text, str):
        raise EditRefused(f"{loc.path} no longer has the patch text at {list(loc.key_path)}; re-read")
    label = f"{loc.path} ({loc.setter})"
    inner_docs = {d.index: d for d in load_documents(label, inner_text)}
    inner_doc = inner_docs.get(loc.inner_doc)
    _check_still_sets(inner_doc.data if inner_doc is not None else None, loc.inner_key_path, field_name)
    new_inner = edit_value(label, inner_text, loc.inner_doc, loc.inner_key_path, value)
    assert inner_doc is not None
    iloc = inner_doc.positions[loc.inner_key_path]
    tail = len(inner_text) - iloc.end
    written = new_inner[iloc.start : len(new_inner) - tail]
    mapped = map_inline(text, outer, inner_text, iloc.start, iloc.end)
    if mapped is None or "\n" in written:
        raise EditRefused("the patch text is not a literal block scalar (|) to splice into; edit it by hand")
    start, end, _, _ = mapped
    new_text = text[:start] + written + text[end:]
    after = {d.index: d for d in load_documents(loc.path, new_text)}
    expected = replaced(doc.data, loc.key_path, new_inner)
    got = after.get(loc.doc_index)
    if got is None or _dump(got.data) != _dump(expected) or len(after) != len(docs):
        raise EditRefused(f"splicing {loc.path} would change more than the op's value")
    return new_text


def _dump(data: Any) -> str:
    return json.dumps(data, sort_keys=True, default=str)


# --- verification by rendering ---------------------------------------------------------------


def _difference(want: Any, got: Any, path: str = "") -> tuple[str, Any, Any] | None:
    if isinstance(want, Mapping) and isinstance(got, Mapping):
        for key in dict.fromkeys([*want, *got]):
            sub = f"{path}.{key}" if path else str(key)
            if key not in want or key not in got:
                return sub, want.get(key), got.get(key)
            found = _difference(want[key], got[key], sub)
            if found is not None:
                return found
        return None
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        for i, (a, b) in enumerate(zip(want, got, strict=True)):
            found = _difference(a, b, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    return None if _dump(want) == _dump(got) else (path, want, got)


def _doc_name(data: Mapping[str, Any]) -> str:
    meta = data.get("metadata")
    return str(meta.get("name") or "") if isinstance(meta, Mapping) else ""


def verify(
    repo: GitRepo, base: str, texts: Mapping[str, str], expected: Expected, overlays: Sequence[str]
) -> None:
    """Raise EditRefused unless the staged texts render exactly the expected changes."""
    before, after = Tree(repo, base), Tree(repo, base, overrides=texts)
    edited = [p for p in texts if before.blobs.get(p) != after.blobs.get(p)]
    changed: list[str] = []
    for d in overlays:
        try:
            dirs = before.reachable(d)
        except KustomizeError:
            continue  # broken at the base commit already: it renders no claims to protect
        if any(x == "" or p.startswith(x + "/") for p in edited for x in dirs):
            changed.append(d)
    olds, news = render(before, changed), render(after, changed)
    reached: set[tuple[str, str]] = set()
    for d in changed:
        old_render, new_render = olds[d], news[d]
        if isinstance(old_render, KustomizeError):
            continue
        if isinstance(new_render, KustomizeError):
            raise EditRefused(f"the edit breaks {d or '.'}/ ({new_render})")
        if len(old_render.docs) != len(new_render.docs):
            raise EditRefused(f"the edit changes which resources {d or '.'}/ renders")
        for old_doc, new_doc in zip(old_render.docs, new_render.docs, strict=True):
            want = old_doc.data
            kind, name = (want.get("kind"), _doc_name(want)) if isinstance(want, Mapping) else (None, "")
            fields = {f: v for (k, n, f), v in expected.items() if (k, n) == (kind, name)}
            if fields and isinstance(want, Mapping) and isinstance(want.get("spec"), Mapping):
                want = {**want, "spec": {**want["spec"], **fields}}
                reached.add((str(kind), name))
            diff = _difference(want, new_doc.data)
            if diff is None:
                continue
            where, wanted, got = diff
            label = f"{name or kind or 'a document'} {where}".strip()
            if where.startswith("spec.") and where.removeprefix("spec.") in fields:
                raise EditRefused(f"{d or '.'}/ then renders {label} as {got!r}, not {wanted!r}")
            raise EditRefused(f"it would also change {label} ({wanted!r} -> {got!r}) in {d or '.'}/")
    missing = sorted({n for (k, n, _) in expected if (k, n) not in reached})
    if missing:
        raise EditRefused(f"no overlay renders a changed {', '.join(missing)}")
