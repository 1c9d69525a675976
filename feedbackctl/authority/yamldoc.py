"""Read YAML fast and safely with every scalar's text span.

Reading uses PyYAML's C loader (libyaml): composing the node graph gives each
scalar's exact span (libyaml marks count characters, not bytes), then plain
data is built from it (``authority/yamlwalk.py``). Never ruamel round-trip for
reads: it is ~100x slower on a fleet of claims.

Positions are computed eagerly for every scalar leaf reached through string
mapping keys and sequence indices. Leaves under non-string keys (``1:``,
``on:``) get no position. Edits splice at those positions
(``authority/yamlsplice.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import Node, ScalarNode

from feedbackctl.authority.yamlwalk import MAX_DEPTH, NULL_TAG, Walk, scalar_constructors
from feedbackctl.authority.yamlwalk import KeyPath as KeyPath
from feedbackctl.authority.yamlwalk import YamlError as YamlError
from feedbackctl.core.models import ValueLocation
from feedbackctl.errors import FeedbackError

try:
    _Loader: type[yaml.CSafeLoader] | type[yaml.SafeLoader] = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml
    _Loader = yaml.SafeLoader

MAX_FILE_BYTES = 10 * 1024 * 1024
_TAG_PROBLEM = re.compile(r"could not determine a constructor for the tag '([^']*)'")


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
    may_alias = "*" in text
    scalars = scalar_constructors(loader)
    try:
        if _nesting_bound(text) > MAX_DEPTH:
            _check_depth(path, text, shift)
        while loader.check_node():
            node = loader.get_node()
            if node is not None and not _is_empty(node):
                walk = Walk(path, text, index, shift, may_alias)
                built = None if may_alias else walk.plain(node, scalars)
                if built is None:
                    positions = walk.positions(node)
                    built = _construct(path, loader, node), positions
                docs.append(Doc(index, built[0], built[1], _line(node)))
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
    except (ValueError, TypeError, OverflowError, KeyError, IndexError) as e:
        # The safe constructor's own conversions: `!!int abc` (ValueError), and
        # `!!bool maybe` or `!!int ''`, which it lets escape as KeyError and IndexError.
        raise YamlError(
            f"{path}:{_line(node)}: malformed YAML value ({_one_line(str(e))}); fix the file"
        ) from None


def _short_tag(tag: str) -> str:
    prefix = "tag:yaml.org,2002:"
    return "!!" + tag[len(prefix) :] if tag.startswith(prefix) else tag


def _is_empty(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == NULL_TAG


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
