"""Reading YAML with scalar positions, and minimal edits by splicing."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedbackctl.authority import yamlwalk
from feedbackctl.authority.yamldoc import KeyPath, YamlError, format_key_path, load_documents
from feedbackctl.authority.yamlsplice import edit_value, render_scalar, splice
from tests import kustomizefix

CORPUS = kustomizefix.CORPUS / "examples" / "claims"
PROD = "claims/messagewall-prod.yaml"


def corpus_text(name: str) -> str:
    return (CORPUS / name).read_text(encoding="utf-8")


def scalar_paths(data: Any, prefix: KeyPath = ()) -> dict[KeyPath, Any]:
    """Every scalar leaf of plain data, by key path."""
    if isinstance(data, dict):
        out: dict[KeyPath, Any] = {}
        for key, value in data.items():
            out.update(scalar_paths(value, (*prefix, key)))
        return out
    if isinstance(data, list):
        out = {}
        for i, value in enumerate(data):
            out.update(scalar_paths(value, (*prefix, i)))
        return out
    return {prefix: data}


def typed(data: Any) -> Any:
    """Data with scalar types made explicit, so 1 == 1.0 == True stop comparing equal."""
    if isinstance(data, dict):
        return {k: typed(v) for k, v in data.items()}
    if isinstance(data, list):
        return [typed(v) for v in data]
    return (type(data).__name__, data)


def changed_lines(before: str, after: str) -> list[int]:
    old, new = before.split("\n"), after.split("\n")
    assert len(old) == len(new), "an edit must not add or remove lines"
    return [i + 1 for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]


# --- positions ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["messagewall-prod.yaml", "messagewall-dev.yaml"])
def test_every_scalar_position_in_the_corpus_claims_is_exact(name: str) -> None:
    text = corpus_text(name)
    docs = load_documents(f"claims/{name}", text)
    assert [d.index for d in docs] == [0]  # the comment block before `---` is no document
    doc = docs[0]
    leaves = scalar_paths(doc.data)
    assert set(doc.positions) == set(leaves)
    lines = text.split("\n")
    for key_path, loc in doc.positions.items():
        span = text[loc.start : loc.end]
        assert yaml.safe_load(span) == leaves[key_path], key_path
        assert lines[loc.line - 1][loc.column - 1 :].startswith(span), key_path
        assert (loc.path, loc.doc_index) == (f"claims/{name}", 0)


def test_corpus_prod_positions_by_hand() -> None:
    text = corpus_text("messagewall-prod.yaml")
    doc = load_documents(PROD, text)[0]
    memory = doc.positions[("spec", "lambdaMemory")]
    account = doc.positions[("spec", "awsAccountId")]
    precious = doc.positions[("metadata", "annotations", "confighub.io/precious")]
    assert (text[memory.start : memory.end], memory.line, memory.column) == ("256", 46, 17)
    assert (text[account.start : account.end], account.line) == ('"123456789012"', 41)
    assert text[precious.start : precious.end] == '"true"'
    assert doc.line == 25


def test_positions_of_nested_flow_and_sequence_values() -> None:
    text = (
        "spec:\n"
        "  autoTune:\n"
        "    memoryBounds: {min: 128, max: 1024}  # bounds\n"
        "  sizes:\n"
        "    - 1\n"
        "    - 'two'\n"
        '  pair: [3, "four"]\n'
    )
    positions = load_documents("c.yaml", text)[0].positions
    spans = {format_key_path(k): text[v.start : v.end] for k, v in positions.items()}
    assert spans == {
        "spec.autoTune.memoryBounds.min": "128",
        "spec.autoTune.memoryBounds.max": "1024",
        "spec.sizes[0]": "1",
        "spec.sizes[1]": "'two'",
        "spec.pair[0]": "3",
        "spec.pair[1]": '"four"',
    }


def test_anchor_tag_and_empty_values_point_at_the_value_text() -> None:
    text = "a: &m 256\nb: !!str 5\nc: *m\nd:\ne: &x\n  # why\n  7\n"
    doc = load_documents("c.yaml", text)[0]
    spans = {k: text[v.start : v.end] for k, v in doc.positions.items()}
    assert spans == {("a",): "256", ("b",): "5", ("c",): "256", ("d",): "", ("e",): "7"}
    assert (doc.positions[("e",)].line, doc.positions[("e",)].column) == (7, 3)


def test_multi_document_indices_stay_stable_across_empty_documents() -> None:
    text = "# header\n---\n---\na: 1\n...\n---\n# only a comment\n---\nb: 2\n---\nnull\n"
    docs = load_documents("m.yaml", text)
    assert [(d.index, d.line, d.data) for d in docs] == [(1, 4, {"a": 1}), (3, 9, {"b": 2})]


def test_positions_with_byte_order_mark_crlf_and_non_ascii() -> None:
    text = "\ufeffname: caf\u00e9 \U0001f600\r\nsize: 12\r\n"
    doc = load_documents("u.yaml", text)[0]
    spans = {k: text[v.start : v.end] for k, v in doc.positions.items()}
    assert spans == {("name",): "caf\u00e9 \U0001f600", ("size",): "12"}
    assert doc.positions[("size",)].line == 2


def test_merge_keys_resolve_like_the_safe_loader() -> None:
    text = "base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n"
    doc = load_documents("m.yaml", text)[0]
    assert doc.data["m"] == {"x": 1, "y": 3}
    assert text[doc.positions[("m", "y")].start] == "3"
    assert doc.positions[("m", "x")] == doc.positions[("base", "x")]


def test_the_first_of_several_merged_mappings_wins_like_the_safe_loader() -> None:
    text = "a: &a {x: 1}\nb: &b {x: 2, y: 3}\nm: {<<: [*a, *b]}\n"
    doc = load_documents("m.yaml", text)[0]
    assert doc.data["m"] == {"x": 1, "y": 3}
    assert doc.positions[("m", "x")] == doc.positions[("a", "x")]
    assert doc.positions[("m", "y")] == doc.positions[("b", "y")]


# --- splice: the corpus -------------------------------------------------------------


def test_splice_corpus_memory_changes_one_line_and_keeps_the_comment() -> None:
    text = corpus_text("messagewall-prod.yaml")
    new = edit_value(PROD, text, 0, ("spec", "lambdaMemory"), 384)
    assert changed_lines(text, new) == [46]
    assert new.split("\n")[45] == "  lambdaMemory: 384    # Higher memory for production"
    assert load_documents(PROD, new)[0].data["spec"]["lambdaMemory"] == 384


def test_splice_corpus_account_keeps_double_quotes() -> None:
    text = corpus_text("messagewall-prod.yaml")
    new = edit_value(PROD, text, 0, ("spec", "awsAccountId"), "210987654321")
    assert changed_lines(text, new) == [41]
    assert new.split("\n")[40] == '  awsAccountId: "210987654321"  # Replace with your AWS account ID'


def test_splice_corpus_dev_keeps_header_and_marker_byte_for_byte() -> None:
    text = corpus_text("messagewall-dev.yaml")
    new = edit_value("claims/dev.yaml", text, 0, ("spec", "lambdaTimeout"), 15)
    assert new == text.replace("  lambdaTimeout: 10\n", "  lambdaTimeout: 15\n")


# --- splice: quoting and types ------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "value", "expected"),
    [
        ("k: 256", 384, "k: 384"),
        ('k: "123"', "124", 'k: "124"'),
        ("k: '123'", "124", "k: '124'"),
        ("k: 'a'", "it's", "k: 'it''s'"),
        ("k: plain", "other", "k: other"),
        ("k: plain", "123", 'k: "123"'),
        ("k: plain", "true", 'k: "true"'),
        ("k: plain", "null", 'k: "null"'),
        ("k: plain", "yes", 'k: "yes"'),
        ("k: plain", "a: b", 'k: "a: b"'),
        ("k: plain", "a #b", 'k: "a #b"'),
        ("k: plain", "", 'k: ""'),
        ("k: plain", " padded", 'k: " padded"'),
        ("k: plain", "2024-01-01", 'k: "2024-01-01"'),
        ("k: plain", 'say "hi"\n', 'k: "say \\"hi\\"\\n"'),
        ("k: 'q'", "line\nbreak", 'k: "line\\nbreak"'),
        ("k: plain", "arn:aws:iam::1:role/x", "k: arn:aws:iam::1:role/x"),
        ('k: "256"', 384, "k: 384"),
        ("k: 1", True, "k: true"),
        ("k: 1", 0.5, "k: 0.5"),
        ("k: 1", 1e20, "k: 1.0e+20"),
        ("k: 1", 2.5e-7, "k: 2.5e-07"),
        ("k:", 3, "k: 3"),
        ("k: # why", 3, "k: 3 # why"),
        ("k: plain", "y", 'k: "y"'),
        ("k: plain", "off", 'k: "off"'),
        ("k: ~", "x", "k: x"),
        ("f: {k: 1, j: 2}", "a,b", 'f: {k: "a,b", j: 2}'),
        ("f: [a, b]  # c", "c d", "f: [c d, b]  # c"),
    ],
)
def test_splice_keeps_style_and_reads_back_exactly(line: str, value: Any, expected: str) -> None:
    text = f"# head\n{line}\nz: 0\n"
    key_path: KeyPath = ("f", "k") if line.startswith("f: {") else ("k",)
    if line.startswith("f: ["):
        key_path = ("f", 0)
    new = edit_value("s.yaml", text, 0, key_path, value)
    assert new == f"# head\n{expected}\nz: 0\n"
    got = yaml.safe_load(new)
    for part in key_path:
        got = got[part]
    assert typed(got) == typed(value)


def test_splice_block_scalar_becomes_one_line_and_keeps_header_comment() -> None:
    text = "a: |  # why\n  multi\n  line\n\nb: 1\n"
    new = edit_value("b.yaml", text, 0, ("a",), "one")
    assert new == "a: one  # why\n\nb: 1\n"


def test_splice_keeps_crlf_line_endings() -> None:
    text = "a: 1  # c\r\nb: 2\r\n"
    assert edit_value("w.yaml", text, 0, ("a",), 5) == "a: 5  # c\r\nb: 2\r\n"


def test_splice_in_a_later_document_leaves_the_others_alone() -> None:
    text = "# one\n---\nkind: A\nv: 1\n---\nkind: B\nv: 1\n"
    new = edit_value("d.yaml", text, 1, ("v",), 2)
    assert new == "# one\n---\nkind: A\nv: 1\n---\nkind: B\nv: 2\n"


def test_render_scalar_refuses_non_finite_numbers() -> None:
    with pytest.raises(YamlError, match=r"^x.yaml:3: refusing to write nan, which is not a finite"):
        render_scalar(float("nan"), "", "x.yaml:3")


def test_splice_replaces_only_the_span() -> None:
    text = "a: 10 # x\n"
    loc = load_documents("s.yaml", text)[0].positions[("a",)]
    assert splice(text, loc, 7) == "a: 7 # x\n"


# --- edit_value refusals ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key_path", "value", "message"),
    [
        (
            "spec:\n  a: 1\n",
            ("spec", "b"),
            2,
            "e.yaml: spec.b is not set, and adding a field is a structural edit; add it by hand",
        ),
        (
            "spec:\n  a: {x: 1}\n",
            ("spec", "a"),
            2,
            "e.yaml: spec.a is a mapping, not a single value; edit it by hand",
        ),
        (
            "base: &m 256\nspec:\n  mem: *m\n",
            ("spec", "mem"),
            384,
            "e.yaml: setting spec.mem would also change base (an anchor or alias shares the "
            "value); edit it by hand",
        ),
        (
            "spec:\n  n: !!str 5\n",
            ("spec", "n"),
            6,
            "e.yaml: spec.n would read back as '6' (str), not 6; edit it by hand",
        ),
        (
            "spec:\n  n: 5\n",
            ("spec", "n"),
            float("inf"),
            "e.yaml:2: refusing to write inf, which is not a finite number",
        ),
    ],
)
def test_edit_value_refuses_edits_it_cannot_prove(
    text: str, key_path: KeyPath, value: Any, message: str
) -> None:
    with pytest.raises(YamlError) as caught:
        edit_value("e.yaml", text, 0, key_path, value)
    assert str(caught.value) == message


def test_edit_value_missing_document() -> None:
    with pytest.raises(YamlError) as caught:
        edit_value("e.yaml", "a: 1\n", 3, ("a",), 2)
    assert str(caught.value) == "e.yaml: has no YAML document 3 to edit a in; re-read it"


# --- bad input ----------------------------------------------------------------------

BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "kind: XClaim\nmetadata: name: x\n",
            "x.yaml:2: malformed YAML (mapping values are not allowed in this context); fix the file",
        ),
        (
            "a: [1, 2\nb: 3\n",
            "x.yaml:2: malformed YAML (did not find expected ',' or ']'); fix the file",
        ),
        (
            "a: !!python/object/apply:os.system ['echo pwned']\n",
            "x.yaml:1: YAML tag '!!python/object/apply:os.system' is not allowed (only plain "
            "data: no Python objects or custom tags); remove the tag",
        ),
        (
            "a: !Ref Bucket\n",
            "x.yaml:1: YAML tag '!Ref' is not allowed (only plain data: no Python objects or "
            "custom tags); remove the tag",
        ),
        (
            "a: 1\nb: \x07\n",
            "x.yaml:2: unreadable YAML (character #x0007: control characters are not allowed); "
            "remove the character",
        ),
        (
            "\u00e9: 1\nb: \x01\n",
            "x.yaml:2: unreadable YAML (character #x0001: control characters are not allowed); "
            "remove the character",
        ),
        (
            "a: 1\nb: x\udcff\n",
            "x.yaml:2: text is not valid Unicode (a lone surrogate); save the file as UTF-8",
        ),
        ("a: 1\na: 2\n", "x.yaml:2: duplicate key 'a' in one mapping; remove one of them"),
        (
            "a: !!int ten\n",
            "x.yaml:1: malformed YAML value (invalid literal for int() with base 10: 'ten'); fix the file",
        ),  # fmt: skip
        (
            BILLION_LAUGHS,
            "x.yaml:1: YAML aliases expand too much (possible alias bomb); remove the anchors",
        ),
        (
            "x:\n" + BILLION_LAUGHS.replace("a: &a", "  1: &a").replace("\n", "\n  ")[:-2],
            "x.yaml:2: YAML aliases expand too much (possible alias bomb); remove the anchors",
        ),
        (
            "a: &a [*a]\n",
            "x.yaml:1: YAML aliases refer to themselves or nest deeper than 1000 levels; remove the anchors",
        ),
        ("a: &a {<<: *a}\n", "x.yaml:1: YAML merge key refers to itself; remove the anchors"),
        ("[" * 5000 + "]" * 5000, "x.yaml:1: YAML nests deeper than 1000 levels; flatten the file"),
        ("- " * 3000 + "x\n", "x.yaml:1: YAML nests deeper than 1000 levels; flatten the file"),
    ],
    ids=[
        "mapping-in-value",
        "unclosed-flow",
        "python-tag",
        "custom-tag",
        "control-char",
        "control-char-after-non-ascii",
        "lone-surrogate",
        "duplicate-key",
        "bad-int",
        "billion-laughs",
        "bomb-under-int-key",
        "recursive-alias",
        "recursive-merge",
        "deep-flow",
        "deep-block",
    ],
)
def test_bad_yaml_is_one_clear_line(text: str, message: str) -> None:
    # Every case must also come back fast: the bombs are refused before anything expands.
    with pytest.raises(YamlError) as caught:
        load_documents("x.yaml", text)
    assert str(caught.value) == message


def test_merge_key_bomb_is_refused_before_the_loader_expands_it() -> None:
    # PyYAML's flatten_mapping copies merged entries without deduplicating: 9**8 here.
    text = "a: &a {x0: 1}\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} {{<<: [{','.join(['*' + chr(97 + i)] * 9)}], k{i}: 1}}\n"
        for i in range(8)
    )
    with pytest.raises(YamlError, match="possible alias bomb"):
        load_documents("x.yaml", text)


def test_a_few_aliases_are_fine() -> None:
    text = "defaults: &d {memory: 128, timeout: 10}\napps:\n  - *d\n  - *d\n"
    doc = load_documents("a.yaml", text)[0]
    assert doc.data["apps"] == [{"memory": 128, "timeout": 10}] * 2
    assert ("apps", 1, "timeout") in doc.positions


def test_too_big_text_is_refused() -> None:
    text = "a: 1\n" + "#" * (10 * 1024 * 1024)
    with pytest.raises(YamlError) as caught:
        load_documents("big.yaml", text)
    assert str(caught.value) == (
        "big.yaml: file is 10.0 MB, over the 10 MB limit for YAML; split it or move it out of the claims path"
    )


# --- property: splicing changes only the target -------------------------------------

KEYS = st.from_regex(r"k[a-zA-Z0-9]{0,6}", fullmatch=True)
COMMENT = st.from_regex(r"[ a-zA-Z0-9:#'\"-]{0,20}", fullmatch=True)
TRICKY = [
    "", "123", "1.5", "0x1f", "1_000", "12:30", "2024-01-01", "true", "True", "yes", "y", "n",
    "on", "off", "null", "~", "-", "- a", "a: b", "a:", "a #b", "#", " x", "x ", "[x]", "{x}",
    "a,b", "*a", "&a", "!t", "%x", "@x", "`x", "|", ">", "?", "'q'", '"q"', "\\", "\n",
    "a\nb", "\t", "\r\n", "\x85", "\u2028", "\ufeff", "\x7f", "\x00", "\ufffe", ".inf", "<<", "=",
]  # fmt: skip
TEXT = st.one_of(
    st.sampled_from(TRICKY),
    st.text(st.sampled_from(list("ab1 .:#-'\",[]{}&*!|>?%@`\n\t\\")), max_size=8),
    st.text(st.characters(codec="utf-8"), max_size=12),  # no lone surrogates
)
SCALARS = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.booleans(),
    TEXT,
)
OLD_SCALARS = st.one_of(st.none(), SCALARS)
PLAIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_./-]*")


@dataclass
class Leaf:
    line: int  # 0-based line of the generated text that holds the value
    prefix: str  # text of that line before the value
    suffix: str  # text of that line after the value


@dataclass
class Layout:
    text: str = ""
    lines: list[str] = field(default_factory=list)
    leaves: dict[tuple[int, KeyPath], Leaf] = field(default_factory=dict)


def render_old(draw: st.DrawFn, value: Any, empty_ok: bool = True) -> str:
    """Independent of the code under test: how a person might have written ``value``."""
    if value is None:
        return draw(st.sampled_from(["", "~", "null"] if empty_ok else ["~", "null"]))
    if isinstance(value, bool):
        return draw(st.sampled_from(["true", "True"] if value else ["false", "False"]))
    if isinstance(value, int | float):
        text = repr(value) if isinstance(value, int) else json.dumps(value)
        if isinstance(value, float) and "." not in text and "e" in text.lower():
            mantissa, _, exponent = text.partition("e")
            text = f"{mantissa}.0e{exponent if exponent[0] in '+-' else '+' + exponent}"
        elif isinstance(value, float) and "." not in text:
            text += ".0"
        return text
    assert isinstance(value, str)
    styles = ["double"]
    if all(ch.isprintable() and ch not in "\u2028\u2029\x85" for ch in value):
        styles.append("single")
    if PLAIN_WORD.fullmatch(value) and yaml.safe_load(value) == value:
        styles.append("plain")
    style = draw(st.sampled_from(styles))
    if style == "plain":
        return value
    if style == "single":
        return "'" + value.replace("'", "''") + "'"
    return double_quoted(value)


def double_quoted(value: str) -> str:
    out = []
    for ch in value:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif code < 0x20 or 0x7F <= code <= 0x9F or code in (0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF):
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


@st.composite
def layouts(draw: st.DrawFn) -> Layout:
    out = Layout()
    indent = " " * draw(st.sampled_from([2, 4]))

    def emit(line: str) -> int:
        out.lines.append(line)
        return len(out.lines) - 1

    def comment() -> str:
        return f"  # {draw(COMMENT)}" if draw(st.booleans()) else ""

    for _ in range(draw(st.integers(0, 2))):
        emit(f"# {draw(COMMENT)}")
    index = 0
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):  # an empty document still takes an index
            emit("---")
            emit(f"# {draw(COMMENT)}")
            index += 1
        emit("---")
        for key in draw(st.lists(KEYS, min_size=1, max_size=4, unique=True)):
            if draw(st.booleans()):
                emit(f"# {draw(COMMENT)}")
            shape = draw(st.sampled_from(["scalar", "block", "flow-map", "flow-seq", "block-seq"]))
            if shape == "scalar":
                prefix, tail = f"{key}: ", comment()
                line = emit(prefix + render_old(draw, draw(OLD_SCALARS)) + tail)
                out.leaves[(index, (key,))] = Leaf(line, prefix, tail)
            elif shape == "block":
                emit(f"{key}:{comment()}")
                for sub in draw(st.lists(KEYS, min_size=1, max_size=3, unique=True)):
                    prefix, tail = f"{indent}{sub}: ", comment()
                    line = emit(prefix + render_old(draw, draw(OLD_SCALARS)) + tail)
                    out.leaves[(index, (key, sub))] = Leaf(line, prefix, tail)
            elif shape == "block-seq":
                emit(f"{key}:")
                for i, value in enumerate(draw(st.lists(OLD_SCALARS, min_size=1, max_size=3))):
                    prefix, tail = f"{indent}- ", comment()
                    line = emit(prefix + render_old(draw, value) + tail)
                    out.leaves[(index, (key, i))] = Leaf(line, prefix, tail)
            else:
                subs: list[str | int]
                if shape == "flow-map":
                    subs = list(draw(st.lists(KEYS, min_size=1, max_size=3, unique=True)))
                else:
                    subs = list(range(draw(st.integers(1, 3))))
                items = [render_old(draw, draw(OLD_SCALARS), shape == "flow-map") for _ in subs]
                entries = [f"{s}: {v}" if isinstance(s, str) else v for s, v in zip(subs, items, strict=True)]
                open_, close = ("{", "}") if shape == "flow-map" else ("[", "]")
                line = len(out.lines)
                tail = comment()
                for n, part in enumerate(subs):
                    before = f"{key}: {open_}" + ", ".join(entries[:n])
                    before += (", " if n else "") + (f"{part}: " if isinstance(part, str) else "")
                    after = ", ".join(["", *entries[n + 1 :]]) if n + 1 < len(subs) else ""
                    out.leaves[(index, (key, part))] = Leaf(line, before, after + close + tail)
                emit(f"{key}: {open_}{', '.join(entries)}{close}{tail}")
        index += 1
    out.text = "\n".join(out.lines) + "\n"
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layout=layouts(), data=st.data())
def test_splice_changes_only_the_target_value_and_its_line(layout: Layout, data: st.DataObject) -> None:
    text = layout.text
    before = [d for d in yaml.safe_load_all(text)]
    target = data.draw(st.sampled_from(sorted(layout.leaves, key=repr)))
    doc_index, key_path = target
    new_value = data.draw(st.one_of(st.sampled_from(TRICKY), SCALARS))
    doc = next(d for d in load_documents("p.yaml", text) if d.index == doc_index)

    new = splice(text, doc.positions[key_path], new_value)

    expected = [typed(d) for d in before]
    node = expected[doc_index]
    for part in key_path[:-1]:
        node = node[part]
    node[key_path[-1]] = typed(new_value)
    assert [typed(d) for d in yaml.safe_load_all(new)] == expected
    leaf = layout.leaves[target]
    assert set(changed_lines(text, new)) <= {leaf.line + 1}
    edited = new.split("\n")[leaf.line]
    assert edited.startswith(leaf.prefix) and edited.endswith(leaf.suffix)
    assert edit_value("p.yaml", text, doc_index, key_path, new_value) == new


TRICKY_PLACES = [
    ("k: old  # c\n", ("k",)),
    ("k: 'old'\n", ("k",)),
    ('k: "old"\n', ("k",)),
    ("k:  # c\n", ("k",)),
    ("k: |\n  old\n", ("k",)),
    ("f: {k: old, j: 1}\n", ("f", "k")),
    ("f: [old, 1]\n", ("f", 0)),
    ("s:\n  - old\n", ("s", 0)),
]


@pytest.mark.parametrize("value", TRICKY)
@pytest.mark.parametrize(("text", "key_path"), TRICKY_PLACES)
def test_tricky_strings_splice_everywhere(text: str, key_path: KeyPath, value: str) -> None:
    new = edit_value("t.yaml", text, 0, key_path, value)
    got = yaml.safe_load(new)
    for part in key_path:
        got = got[part]
    assert typed(got) == typed(value)
    assert len(new.split("\n")) == len(text.split("\n")) - (1 if "|" in text else 0)


# --- property: the one-walk build of plain documents equals the general path --------


def general_path(monkeypatch: pytest.MonkeyPatch, path: str, text: str) -> Any:
    """``load_documents`` with the plain one-walk build turned off (or its YamlError)."""
    with monkeypatch.context() as m:
        m.setattr(yamlwalk.Walk, "plain", lambda self, root, scalars: None)
        return loaded(path, text)


def loaded(path: str, text: str) -> Any:
    try:
        docs = load_documents(path, text)
    except YamlError as e:
        return f"{type(e).__name__}: {e}"
    # Strict types and order: True is not 1, and dict order and positions' order count.
    return [(d.index, d.line, typed_items(d.data), list(d.positions.items())) for d in docs]


def typed_items(data: Any) -> Any:
    if isinstance(data, dict):
        return ("map", [(typed_items(k), typed_items(v)) for k, v in data.items()])
    if isinstance(data, list):
        return ("seq", [typed_items(v) for v in data])
    return (type(data).__name__, repr(data))


PLAIN_DATA = st.recursive(
    st.one_of(st.none(), SCALARS),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layout=layouts())
def test_plain_build_equals_the_general_path_on_hand_written_layouts(layout: Layout) -> None:
    with pytest.MonkeyPatch.context() as m:
        assert loaded("p.yaml", layout.text) == general_path(m, "p.yaml", layout.text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=PLAIN_DATA, flow=st.booleans(), style=st.sampled_from([None, "'", '"']))
def test_plain_build_equals_the_general_path_on_dumped_data(data: Any, flow: bool, style: str | None) -> None:
    text = yaml.safe_dump(data, default_flow_style=flow, default_style=style, allow_unicode=True)
    with pytest.MonkeyPatch.context() as m:
        assert loaded("d.yaml", text) == general_path(m, "d.yaml", text)


@pytest.mark.parametrize(
    "text",
    [
        "a: 2024-01-01\n",  # a timestamp: not a core tag
        "a: !!binary aGk=\n",
        "1: one\nb: two\n",  # a non-string key
        "a: 1\na: 2\n",  # a duplicate key
        "base: &b {x: 1}\nc:\n  <<: *b\n  y: 2\n",  # a merge key and an alias
        "a: &x 1\nb: 2\n",  # an anchor without an alias stays plain
        "a: !!int abc\n",
        "a: !!bool maybe\n",
        "a: !!int ''\n",
        "a: !!set {x, y}\n",
        "a: !custom 1\n",
        "? [x]\n: 1\n",
        "- !!float .NaN\n- .inf\n- -.Inf\n- 0o17\n- 0x1F\n- 017\n- 1_000\n- 1:30\n- ~\n- Yes\n",
        "just a scalar\n",
        "---\n---\na: 1\n...\n--- 2\n",
    ],
)
def test_documents_that_are_not_plain_read_as_before(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    assert loaded("n.yaml", text) == general_path(monkeypatch, "n.yaml", text)


def test_corpus_claims_take_the_one_walk_build(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> None:
        raise AssertionError("the general walk ran")

    monkeypatch.setattr(yamlwalk.Walk, "positions", refuse)
    assert load_documents(PROD, corpus_text("messagewall-prod.yaml"))[0].positions


@pytest.mark.parametrize(
    "path", sorted(p for p in kustomizefix.CORPUS.rglob("*") if p.suffix in (".yaml", ".yml"))
)
def test_corpus_files_read_the_same_by_both_paths(monkeypatch: pytest.MonkeyPatch, path: Any) -> None:
    text = path.read_text(encoding="utf-8")
    assert loaded(str(path), text) == general_path(monkeypatch, str(path), text)


@pytest.mark.parametrize("text", ["a: !!bool maybe\n", "a: !!int ''\n", "a: !!float x\n"])
def test_a_value_its_tag_refuses_is_a_one_line_error(text: str) -> None:
    # The safe constructor lets `!!bool maybe` escape as a KeyError and `!!int ''` as
    # an IndexError: a user's typo must still be one line naming the file and line.
    with pytest.raises(YamlError, match=r"^c\.yaml:1: malformed YAML value \(.*\); fix the file$"):
        load_documents("c.yaml", text)
