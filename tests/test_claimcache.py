"""The claim cache gives back exactly the claims a fresh parse gives, and trusts nothing it reads.

Its file sits in the git dir, where anyone who can write it could plant
anything: a file (or one entry) that is not what this version writes is
ignored whole, never a crash (authority/claimcache.py).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedbackctl.authority.claimcache import CACHE_VERSION, ClaimCache
from feedbackctl.authority.claims import parse_file
from feedbackctl.core.models import Claim, ValueLocation

CLAIM = """\
# a comment before the document
apiVersion: messagewall.demo/v1alpha1
kind: ServerlessEventAppClaim
metadata:
  name: {name}
  namespace: default
  annotations: {{team: auth, owner: "x y"}}
  labels: {{tier: "1"}}
spec:
  environment: dev
  lambdaMemory: 768
  lambdaTimeout: 10
  ratio: 0.25
  enabled: true
  nothing: null
  since: 2026-01-02
  at: 2026-01-02T03:04:05Z
  raw: !!binary aGVsbG8=
  tags: [a, 1, 2.5, {{deep: [x]}}]
  1: int key
  2026-03-04: date key
"""


def _strict(v: Any) -> Any:
    """A value with every type spelled out, so 1 != 1.0 != True and dict order counts."""
    if isinstance(v, dict):
        return ("dict", [(_strict(k), _strict(x)) for k, x in v.items()])
    if isinstance(v, list | tuple):
        return (type(v).__name__, [_strict(x) for x in v])
    return (type(v).__name__, repr(v))


def _fields(c: Claim) -> Any:
    return _strict({k: getattr(c, k) for k in c.__dataclass_fields__})


Found = list[tuple[Claim, int]]


def _round_trip(tmp_path: Path, files: dict[str, bytes]) -> tuple[dict[str, Found], ClaimCache]:
    fresh = {}
    first = ClaimCache(tmp_path)
    for i, (path, content) in enumerate(files.items()):
        found, errors = first.parse(path, f"blob{i}", content, None)
        assert not errors, errors
        fresh[path] = found
    first.save()
    return fresh, ClaimCache(tmp_path)


def _cached(cache: ClaimCache, path: str, i: int) -> Found:
    assert cache.has(path, f"blob{i}", None)
    found, errors = cache.parse(path, f"blob{i}", b"unused: the cache answers", None)
    assert not errors
    return found


def test_a_claim_comes_back_as_parsed_with_every_type_and_order(tmp_path: Path) -> None:
    two = CLAIM.format(name="b") + "---\n" + CLAIM.format(name="c")
    files = {"claims/a.yaml": CLAIM.format(name="a").encode(), "claims/b.yaml": two.encode()}
    fresh, cache = _round_trip(tmp_path, files)
    for i, path in enumerate(files):
        back = _cached(cache, path, i)
        assert [(_fields(c), line) for c, line in back] == [(_fields(c), line) for c, line in fresh[path]]
        assert back == fresh[path]
    spec = fresh["claims/a.yaml"][0][0].spec
    assert 1 in spec and date(2026, 3, 4) in spec and spec["raw"] == b"hello"
    assert spec["at"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_an_int_key_in_a_spec_no_longer_breaks_the_next_run(tmp_path: Path) -> None:
    # Version 2 wrote the key and then failed on it when read back (intern() of an int).
    doc = b"apiVersion: a/v1\nkind: XClaim\nmetadata:\n  name: x\nspec:\n  1: 2\n  lambdaMemory: 5\n"
    fresh, cache = _round_trip(tmp_path, {"x.yaml": doc})
    assert _cached(cache, "x.yaml", 0) == fresh["x.yaml"]


def test_the_file_is_one_json_document_an_entry_a_line(tmp_path: Path) -> None:
    _round_trip(tmp_path, {f"c/{n}.yaml": CLAIM.format(name=n).encode() for n in "abc"})
    text = (tmp_path / "feedbackctl" / f"claims-v{CACHE_VERSION}.json").read_text()
    assert text.startswith(f'{{"version":{CACHE_VERSION},"entries":[\n')
    assert len(text.splitlines()) == 5
    assert [e[0] for e in json.loads(text)["entries"]] == ["c/a.yaml", "c/b.yaml", "c/c.yaml"]


def test_a_claim_the_format_cannot_hold_is_parsed_again_and_the_others_are_kept(tmp_path: Path) -> None:
    cache = ClaimCache(tmp_path)
    found, _ = cache.parse("a.yaml", "b1", CLAIM.format(name="a").encode(), None)
    (claim, line), = found
    loc = next(iter(claim.locations.values()))
    odd = {
        "elsewhere": {**claim.locations, "spec.x": ValueLocation("base.yaml", 0, 1, 2, 1, 1)},
        "shared": {**claim.locations, "spec.x": ValueLocation(loc.path, 0, 1, 2, 1, 1, ("a", "b"))},
    }
    for i, locations in enumerate(odd.values()):
        key = cache.key(f"odd{i}.yaml", "b", None)
        other = Claim(**{**claim.__dict__, "path": key[0], "blob": "b", "locations": locations})
        cache.entries[key] = ((other, line),)
        cache.used.add(key)
    cache.save()
    back = ClaimCache(tmp_path)
    assert set(back.entries) == {cache.key("a.yaml", "b1", None)}


def _write(tmp_path: Path, text: str | bytes) -> ClaimCache:
    folder = tmp_path / "feedbackctl"
    folder.mkdir(exist_ok=True)
    raw = text.encode() if isinstance(text, str) else text
    (folder / f"claims-v{CACHE_VERSION}.json").write_bytes(raw)
    return ClaimCache(tmp_path)


GOOD_CLAIM = [0, "n", "XClaim", "a/v1", None, 0, ["k", 1], [], [], ["spec.k", 1, 2, 3, 4]]


@pytest.mark.parametrize(
    "entry",
    [
        ["p", "b", [], [[*GOOD_CLAIM[:6], ["k"], *GOOD_CLAIM[7:]]]],  # a key without a value
        ["p", "b", [], [[*GOOD_CLAIM[:9], ["spec.k", 1, 2, 3]]]],  # a location cut short
        ["p", "b", [], [[*GOOD_CLAIM[:9], ["spec.k", 1, 2, 3, True]]]],  # a bool for an int
        ["p", "b", [], [[*GOOD_CLAIM[:6], [["list"], 1], *GOOD_CLAIM[7:]]]],  # an unhashable key
        ["p", "b", [], [[*GOOD_CLAIM[:6], ["k", {"map": [[{"list": []}, 1]]}], *GOOD_CLAIM[7:]]]],
        ["p", "b", [], [[*GOOD_CLAIM[:6], ["k", {"float": "1.50"}], *GOOD_CLAIM[7:]]]],  # not repr
        ["p", "b", [], [[*GOOD_CLAIM[:6], ["k", {"date": "tomorrow"}], *GOOD_CLAIM[7:]]]],
        ["p", "b", [], [[*GOOD_CLAIM[:6], ["k", {"pickle": "x"}], *GOOD_CLAIM[7:]]]],
        ["p", "b", [], [[*GOOD_CLAIM[:7], ["team"], *GOOD_CLAIM[8:]]]],  # an annotation alone
        ["p", "b", [], [[*GOOD_CLAIM[:7], ["team", 5], *GOOD_CLAIM[8:]]]],
        ["p", "b", [], [[*GOOD_CLAIM[:1], 5, *GOOD_CLAIM[2:]]]],  # a number for a name
        ["p", "b", [], [GOOD_CLAIM[:9]]],
        ["p", "b", [], {"claims": []}],
        ["p", 7, [], []],
        {"path": "p", "blob": "b", "kinds": [], "claims": []},  # version 2's shape
    ],
)
def test_an_entry_of_the_wrong_shape_drops_the_file(tmp_path: Path, entry: Any) -> None:
    good = json.dumps(["q", "b", [], [GOOD_CLAIM]])
    assert _write(tmp_path, f'{{"version":{CACHE_VERSION},"entries":[\n{good}\n]}}\n').entries
    text = f'{{"version":{CACHE_VERSION},"entries":[\n{good},\n{json.dumps(entry)}\n]}}\n'
    assert _write(tmp_path, text).entries == {}


def _deep(levels: int) -> str:
    entry = json.dumps(["p", "b", [], [[*GOOD_CLAIM[:6], ["k", "{LIST}"], *GOOD_CLAIM[7:]]]])
    value = '{"list":[' * levels + "]}" * levels
    return f'{{"version":{CACHE_VERSION},"entries":[\n' + entry.replace('"{LIST}"', value) + "\n]}\n"


def test_a_value_nested_400_deep_is_read(tmp_path: Path) -> None:
    (claim, _), = _write(tmp_path, _deep(400)).entries[("p", "b", ())]
    assert isinstance(claim.spec["k"], list)


@pytest.mark.parametrize(
    "text",
    [
        f'{{"version":{CACHE_VERSION},"entries":[\n' + "[" * 100_000 + "]" * 100_000 + "\n]}\n",
        _deep(3000),
        f'{{"version":{CACHE_VERSION},"entries":[\n["p","b",[],[]],\n',  # cut short
        '{"version":2,"entries":[]}',
        b"\xff\xfe\x00",
    ],
    ids=["deep-json", "deep-tagged-value", "cut-short", "old-version", "not-utf8"],
)
def test_a_planted_file_is_ignored_not_a_crash(tmp_path: Path, text: str | bytes) -> None:
    assert _write(tmp_path, text).entries == {}


def test_the_old_versions_file_is_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "feedbackctl"
    folder.mkdir()
    old = folder / f"claims-v{CACHE_VERSION - 1}.json"
    old.write_text('{"version":2,"entries":[\n]}\n')
    fresh, cache = _round_trip(tmp_path, {"a.yaml": CLAIM.format(name="a").encode()})
    assert _cached(cache, "a.yaml", 0) == fresh["a.yaml"]
    assert old.read_text() == '{"version":2,"entries":[\n]}\n'


# Spec values of every type YAML's safe loader gives, nested.
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.dates(),
    st.datetimes(timezones=st.just(UTC)),
    st.binary(max_size=8),
)
_keys = st.one_of(st.text(min_size=1, max_size=6), st.integers(0, 99), st.booleans(), st.dates())
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=st.dictionaries(_keys, _values, max_size=6))
def test_any_spec_yaml_can_hold_comes_back_as_parsed(tmp_path: Path, spec: dict[Any, Any]) -> None:
    doc = {"apiVersion": "a/v1", "kind": "XClaim", "metadata": {"name": "x"}, "spec": spec}
    content = yaml.safe_dump(doc, sort_keys=False).encode()
    fresh, errors = parse_file("x.yaml", "b0", content)
    if errors or not fresh:
        return  # not a claim parse_file accepts (the fresh parse decides, the cache only keeps)
    for f in (tmp_path / "feedbackctl").glob("*"):
        f.unlink()
    cache = ClaimCache(tmp_path)
    cache.parse("x.yaml", "blob0", content, None)
    cache.save()
    back = _cached(ClaimCache(tmp_path), "x.yaml", 0)
    (claim, line), = fresh
    (again, line_again), = back
    assert line_again == line
    # NaN is never equal to itself: compare the spelled-out form (repr) instead.
    assert _fields(again) == _fields(Claim(**{**claim.__dict__, "blob": "blob0"}))
