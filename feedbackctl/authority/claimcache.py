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
import sys
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

CACHE_VERSION = 2
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
        except (OSError, InputFileError, ValueError, _Invalid):
            self.entries = {}

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


def _write(fh: TextIO, entries: Mapping[Key, Entry]) -> None:
    fh.write(_OPEN)
    first = True
    for key, found in entries.items():
        try:
            item = encode_entries({key: found})["entries"]
        except _Invalid:
            continue
        for e in item:
            fh.write(("" if first else ",\n") + json.dumps(e, separators=(",", ":"), allow_nan=False))
            first = False
    fh.write("\n" + _CLOSE if not first else _CLOSE)


def _read(file: Path) -> dict[Key, Entry]:
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(file, flags)
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_CACHE_BYTES:
            raise _Invalid
        if fh.readline(len(_OPEN) + 1) != _OPEN.encode():
            # Not laid out an entry a line (an older writer): the whole document, bounded.
            fh.seek(0)
            return decode_entries(json.loads(fh.read(MAX_CACHE_BYTES + 1)))
        entries: dict[Key, Entry] = {}
        for line in fh:
            if line == _CLOSE.encode() or line == b"\n" + _CLOSE.encode():
                return entries
            entry = json.loads(line.rstrip(b",\n"))
            entries.update(decode_entries({"version": CACHE_VERSION, "entries": [entry]}))
    raise _Invalid  # cut short


# --- the plain-data format --------------------------------------------------------------


_Invalid = shapes.Invalid


def encode_entries(entries: Mapping[Key, Entry]) -> dict[str, Any]:
    out = []
    for (path, blob, kinds), found in entries.items():
        try:
            claims = [[_encode_claim(c), index] for c, index in found]
        except _Invalid:
            continue  # a value this format cannot hold: that file is parsed again next run
        out.append({"path": path, "blob": blob, "kinds": list(kinds), "claims": claims})
    return {"version": CACHE_VERSION, "entries": out}


def decode_entries(raw: Any) -> dict[Key, Entry]:
    doc = _map(raw)
    if doc.get("version") != CACHE_VERSION:
        raise _Invalid
    entries: dict[Key, Entry] = {}
    for item in _list(doc.get("entries")):
        e = _map(item)
        kinds = tuple(_str(k) for k in _list(e.get("kinds")))
        key = (_str(e.get("path")), _str(e.get("blob")), kinds)
        found = []
        for pair in _list(e.get("claims")):
            claim, index = _list(pair, 2)
            found.append((_decode_claim(claim), _int(index)))
        entries[key] = tuple(found)
    return entries


def _encode_claim(c: Claim) -> dict[str, Any]:
    if c.schema:
        raise _Invalid  # schemas are attached after parsing; never cached
    return {
        "name": c.name,
        "kind": c.kind,
        "apiVersion": c.api_version,
        "spec": _encode(c.spec),
        "path": c.path,
        "docIndex": c.doc_index,
        "namespace": c.namespace,
        "annotations": _encode(c.annotations),
        "labels": _encode(c.labels),
        "locations": {
            k: [v.path, v.doc_index, v.start, v.end, v.line, v.column, list(v.shared_by)]
            for k, v in c.locations.items()
        },
        "blob": c.blob,
    }


def _decode_claim(raw: Any) -> Claim:
    m = _map(raw)
    spec, annotations, labels = (_decode(m.get(k)) for k in ("spec", "annotations", "labels"))
    if not isinstance(spec, dict) or not isinstance(annotations, dict) or not isinstance(labels, dict):
        raise _Invalid
    namespace = m.get("namespace")
    file = _str(m.get("path"))
    locations = {}
    for key, loc in _map(m.get("locations")).items():
        path, doc_index, start, end, line, column, shared = _list(loc, 7)
        # Shared strings, as a fresh parse has them (claims.py): the keys every claim
        # spells, and the claim's own path for the values its file sets.
        locations[intern(_str(key))] = ValueLocation(
            file if path == file else _str(path), _int(doc_index), _int(start), _int(end), _int(line),
            _int(column), tuple(_str(s) for s in _list(shared)),
        )  # fmt: skip
    return Claim(
        name=_str(m.get("name")),
        kind=_str(m.get("kind")),
        api_version=_str(m.get("apiVersion")),
        spec={intern(k): v for k, v in spec.items()},
        path=file,
        doc_index=_int(m.get("docIndex")),
        namespace=None if namespace is None else _str(namespace),
        annotations={_str(k): _str(v) for k, v in annotations.items()},
        labels={_str(k): _str(v) for k, v in labels.items()},
        locations=locations,
        blob=_str(m.get("blob")),
    )


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
    if isinstance(v, str):
        return sys.intern(v)
    if v is None or isinstance(v, bool | int):
        return v
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
    v = shapes.text(v)
    # Paths, field names and values repeat across a fleet's claims (a claim's path once
    # per location): one copy each keeps 50,000 claims in a fraction of the memory.
    return sys.intern(v)


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _Invalid
    return v
