"""Walks over one composed YAML document: value positions, alias budget, duplicate keys.

``authority/yamldoc.py`` composes each document with the C loader and hands the
node graph here. A plain document (no aliases, string keys, only the core tags)
is built and positioned in one walk; any other takes the general walk, which
resolves merge keys and counts alias expansion, and the safe constructor
builds its data.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from feedbackctl.core.models import ValueLocation
from feedbackctl.errors import FeedbackError

KeyPath = tuple[str | int, ...]

# Extra node visits (and merge-key copies) caused by aliases, per document. Claims
# use none; a billion-laughs document needs billions. Construction itself shares
# aliased objects, but every walk over the data (positions, comparisons, JSON
# output) would expand them.
MAX_ALIAS_EXPANSION = 100_000
# libyaml's composer recurses in C and crashes the process around 30k levels.
MAX_DEPTH = 1000

STR_TAG = "tag:yaml.org,2002:str"
NULL_TAG = "tag:yaml.org,2002:null"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


class YamlError(FeedbackError):
    """A YAML file cannot be read or edited safely; names the file and line."""


class Walk:
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

    def plain(
        self, root: Node, scalars: dict[str, Any]
    ) -> tuple[Any, dict[KeyPath, ValueLocation]] | None:
        """Data and positions in one walk, or None when the document is not plain.

        Plain: no aliases (the caller checks), string keys, no duplicate or merge
        keys, only the core tags. The safe constructor would build exactly this data
        (tests/test_yamldoc.py compares both paths); anything else takes the general
        walk and ``construct_document``, which also word its errors.
        """
        positions: dict[KeyPath, ValueLocation] = {}
        holder: list[Any] = [None]
        # (key path, node, container, slot): the node's value goes to container[slot].
        stack: list[tuple[KeyPath, Node, Any, Any]] = [((), root, holder, 0)]
        try:
            while stack:
                key_path, node, container, slot = stack.pop()
                tag = node.tag
                if type(node) is ScalarNode:
                    if tag == STR_TAG:
                        container[slot] = node.value
                    else:
                        container[slot] = scalars[tag](node)
                    positions[key_path] = self.location(node)
                elif type(node) is MappingNode and tag == _MAP_TAG:
                    mapping: dict[str, Any] = {}
                    container[slot] = mapping
                    children = []
                    for key_node, child in node.value:
                        if type(key_node) is not ScalarNode or key_node.tag != STR_TAG:
                            return None
                        key = key_node.value
                        if key in mapping:
                            return None
                        mapping[key] = None
                        children.append(((*key_path, key), child, mapping, key))
                    stack.extend(reversed(children))
                elif type(node) is SequenceNode and tag == _SEQ_TAG:
                    items = node.value
                    sequence: list[Any] = [None] * len(items)
                    container[slot] = sequence
                    stack.extend(
                        ((*key_path, i), items[i], sequence, i) for i in reversed(range(len(items)))
                    )
                else:
                    return None
        except (KeyError, IndexError, ValueError, TypeError, OverflowError):
            return None  # an unknown tag or a value its constructor refuses
        return holder[0], positions

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
            if not isinstance(key_node, ScalarNode) or key_node.tag != STR_TAG:
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


def scalar_constructors(loader: Any) -> dict[str, Any]:
    """The safe constructor's own functions for the core scalar tags (str is inlined)."""
    return {
        NULL_TAG: loader.construct_yaml_null,
        "tag:yaml.org,2002:bool": loader.construct_yaml_bool,
        "tag:yaml.org,2002:int": loader.construct_yaml_int,
        "tag:yaml.org,2002:float": loader.construct_yaml_float,
    }


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
