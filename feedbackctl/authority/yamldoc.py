"""Read YAML fast and safely with every scalar's text span; edit one value by splicing.

Reading uses PyYAML's C loader (libyaml): composing the node graph gives each
scalar's exact span (libyaml marks count characters, not bytes), then the safe
constructor builds plain data. Never ruamel round-trip for reads: it is ~100x
slower on a fleet of claims.

Positions are computed eagerly for every scalar leaf reached through string
mapping keys and sequence indices (about a fifth of the parse time on small
claim files). Leaves under non-string keys (``1:``, ``on:``) get no position.

Edits splice the scalar's text and nothing else (the Renovate/pre-commit way),
then re-parse and check that only the target value changed. There is no ruamel
fallback: every scalar style can be spliced (a block scalar is rewritten as a
one-line scalar), and an edit that would change more than its target (an
anchored value, a tag that forces a type) is refused rather than reformatted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from feedbackctl.core.models import ValueLocation
from feedbackctl.errors import FeedbackError

try:
    _Loader: type[yaml.CSafeLoader] | type[yaml.SafeLoader] = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml
    _Loader = yaml.SafeLoader

KeyPath = tuple[str | int, ...]

MAX_FILE_BYTES = 10 * 1024 * 1024
# Extra node visits (and merge-key copies) caused by aliases, per document. Claims
# use none; a billion-laughs document needs billions. Construction itself shares
# aliased objects, but every walk over the data (positions, comparisons, JSON
# output) would expand them.
MAX_ALIAS_EXPANSION = 100_000
# libyaml's composer recurses in C and crashes the process around 30k levels.
MAX_DEPTH = 1000

_STR_TAG = "tag:yaml.org,2002:str"
_NULL_TAG = "tag:yaml.org,2002:null"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_TAG_PROBLEM = re.compile(r"could not determine a constructor for the tag '([^']*)'")


class YamlError(FeedbackError):
    """A YAML file cannot be read or edited safely; names the file and line."""


@dataclass(frozen=True)
class Doc:
    """One non-empty document of a YAML stream.

    ``index`` counts every document in the stream, empty ones included, so it
    stays stable when an empty document is skipped.
    """

    index: int
    data: Any
    positions: dict[KeyPath, ValueLocation]
    line: int = 1  # 1-based line where the document's content starts


def format_key_path(key_path: KeyPath) -> str:
    """('spec', 'items', 0, 'max') -> 'spec.items[0].max'."""
    out = ""
    for part in key_path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


class OversizedBlob(bytes):
    """Stands in for a blob over ``MAX_FILE_BYTES``: empty, with the real ``size``.

    Git reports sizes before anything is read, so a huge blob never reaches memory.

    Readers check ``content_size`` before decoding; one that does not still
    cannot mistake it for an empty file, because decoding it is refused.
    """

    size: int

    def __new__(cls, size: int) -> OversizedBlob:
        blob = super().__new__(cls, b"")
        blob.size = size
        return blob

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise FeedbackError(
            f"a file of {self.size / 1024 / 1024:.1f} MB in git is over the "
            f"{MAX_FILE_BYTES // 1024 // 1024} MB limit; it was not read"
        )


def content_size(content: bytes) -> int:
    """The size of a blob as git stores it (an ``OversizedBlob`` is empty in memory)."""
    return content.size if isinstance(content, OversizedBlob) else len(content)


def check_size(path: str, size: int) -> None:
    if size > MAX_FILE_BYTES:
        raise YamlError(
            f"{path}: file is {size / 1024 / 1024:.1f} MB, over the "
            f"{MAX_FILE_BYTES // 1024 // 1024} MB limit for YAML; split it or move it "
            "out of the claims path"
        )


def load_documents(path: str, text: str) -> list[Doc]:
    """Parse every document of ``text``; raise YamlError naming ``path`` and line."""
    if len(text) * 4 > MAX_FILE_BYTES:
        check_size(path, len(text.encode("utf-8", "surrogatepass")))
    # libyaml drops a byte-order mark from its offsets; the text keeps it.
    shift = 1 if text.startswith("\ufeff") else 0
    try:
        loader = _Loader(text)
    except UnicodeEncodeError as e:
        line = text.count("\n", 0, e.start) + 1
        raise YamlError(
            f"{path}:{line}: text is not valid Unicode (a lone surrogate); save the file as UTF-8"
        ) from None
    docs: list[Doc] = []
    index = 0
    try:
        if _nesting_bound(text) > MAX_DEPTH:
            _check_depth(path, text, shift)
        while loader.check_node():
            node = loader.get_node()
            if node is not None and not _is_empty(node):
                walk = _Walk(path, text, index, shift, may_alias="*" in text)
                positions = walk.positions(node)
                docs.append(Doc(index, _construct(path, loader, node), positions, _line(node)))
            index += 1
    except yaml.MarkedYAMLError as e:
        raise _marked_error(path, e) from None
    except yaml.reader.ReaderError as e:
        raise _reader_error(path, text, shift, e) from None
    except yaml.YAMLError as e:
        raise YamlError(f"{path}: malformed YAML ({_one_line(str(e))}); fix the file") from None
    except RecursionError:
        raise YamlError(f"{path}: YAML nests or merges too deeply; flatten the file") from None
    finally:
        loader.dispose()
    return docs


def load_data(path: str, text: bytes | str) -> Any:
    """The plain data of a one-document YAML file (None when empty), under the same limits.

    Every YAML the tool reads that needs no positions (config, policies,
    sidecars, proposal records, mappings) comes through here, so an alias bomb
    or a deep nest is refused the same way wherever it is planted.
    """
    if isinstance(text, bytes):
        check_size(path, content_size(text))
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError as e:
            line = text.count(b"\n", 0, e.start) + 1
            raise YamlError(f"{path}:{line}: text is not UTF-8; save the file as UTF-8") from None
    else:
        decoded = text
    docs = load_documents(path, decoded)
    if len(docs) > 1:
        raise YamlError(
            f"{path}:{docs[1].line}: expected one YAML document, found more; keep one per file"
        )
    return docs[0].data if docs else None


def plain_fast_path_ok(content: bytes) -> bool:
    """Whether a bare C-loader parse of ``content`` is as safe as ``load_documents``.

    Readers of many old versions (history) skip positions for speed; only text
    with no aliases or merge keys and a small nesting bound may take that path.
    """
    if len(content) > MAX_FILE_BYTES or b"*" in content or b"<<" in content:
        return False
    return _nesting_bound(content.decode("latin-1")) <= MAX_DEPTH


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


# --- reading -------------------------------------------------------------------------


class _Walk:
    """One pass over a composed document: scalar positions, alias budget, duplicate keys."""

    def __init__(self, path: str, text: str, index: int, shift: int, may_alias: bool) -> None:
        self.path = path
        self.text = text
        self.index = index
        self.shift = shift
        self.seen: set[int] | None = set() if may_alias else None
        self.expansion = 0
        self.merged: dict[int, tuple[list[tuple[str | None, Node]], int]] = {}
        self.merging: set[int] = set()

    def positions(self, root: Node) -> dict[KeyPath, ValueLocation]:
        positions: dict[KeyPath, ValueLocation] = {}
        # A None key path: under a non-string key, walked for the alias budget only.
        stack: list[tuple[KeyPath | None, Node, int]] = [((), root, 0)]
        while stack:
            key_path, node, depth = stack.pop()
            if self.seen is not None:
                self.visit(node, depth)
            if isinstance(node, ScalarNode):
                if key_path is not None:
                    positions[key_path] = self.location(node)
            elif isinstance(node, SequenceNode):
                stack.extend(
                    (None if key_path is None else (*key_path, i), node.value[i], depth + 1)
                    for i in reversed(range(len(node.value)))
                )
            elif isinstance(node, MappingNode):
                stack.extend(
                    (None if key_path is None or key is None else (*key_path, key), child, depth + 1)
                    for key, child in reversed(self.pairs(node)[0])
                )
        return positions

    def visit(self, node: Node, depth: int) -> None:
        assert self.seen is not None
        if id(node) in self.seen:
            self.spend(1, node)
        else:
            self.seen.add(id(node))
        if depth > MAX_DEPTH:  # only aliases can nest deeper than the text does
            raise YamlError(
                f"{self.path}:{node.start_mark.line + 1}: YAML aliases refer to themselves or "
                f"nest deeper than {MAX_DEPTH} levels; remove the anchors"
            )

    def spend(self, visits: int, node: Node) -> None:
        self.expansion += visits
        if self.expansion > MAX_ALIAS_EXPANSION:
            raise YamlError(
                f"{self.path}:{node.start_mark.line + 1}: YAML aliases expand too much "
                "(possible alias bomb); remove the anchors"
            )

    def pairs(self, node: MappingNode) -> tuple[list[tuple[str | None, Node]], int]:
        """Entries as the safe constructor sees them (merge keys resolved); None for non-str keys.

        Also returns how many entries PyYAML's flatten_mapping will copy for this
        mapping: it does not deduplicate, so nested merges can explode there even
        when the resolved keys are few.
        """
        cached = self.merged.get(id(node))
        if cached is not None:
            return cached
        explicit: dict[str, Node] = {}
        merged: dict[str, Node] = {}
        hidden: list[Node] = []
        flat = 0
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                for source in self.merge_sources(value_node):
                    source_pairs, source_flat = self.pairs(source)
                    flat += source_flat
                    for key, child in source_pairs:
                        if key is None:
                            hidden.append(child)
                        else:
                            merged.setdefault(key, child)
                continue
            flat += 1
            if not isinstance(key_node, ScalarNode) or key_node.tag != _STR_TAG:
                hidden.append(value_node)
                continue
            if key_node.value in explicit:
                raise YamlError(
                    f"{self.path}:{key_node.start_mark.line + 1}: duplicate key "
                    f"'{key_node.value}' in one mapping; remove one of them"
                )
            explicit[key_node.value] = value_node
        if merged:
            self.spend(flat, node)
        merged.update(explicit)
        entries: list[tuple[str | None, Node]] = [*merged.items(), *((None, v) for v in hidden)]
        result = (entries, flat)
        self.merged[id(node)] = result
        return result

    def merge_sources(self, value: Node) -> Iterator[MappingNode]:
        if id(value) in self.merging:
            raise YamlError(
                f"{self.path}:{value.start_mark.line + 1}: YAML merge key refers to itself; "
                "remove the anchors"
            )
        self.merging.add(id(value))
        candidates = value.value if isinstance(value, SequenceNode) else [value]
        for candidate in candidates:
            if isinstance(candidate, MappingNode):
                yield candidate
        self.merging.discard(id(value))

    def location(self, node: ScalarNode) -> ValueLocation:
        mark = node.start_mark
        start = mark.index + self.shift
        end = node.end_mark.index + self.shift
        line, column = mark.line + 1, mark.column + 1
        if start < end and self.text[start] in "&!":
            # An anchor or tag starts the node's span; the value follows it.
            skipped = _skip_properties(self.text, start, end)
            line += self.text.count("\n", start, skipped)
            newline = self.text.rfind("\n", start, skipped)
            column = skipped - newline if newline >= 0 else column + skipped - start
            start = skipped
        return ValueLocation(self.path, self.index, start, end, line, column)


def _skip_properties(text: str, start: int, end: int) -> int:
    i = start
    while i < end and text[i] in "&!":
        while i < end and text[i] not in " \t\r\n":
            i += 1
        while i < end:
            if text[i] in " \t\r\n":
                i += 1
            elif text[i] == "#":
                newline = text.find("\n", i, end)
                i = end if newline < 0 else newline
            else:
                break
    return i


def _construct(path: str, loader: Any, node: Node) -> Any:
    try:
        return loader.construct_document(node)
    except yaml.constructor.ConstructorError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else _line(node)
        tag = _TAG_PROBLEM.search(e.problem or "")
        if tag:
            raise YamlError(
                f"{path}:{line}: YAML tag '{_short_tag(tag.group(1))}' is not allowed "
                "(only plain data: no Python objects or custom tags); remove the tag"
            ) from None
        raise YamlError(f"{path}:{line}: malformed YAML ({e.problem}); fix the file") from None
    except (ValueError, TypeError, OverflowError) as e:
        # The safe constructor's own conversions, e.g. `!!int abc`.
        raise YamlError(
            f"{path}:{_line(node)}: malformed YAML value ({_one_line(str(e))}); fix the file"
        ) from None


def _short_tag(tag: str) -> str:
    prefix = "tag:yaml.org,2002:"
    return "!!" + tag[len(prefix) :] if tag.startswith(prefix) else tag


def _is_empty(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL_TAG


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _marked_error(path: str, e: yaml.MarkedYAMLError) -> YamlError:
    mark = e.problem_mark or e.context_mark
    where = f"{path}:{mark.line + 1}" if mark is not None else path
    problem = e.problem or e.context or "unknown problem"
    if "nesting depth" in problem:
        # Newer libyaml builds stop at the same depth before our own event walk
        # sees it: the user gets the same answer whichever layer notices.
        return _too_deep(where)
    return YamlError(f"{where}: malformed YAML ({problem}); fix the file")


def _reader_error(path: str, text: str, shift: int, e: yaml.reader.ReaderError) -> YamlError:
    char = e.character
    code = char if isinstance(char, int) else ord(char) if char else 0
    line = text.count("\n", 0, max(e.position + shift, 0)) + 1
    return YamlError(
        f"{path}:{line}: unreadable YAML (character #x{code:04x}: {e.reason}); remove the character"
    )


def _too_deep(where: str) -> YamlError:
    return YamlError(f"{where}: YAML nests deeper than {MAX_DEPTH} levels; flatten the file")


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _nesting_bound(text: str) -> int:
    """An upper bound on collection nesting, at C speed.

    A nested block collection starts at a greater column than its parent (a
    sequence under a mapping key may share the column, once), so block nesting
    is at most twice the longest line; each flow level needs its own `[` or `{`.
    """
    longest = max(map(len, text.split("\n")))
    return 2 * (longest + 1) + text.count("[") + text.count("{")


def _check_depth(path: str, text: str, shift: int) -> None:
    loader = _Loader(text)
    depth = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    line = event.start_mark.line + 1 if event.start_mark else 1
                    raise _too_deep(f"{path}:{line}")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.MarkedYAMLError as e:
        raise _marked_error(path, e) from None
    except yaml.reader.ReaderError as e:
        raise _reader_error(path, text, shift, e) from None
    finally:
        loader.dispose()


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
