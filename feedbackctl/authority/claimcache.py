"""Parsed claims cached by (path, blob id): a blob's content never changes, so
the cache is always valid. It lives in the repo's git dir; a cache that
cannot be read or written is simply not used.

The file is plain JSON with tagged values, validated entry by entry on load:
anyone who can write the git dir could otherwise plant a pickle that runs
code on the next cron run. A file that does not validate is ignored whole.
"""

from __future__ import annotations

import base64
import json
import math
import os
import stat
from collections.abc import Collection, Mapping
from datetime import date, datetime
from pathlib import Path
from sys import intern
from typing import Any, TextIO

from feedbackctl.authority import shapes
from feedbackctl.authority.claims import parse_file
from feedbackctl.boundedio import InputFileError
from feedbackctl.core.models import Claim, ValueLocation
from feedbackctl.errors import FeedbackError

CACHE_VERSION = 3  # 3: arrays, not objects (v2's file, claims-v2.json, is left unread)
MAX_CACHE_BYTES = 256 * 1024 * 1024
Entry = tuple[tuple[Claim, int], ...]
Key = tuple[str, str, tuple[str, ...]]


class ClaimCache:
    def __init__(self, git_dir: Path) -> None:
        self.file = git_dir / "feedbackctl" / f"claims-v{CACHE_VERSION}.json"
        self.entries: dict[Key, Entry] = {}
        self.used: set[Key] = set()
        self.dirty = False
        try:
            self.entries = _read(self.file)
        except (OSError, InputFileError, ValueError, RecursionError, _Invalid):
            self.entries = {}  # RecursionError: JSON (or a tagged value) nested too deep

    @staticmethod
    def key(path: str, blob: str, kinds: Collection[str] | None) -> Key:
        return (path, blob, tuple(sorted(kinds or ())))

    def has(self, path: str, blob: str, kinds: Collection[str] | None) -> bool:
        return self.key(path, blob, kinds) in self.entries

    def parse(
        self, path: str, blob: str, content: bytes, kinds: Collection[str] | None
    ) -> tuple[list[tuple[Claim, int]], list[FeedbackError]]:
        key = self.key(path, blob, kinds)
        self.used.add(key)
        if key in self.entries:
            return list(self.entries[key]), []
        found, errors = parse_file(path, blob, content, kinds)
        if not errors:  # files with errors are parsed again, so the error shows every run
            self.entries[key] = tuple(found)
            self.dirty = True
        return found, errors

    def save(self) -> None:
        """Keep what this run used (old blobs fall out), atomically."""
        if not self.dirty and len(self.used) == len(self.entries):
            return
        keep = {k: v for k, v in self.entries.items() if k in self.used}
        shapes.write_atomically(self.file, ".claims-", lambda fh: _write(fh, keep))


# --- the file: one JSON document, one entry a line ----------------------------------------
# A fleet's cache is tens of MB: read and written an entry at a time, it is never
# held whole (as text and as parsed JSON) beside the claims (docs/performance.md).
_OPEN = f'{{"version":{CACHE_VERSION},"entries":[\n'
_CLOSE = "]}\n"
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _write(fh: TextIO, entries: Mapping[Key, Entry]) -> None:
    fh.write(_OPEN)
    sep = ""
    for key, found in entries.items():
        try:
            line = _ENCODER.encode(encode_entry(key, found))
        except _Invalid:
            continue  # a value this format cannot hold: that file is parsed again next run
        fh.write(sep + line)
        sep = ",\n"
    fh.write("\n" + _CLOSE if sep else _CLOSE)


def _read(file: Path) -> dict[Key, Entry]:
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(file, flags)
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_CACHE_BYTES:
            raise _Invalid
        if fh.readline(len(_OPEN) + 1) != _OPEN.encode():
            # Not laid out an entry a line (written by hand?): the whole document, bounded.
            fh.seek(0)
            return decode_entries(json.loads(fh.read(MAX_CACHE_BYTES + 1)))
        entries: dict[Key, Entry] = {}
        close = (_CLOSE.encode(), b"\n" + _CLOSE.encode())
        for line in fh:
            if line in close:
                return entries
            key, found = decode_entry(json.loads(line.rstrip(b",\n")))
            entries[key] = found
    raise _Invalid  # cut short


# --- the plain-data format --------------------------------------------------------------
# An entry is [path, blob, kinds, claims]; a claim is
# [line, name, kind, apiVersion, namespace, docIndex, spec, annotations, labels, locations].
# Mappings are flat [key, value, key, value, ...] lists and the locations flat
# [key, start, end, line, column, ...] runs: a fleet's claims are millions of
# values, and arrays are what the C encoder and decoder get through fastest (this
# halved the cache's size and its write; docs/performance.md). A claim's path and
# blob are the entry's and its values' locations lie in its own document, as
# ``parse_file`` gives them; a claim that is anything else is not cached.


_Invalid = shapes.Invalid
_PLAIN = frozenset({str, int, bool, type(None)})  # stand for themselves in JSON (not subclasses)


def encode_entry(key: Key, found: Entry) -> list[Any]:
    path, blob, kinds = key
    return [path, blob, list(kinds), [_encode_claim(c, line, path, blob) for c, line in found]]


def decode_entry(raw: Any) -> tuple[Key, Entry]:
    path, blob, kinds, claims = _list(raw, 4)
    path, blob = _str(path), _str(blob)
    key = (path, blob, tuple(_str(k) for k in _list(kinds)))
    return key, tuple(_decode_claim(c, path, blob) for c in _list(claims))


def decode_entries(raw: Any) -> dict[Key, Entry]:
    """A whole cache document at once (one not laid out an entry a line)."""
    doc = _map(raw)
    if doc.get("version") != CACHE_VERSION:
        raise _Invalid
    return dict(decode_entry(e) for e in _list(doc.get("entries")))


def _encode_claim(c: Claim, line: int, path: str, blob: str) -> list[Any]:
    if c.schema or c.path != path or c.blob != blob:
        raise _Invalid  # schemas are attached after parsing; never cached
    if not type(c.name) is type(c.kind) is type(c.api_version) is str or type(c.doc_index) is not int:
        raise _Invalid
    spec: list[Any] = []
    for k, v in c.spec.items():
        spec += (k if type(k) is str else _encode(k), v if type(v) in _PLAIN else _encode(v))
    locations: list[Any] = []
    own = (path, c.doc_index, ())
    for k, loc in c.locations.items():
        if type(loc) is not ValueLocation or (loc.path, loc.doc_index, loc.shared_by) != own:
            raise _Invalid  # set elsewhere (an overlay's patch) or shared: never from parse_file
        locations += (k, loc.start, loc.end, loc.line, loc.column)
    return [
        line, c.name, c.kind, c.api_version, c.namespace, c.doc_index, spec,
        _strings(c.annotations), _strings(c.labels), locations,
    ]  # fmt: skip


def _decode_claim(raw: Any, path: str, blob: str) -> tuple[Claim, int]:
    line, name, kind, api_version, namespace, doc_index, spec, annotations, labels, flat = _list(raw, 10)
    doc_index = _int(doc_index)
    spec = _list(spec)
    if len(spec) % 2:
        raise _Invalid
    values = {}
    for k, v in zip(spec[::2], spec[1::2], strict=True):
        # Strings, the common case, without a call: a fleet's claims hold ~100,000 keys and values.
        k = intern(k) if type(k) is str else _decode(k)  # YAML keys can be numbers, dates, ...
        if isinstance(k, list | dict):
            raise _Invalid
        values[k] = intern(v) if type(v) is str else v if type(v) in _PLAIN else _decode(v)
    flat = _list(flat)
    if len(flat) % 5:
        raise _Invalid
    locations = {}
    for i in range(0, len(flat), 5):
        key, start, end, line_no, column = flat[i : i + 5]
        if not type(start) is type(end) is type(line_no) is type(column) is int:
            raise _Invalid
        locations[_str(key)] = ValueLocation(path, doc_index, start, end, line_no, column)
    claim = Claim(
        name=_str(name),
        kind=_str(kind),
        api_version=_str(api_version),
        spec=values,
        path=path,
        doc_index=doc_index,
        namespace=None if namespace is None else _str(namespace),
        annotations=_string_map(annotations),
        labels=_string_map(labels),
        locations=locations,
        blob=blob,
    )
    return claim, _int(line)


def _strings(m: Mapping[str, str]) -> list[str]:
    out: list[str] = []
    for k, v in m.items():
        if type(k) is not str or type(v) is not str:
            raise _Invalid
        out += (k, v)
    return out


def _string_map(raw: Any) -> dict[str, str]:
    flat = [_str(s) for s in _list(raw)]
    if len(flat) % 2:
        raise _Invalid
    return dict(zip(flat[::2], flat[1::2], strict=True))


# YAML's safe data, as JSON: str, int, bool and None stand for themselves; the
# rest is a one-key object naming its type.
def _encode(v: Any) -> Any:
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        return {"float": repr(v)}
    if isinstance(v, datetime):
        return {"datetime": v.isoformat()}
    if isinstance(v, date):
        return {"date": v.isoformat()}
    if isinstance(v, bytes):
        return {"bytes": base64.b64encode(v).decode("ascii")}
    if isinstance(v, list):
        return {"list": [_encode(x) for x in v]}
    if isinstance(v, Mapping):
        return {"map": [[_encode(k), _encode(x)] for k, x in v.items()]}
    raise _Invalid


def _decode(v: Any) -> Any:
    if type(v) in _PLAIN:  # what json.loads gives: no subclasses
        return intern(v) if type(v) is str else v
    (tag, body), *rest = _map(v).items() or [("", None)]
    if rest:
        raise _Invalid
    try:
        if tag == "float":
            number = float(_str(body))
            if not math.isnan(number) and repr(number) != body:
                raise _Invalid
            return number
        if tag == "datetime":
            return datetime.fromisoformat(_str(body))
        if tag == "date":
            return date.fromisoformat(_str(body))
        if tag == "bytes":
            return base64.b64decode(_str(body), validate=True)
        if tag == "list":
            return [_decode(x) for x in _list(body)]
        if tag == "map":
            out = {}
            for pair in _list(body):
                key, value = _list(pair, 2)
                decoded = _decode(key)
                if isinstance(decoded, list | dict):
                    raise _Invalid
                out[decoded] = _decode(value)
            return out
    except (ValueError, TypeError):
        raise _Invalid from None
    raise _Invalid


_map, _list = shapes.mapping, shapes.items


def _str(v: Any) -> str:
    if type(v) is not str:
        raise _Invalid
    # Paths, field names and values repeat across a fleet's claims (a claim's path once
    # per location): one copy each keeps 50,000 claims in a fraction of the memory.
    return intern(v)


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _Invalid
    return v
