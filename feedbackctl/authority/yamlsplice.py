"""Edit one YAML value by splicing its text, then prove nothing else changed.

Edits splice the scalar's text and nothing else (the Renovate/pre-commit way),
then re-parse and check that only the target value changed. There is no ruamel
fallback: every scalar style can be spliced (a block scalar is rewritten as a
one-line scalar), and an edit that would change more than its target (an
anchored value, a tag that forces a type) is refused rather than reformatted.
Positions come from the reader, ``authority/yamldoc.py``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import yaml
from yaml.nodes import ScalarNode

from feedbackctl.authority.yamldoc import Doc, KeyPath, YamlError, format_key_path, load_documents
from feedbackctl.core.models import ValueLocation

_STR_TAG = "tag:yaml.org,2002:str"

def splice(text: str, loc: ValueLocation, new_value: int | float | str | bool) -> str:
    """Replace exactly the scalar at ``loc`` with ``new_value``, keeping its quoting.

    The written text always reads back as ``new_value`` with its type: a str
    stays in the original quotes (or plain when plain reads back as that str);
    a number or bool is written plain. A block scalar (``|``/``>``) becomes a
    one-line scalar, keeping a comment on its header line.
    """
    old = text[loc.start : loc.end]
    style = old[:1] if old[:1] in ("'", '"', "|", ">") else ""
    rendered = render_scalar(new_value, style, where=f"{loc.path}:{loc.line}")
    if style in ("|", ">"):
        header = old.split("\n", 1)[0]
        comment = re.search(r"[ \t]#[^\r\n]*", header)
        tail = old[len(old.rstrip()) :]
        rendered += f"  {comment.group().lstrip()}" if comment else ""
        return text[: loc.start] + rendered + tail + text[loc.end :]
    if loc.start == loc.end:  # an empty value: libyaml marks it right after `key:` or `-`
        at = loc.start
        if text[at : at + 1] in (" ", "\t"):
            at += 1
        elif at > 0 and text[at - 1] not in " \t\n":
            rendered = " " + rendered
        if text[at : at + 1] == "#":
            rendered += " "  # `key: # why` must keep its comment a comment
        return text[:at] + rendered + text[at:]
    return text[: loc.start] + rendered + text[loc.end :]


def edit_value(
    path: str, text: str, doc_index: int, key_path: KeyPath, new_value: int | float | str | bool
) -> str:
    """Set one existing scalar, then prove by re-parsing that nothing else changed."""
    field = format_key_path(key_path)
    docs = load_documents(path, text)
    doc = next((d for d in docs if d.index == doc_index), None)
    if doc is None:
        raise YamlError(f"{path}: has no YAML document {doc_index} to edit {field} in; re-read it")
    loc = doc.positions.get(key_path)
    if loc is None:
        found, current = _lookup(doc.data, key_path)
        if found:
            kind = "mapping" if isinstance(current, dict) else "sequence"
            raise YamlError(f"{path}: {field} is a {kind}, not a single value; edit it by hand")
        raise YamlError(
            f"{path}: {field} is not set, and adding a field is a structural edit; add it by hand"
        )
    new_text = splice(text, loc, new_value)
    try:
        after = load_documents(path, new_text)
    except YamlError as e:
        raise YamlError(
            f"{path}: setting {field} to {new_value!r} would break the YAML ({e}); edit it by hand"
        ) from None
    _verify(path, field, key_path, new_value, docs, after, doc_index)
    return new_text


def render_scalar(value: int | float | str | bool, style: str = "", where: str = "") -> str:
    """YAML text for ``value`` that reads back as exactly ``value``, in ``style`` if possible."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise YamlError(f"{where}: refusing to write {value!r}, which is not a finite number")
        text = repr(value)
        # YAML 1.1 floats need a dot: 1e+20 would read back as a string.
        if "." not in text:
            mantissa, _, exponent = text.partition("e")
            text = f"{mantissa}.0" + (f"e{exponent}" if exponent else "")
        return text
    if not isinstance(value, str):
        raise YamlError(f"{where}: cannot write a {type(value).__name__} as a single value")
    if style == "'" and _single_quotable(value):
        return "'" + value.replace("'", "''") + "'"
    if style in ("", "|", ">") and _plain_safe(value):
        return value
    return _double_quoted(value)


# --- writing -------------------------------------------------------------------------

_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./@+=()~$%:-]*(?: [A-Za-z0-9_./@+=()~$%:-]+)*")
# YAML 1.1 readers (PyYAML, yaml.v2) also read these as booleans.
_AMBIGUOUS_WORDS = frozenset({"y", "Y", "n", "N", "yes", "no", "on", "off"})
_RESOLVER = yaml.resolver.Resolver()
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"}


def _plain_safe(value: str) -> bool:
    if not _PLAIN.fullmatch(value) or value.lower() in _AMBIGUOUS_WORDS:
        return False
    if value.endswith(":") or ": " in value:
        return False
    tag: str = _RESOLVER.resolve(ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    return tag == _STR_TAG


def _printable(ch: str) -> bool:
    code = ord(ch)
    return (
        0x20 <= code <= 0x7E
        or 0xA0 <= code <= 0xD7FF
        or (0xE000 <= code <= 0xFFFD and code != 0xFEFF)
        or 0x10000 <= code <= 0x10FFFF
    ) and ch not in "\u2028\u2029"


def _single_quotable(value: str) -> bool:
    return all(_printable(ch) for ch in value)


def _double_quoted(value: str) -> str:
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif _printable(ch):
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


# --- verifying an edit ---------------------------------------------------------------


def _lookup(data: Any, key_path: KeyPath) -> tuple[bool, Any]:
    for part in key_path:
        in_mapping = isinstance(data, dict) and isinstance(part, str) and part in data
        in_sequence = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not (in_mapping or in_sequence):
            return False, None
        data = data[part]
    return True, data


def replaced(data: Any, key_path: KeyPath, value: Any) -> Any:
    """A copy of ``data`` with the value at ``key_path`` replaced; ``data`` itself is left as it is."""
    if not key_path:
        return value
    head, rest = key_path[0], key_path[1:]
    copy: Any = dict(data) if isinstance(data, Mapping) else list(data)
    copy[head] = replaced(data[head], rest, value)
    return copy


def _first_difference(a: Any, b: Any) -> KeyPath | None:
    """The first key path where ``a`` and ``b`` differ, comparing scalar types strictly."""
    stack: list[tuple[KeyPath, Any, Any]] = [((), a, b)]
    while stack:
        key_path, x, y = stack.pop()
        if x is y:
            continue
        if isinstance(x, dict) and isinstance(y, dict):
            if list(x) != list(y):
                keys = [k for k in {**x, **y} if k not in x or k not in y]
                return (*key_path, *keys[:1])
            stack.extend(((*key_path, k), x[k], y[k]) for k in reversed(list(x)))
        elif isinstance(x, list) and isinstance(y, list):
            if len(x) != len(y):
                return key_path
            pairs = list(enumerate(zip(x, y, strict=True)))
            stack.extend(((*key_path, i), p, q) for i, (p, q) in reversed(pairs))
        elif type(x) is not type(y) or not (x == y or _both_nan(x, y)):
            return key_path
    return None


def _both_nan(x: Any, y: Any) -> bool:
    return isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)


def _verify(
    path: str,
    field: str,
    key_path: KeyPath,
    new_value: Any,
    before: list[Doc],
    after: list[Doc],
    doc_index: int,
) -> None:
    if [d.index for d in before] != [d.index for d in after]:
        raise YamlError(f"{path}: setting {field} would change the file's documents; edit it by hand")
    for old, new in zip(before, after, strict=True):
        expected = replaced(old.data, key_path, new_value) if old.index == doc_index else old.data
        diff = _first_difference(expected, new.data)
        if diff is None:
            continue
        if old.index == doc_index and diff == key_path:
            _, got = _lookup(new.data, key_path)
            raise YamlError(
                f"{path}: {field} would read back as {got!r} ({type(got).__name__}), "
                f"not {new_value!r}; edit it by hand"
            )
        where = format_key_path(diff) or "the document"
        raise YamlError(
            f"{path}: setting {field} would also change {where} (an anchor or alias shares "
            "the value); edit it by hand"
        )
