"""Kustomize overlays as claims: render them, and trace every value to where it is set.

A directory under the claim paths that holds a ``kustomization.yaml`` is a
Kustomize root. A root that another root lists in its ``resources`` (or
``components``) is a *base*: its claims exist only through the overlays that
use it, so it is not rendered on its own. Every other root is an *overlay*:
``kubectl kustomize`` renders it, and the claims it renders (named by their
rendered ``metadata.name``) are the effective claims. Files inside a root's
directory are Kustomize inputs, never plain claims.

Rendering reads the tree at the authority ref (never the work tree): the
files an overlay can load (the directories of every root it reaches, which is
what kustomize's default load restrictor allows) are written to a temporary
directory, one ``kubectl kustomize`` process per overlay. Renders are cached
by the content of those files, so an overlay is rendered once per run however
often it is read, and re-rendering after an edit only runs what the edit
touched.

Tracing finds the scalar that sets ``spec.<field>`` of a rendered claim: the
last JSON 6902 ``add``/``replace`` op or strategic-merge patch in the overlay
that targets the claim (inline in ``kustomization.yaml`` or in a patch file),
else the same question one layer down, ending in the base resource file. A
traced value must equal the rendered one; anything kustomize could have set
another way (components, replacements, vars, transformer plugins, ops on a
parent path) leaves the field untraced, and an untraced field is never edited.
The edit itself and its verification by re-rendering live in
``kustomize_edit.py``.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import posixpath
import re
import tempfile
from collections.abc import Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from feedbackctl.authority.claims import parse_claims
from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.yamldoc import Doc, KeyPath, YamlError, load_documents
from feedbackctl.core.models import Claim, ValueLocation
from feedbackctl.errors import FeedbackError, UsageError
from feedbackctl.proc import run

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
KUBECTL_ENV = "FEEDBACKCTL_KUBECTL"  # path of the kubectl binary (default: kubectl on PATH)
MAX_PARALLEL_RENDERS = 8
_CACHE_LIMIT = 512
# Remote bases: kustomize would fetch them; the authority is what the repo holds.
_REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|git@|git::|github\.com/|gitlab\.com/|bitbucket\.org/)|\?ref=")
# Fields with which kustomize can set a spec value other than by a patch we trace.
_UNTRACEABLE = {
    "components": "Kustomize components",
    "replacements": "replacements",
    "vars": "vars",
    "transformers": "transformer plugins",
}
_ADD_REPLACE = ("add", "replace")


class KustomizeError(FeedbackError):
    """One Kustomize root cannot be read or rendered; the other claims still run."""


# --- the tree at the authority ref ---------------------------------------------------

_LISTINGS: dict[tuple[str, str], dict[str, str]] = {}


def blob_id(data: bytes) -> str:
    """Git's sha1 blob id of ``data`` (a cache key for staged, uncommitted text)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def _listing(repo: GitRepo, commit: str) -> dict[str, str]:
    key = (str(repo.git_dir), commit)
    if key not in _LISTINGS:
        if len(_LISTINGS) > 16:
            _LISTINGS.clear()
        _LISTINGS[key] = dict(repo.list_files(commit, ("",), suffixes=()))
    return _LISTINGS[key]


@dataclass(frozen=True)
class Entry:
    """One path a kustomization names (a resource, base or component)."""

    written: str
    path: str  # repo-relative, normalised ("" is the repo root)
    is_dir: bool


@dataclass(frozen=True)
class Patch:
    """One patch of a kustomization, parsed."""

    where: str  # e.g. "patches[0]", for messages
    target: Mapping[str, Any] | None
    docs: tuple[Doc, ...]
    json6902: bool
    file: str | None = None  # repo path of the patch file; None when inline
    key_path: KeyPath = ()  # inline: where the patch text sits in the kustomization

    def describe(self) -> str:
        kind = "JSON 6902" if self.json6902 else "strategic-merge"
        return f"{kind} patch {self.where}" + (f" ({self.file})" if self.file else "")


@dataclass(frozen=True)
class Kustomization:
    dir: str
    path: str
    kind: str
    doc: Doc
    text: str
    resources: tuple[Entry, ...]
    components: tuple[Entry, ...]
    patches: tuple[Patch, ...]  # in kustomize's application order
    name_prefix: str = ""
    name_suffix: str = ""
    untraceable: str | None = None  # why values set here cannot be traced

    @property
    def reaches(self) -> tuple[Entry, ...]:
        return tuple(e for e in (*self.resources, *self.components) if e.is_dir)


class Tree:
    """The files at a commit, plus staged texts that override them (for a re-render)."""

    def __init__(self, repo: GitRepo, commit: str, overrides: Mapping[str, str] | None = None) -> None:
        self.repo = repo
        self.commit = commit
        self.overrides = {p: t.encode("utf-8") for p, t in (overrides or {}).items()}
        self.blobs = dict(_listing(repo, commit))
        for path, data in self.overrides.items():
            self.blobs[path] = blob_id(data)
        self.paths = sorted(self.blobs)
        self.dirs = {posixpath.dirname(p) for p in self.paths}
        for d in list(self.dirs):
            while d:
                d = posixpath.dirname(d)
                self.dirs.add(d)
        self._content: dict[str, bytes] = {}
        self._kustomizations: dict[str, Kustomization | KustomizeError] = {}
        self._file_docs: dict[str, list[Doc]] = {}

    def under(self, directory: str) -> list[str]:
        """Every file at or below ``directory`` ("" is the whole tree)."""
        if not directory:
            return list(self.paths)
        prefix = directory + "/"
        i = bisect.bisect_left(self.paths, prefix)
        out = []
        while i < len(self.paths) and self.paths[i].startswith(prefix):
            out.append(self.paths[i])
            i += 1
        return out

    def read(self, paths: Iterable[str]) -> dict[str, bytes]:
        wanted = [p for p in dict.fromkeys(paths) if p not in self._content]
        from_git = [p for p in wanted if p not in self.overrides]
        for p in wanted:
            if p in self.overrides:
                self._content[p] = self.overrides[p]
        if from_git:
            contents = self.repo.read_blobs([self.blobs[p] for p in from_git])
            for p in from_git:
                self._content[p] = contents[self.blobs[p]]
        return {p: self._content[p] for p in paths}

    def text(self, path: str) -> str:
        raw = self.read([path])[path]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise KustomizeError(f"{path}: not valid UTF-8; save the file as UTF-8") from None

    def docs(self, path: str) -> list[Doc]:
        if path not in self._file_docs:
            self._file_docs[path] = load_documents(path, self.text(path))
        return self._file_docs[path]

    def kustomization_file(self, directory: str) -> str | None:
        for name in KUSTOMIZATION_FILES:
            path = posixpath.join(directory, name) if directory else name
            if path in self.blobs:
                return path
        return None

    def roots(self, prefixes: Sequence[str]) -> list[str]:
        """Directories holding a kustomization file, under any claim path prefix."""
        found = []
        for d in sorted(self.dirs):
            if self.kustomization_file(d) is None:
                continue
            if any((d + "/").startswith(p) or p == "" for p in prefixes):
                found.append(d)
        return found

    def kustomization(self, directory: str) -> Kustomization:
        if directory not in self._kustomizations:
            try:
                self._kustomizations[directory] = _parse_kustomization(self, directory)
            except KustomizeError as e:
                self._kustomizations[directory] = e
            except YamlError as e:
                self._kustomizations[directory] = KustomizeError(str(e))
        got = self._kustomizations[directory]
        if isinstance(got, KustomizeError):
            raise got
        return got

    def reachable(self, directory: str) -> list[str]:
        """``directory`` and every kustomization directory it reaches, depth first."""
        order: list[str] = []
        stack: list[tuple[str, tuple[str, ...]]] = [(directory, ())]
        while stack:
            d, via = stack.pop()
            if d in via:
                chain = " -> ".join((*via, d))
                raise KustomizeError(f"{d}/: kustomizations refer to each other in a cycle ({chain}); break it")
            if d in order:
                continue
            order.append(d)
            try:
                k = self.kustomization(d)
            except KustomizeError as e:
                raise e if not via else KustomizeError(f"{e} (reached from {via[0]}/)") from None
            stack.extend((e.path, (*via, d)) for e in reversed(k.reaches))
        return order

    def closure(self, directory: str) -> dict[str, str]:
        """Every file a render of ``directory`` may read -> its blob id."""
        files: dict[str, str] = {}
        for d in self.reachable(directory):
            for p in self.under(d):
                files[p] = self.blobs[p]
        return files


# --- reading a kustomization ---------------------------------------------------------


def _resolve(tree: Tree, k_dir: str, k_path: str, written: Any, where: str, *, dirs: bool = True) -> Entry:
    if not isinstance(written, str) or not written.strip():
        raise KustomizeError(f"{k_path}: {where}: expected a path, got {written!r}; fix the kustomization")
    text = written.strip()
    if _REMOTE.search(text):
        raise KustomizeError(
            f"{k_path}: {where}: remote '{text}' is not supported (feedbackctl renders only what the "
            "repo holds at the ref); vendor it into the repo"
        )
    if text.startswith("/"):
        raise KustomizeError(f"{k_path}: {where}: '{text}' is an absolute path; use a path inside the repo")
    path = posixpath.normpath(posixpath.join(k_dir, text))
    if path == ".." or path.startswith("../"):
        raise KustomizeError(
            f"{k_path}: {where}: '{text}' points outside the repository; kustomize inputs must be in the repo"
        )
    path = "" if path == "." else path
    if path in tree.blobs:
        if k_dir and not path.startswith(k_dir + "/"):
            raise KustomizeError(
                f"{k_path}: {where}: '{text}' is a file outside {k_dir}/, which kustomize refuses to "
                "load; move it, or give its directory a kustomization.yaml and list the directory"
            )
        return Entry(text, path, False)
    if path in tree.dirs and dirs:
        if tree.kustomization_file(path) is None:
            raise KustomizeError(
                f"{k_path}: {where}: directory '{text}' has no kustomization.yaml; add one or list its files"
            )
        return Entry(text, path, True)
    raise KustomizeError(f"{k_path}: {where}: '{text}' does not exist at {tree.commit[:8]}; fix the path")


def _list(value: Any, k_path: str, key: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise KustomizeError(f"{k_path}: {key}: expected a list, got {type(value).__name__}; fix it")
    return value


def _patch_docs(label: str, text: Any, k_path: str, where: str) -> tuple[Doc, ...]:
    if not isinstance(text, str):
        raise KustomizeError(f"{k_path}: {where}: expected the patch as text; fix the kustomization")
    try:
        return tuple(load_documents(label, text))
    except YamlError as e:
        raise KustomizeError(f"{k_path}: {where}: patch is not valid YAML ({e}); fix it") from None


def _patch(
    tree: Tree, k_dir: str, k_path: str, where: str, key_path: KeyPath, raw: Any, json6902: bool | None
) -> Patch:
    if not isinstance(raw, Mapping):
        raise KustomizeError(f"{k_path}: {where}: expected a mapping with path or patch; fix it")
    target = raw.get("target")
    if target is not None and not isinstance(target, Mapping):
        raise KustomizeError(f"{k_path}: {where}.target: expected a mapping; fix it")
    if raw.get("path") is not None:
        entry = _resolve(tree, k_dir, k_path, raw["path"], f"{where}.path", dirs=False)
        docs = tuple(tree.docs(entry.path))
        file: str | None = entry.path
        inline: KeyPath = ()
    elif raw.get("patch") is not None:
        docs = _patch_docs(f"{k_path} {where}.patch", raw["patch"], k_path, where)
        file, inline = None, (*key_path, "patch")
    else:
        raise KustomizeError(f"{k_path}: {where}: has neither path nor patch; fix it")
    is6902 = json6902 if json6902 is not None else bool(docs) and isinstance(docs[0].data, list)
    if is6902 and target is None:
        raise KustomizeError(f"{k_path}: {where}: a JSON 6902 patch needs a target; add one")
    if is6902 and (len(docs) != 1 or not isinstance(docs[0].data, list)):
        raise KustomizeError(f"{k_path}: {where}: a JSON 6902 patch must be one list of ops; fix it")
    return Patch(where, target, docs, is6902, file, inline)


def _parse_kustomization(tree: Tree, directory: str) -> Kustomization:
    path = tree.kustomization_file(directory)
    if path is None:
        raise KustomizeError(f"{directory or '.'}/: has no kustomization.yaml")
    text = tree.text(path)
    docs = load_documents(path, text)
    if len(docs) != 1 or not isinstance(docs[0].data, Mapping):
        raise KustomizeError(f"{path}: expected one Kustomization mapping; fix the file")
    doc = docs[0]
    data = doc.data
    kind = str(data.get("kind") or "Kustomization")
    resources = [
        _resolve(tree, directory, path, e, f"{key}[{i}]")
        for key in ("resources", "bases")
        for i, e in enumerate(_list(data.get(key), path, key))
    ]
    components = [
        _resolve(tree, directory, path, e, f"components[{i}]")
        for i, e in enumerate(_list(data.get("components"), path, "components"))
    ]
    patches: list[Patch] = []
    # kustomize applies strategic-merge patches, then `patches`, then (after
    # prefixes and labels) `patchesJson6902`.
    for i, raw in enumerate(_list(data.get("patchesStrategicMerge"), path, "patchesStrategicMerge")):
        where = f"patchesStrategicMerge[{i}]"
        if isinstance(raw, str) and "\n" not in raw.strip() and ":" not in raw:
            patches.append(_patch(tree, directory, path, where, (), {"path": raw}, False))
        else:
            smp = _patch_docs(f"{path} {where}", raw, path, where)
            patches.append(Patch(where, None, smp, False, None, ("patchesStrategicMerge", i)))
    for i, raw in enumerate(_list(data.get("patches"), path, "patches")):
        patches.append(_patch(tree, directory, path, f"patches[{i}]", ("patches", i), raw, None))
    for i, raw in enumerate(_list(data.get("patchesJson6902"), path, "patchesJson6902")):
        where = f"patchesJson6902[{i}]"
        patches.append(_patch(tree, directory, path, where, ("patchesJson6902", i), raw, True))
    reasons = [why for key, why in _UNTRACEABLE.items() if data.get(key)]
    return Kustomization(
        dir=directory,
        path=path,
        kind=kind,
        doc=doc,
        text=text,
        resources=tuple(resources),
        components=tuple(components),
        patches=tuple(patches),
        name_prefix=str(data.get("namePrefix") or ""),
        name_suffix=str(data.get("nameSuffix") or ""),
        untraceable=f"{path} uses {' and '.join(reasons)}" if reasons else None,
    )


# --- rendering -------------------------------------------------------------------------


@dataclass(frozen=True)
class Render:
    """One ``kubectl kustomize`` output."""

    directory: str
    text: str
    docs: tuple[Doc, ...]


_RENDERS: dict[str, Render | KustomizeError] = {}


def _digest(directory: str, files: Mapping[str, str]) -> str:
    h = hashlib.sha256(directory.encode() + b"\0")
    for path in sorted(files):
        h.update(f"{path}\0{files[path]}\n".encode())
    return h.hexdigest()


def kubectl() -> str:
    return os.environ.get(KUBECTL_ENV) or "kubectl"


def _kubectl_message(stderr: str, tmp: str) -> str:
    text = stderr.replace(tmp + "/", "").replace(tmp, ".")
    m = re.search(r'err="((?:[^"\\]|\\.)*)"', text)
    if m:
        text = m.group(1).replace('\\"', '"')
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    msg = " ".join(ln.removeprefix("Error: ").removeprefix("error: ") for ln in lines) or "no output"
    return msg if len(msg) <= 400 else msg[:397] + "..."


def _run_kubectl(tmp: str, directory: str) -> Render | KustomizeError:
    target = os.path.join(tmp, directory) if directory else tmp
    try:
        proc = run([kubectl(), "kustomize", target], cwd=tmp, check=False)
    except UsageError:
        raise UsageError(
            f"`{kubectl()}` is not installed or not on PATH; it renders the Kustomize overlay "
            f"{directory or '.'}/: install kubectl (or set {KUBECTL_ENV}), or leave Kustomize "
            "directories out of claims.paths in .feedbackctl.yaml"
        ) from None
    where = f"{directory or '.'}/"
    if proc.returncode != 0:
        message = _kubectl_message(proc.stderr.decode("utf-8", "replace"), tmp)
        return KustomizeError(f"{where}: kubectl kustomize failed: {message}; fix the overlay")
    text = proc.stdout.decode("utf-8", "replace")
    try:
        docs = tuple(load_documents(f"{where} (rendered)", text))
    except YamlError as e:
        return KustomizeError(f"{where}: kubectl kustomize printed unreadable YAML ({e})")
    return Render(directory, text, docs)


def render(tree: Tree, directories: Sequence[str]) -> dict[str, Render | KustomizeError]:
    """Render each directory (cached by the content it reads), in parallel."""
    out: dict[str, Render | KustomizeError] = {}
    todo: dict[str, tuple[str, dict[str, str]]] = {}
    for d in dict.fromkeys(directories):
        try:
            files = tree.closure(d)
        except KustomizeError as e:
            out[d] = e
            continue
        key = _digest(d, files)
        if key in _RENDERS:
            out[d] = _RENDERS[key]
        else:
            todo[d] = (key, files)
    if todo:
        wanted: dict[str, None] = {}
        for _, files in todo.values():
            wanted.update(dict.fromkeys(files))
        contents = tree.read(wanted)
        with tempfile.TemporaryDirectory(prefix="feedbackctl-kustomize-") as tmp:
            for rel, data in contents.items():
                target = Path(tmp, rel)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            workers = max(1, min(MAX_PARALLEL_RENDERS, len(todo)))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(lambda d: _run_kubectl(tmp, d), todo))
        if len(_RENDERS) > _CACHE_LIMIT:
            _RENDERS.clear()
        for (d, (key, _)), result in zip(todo.items(), results, strict=True):
            _RENDERS[key] = result
            out[d] = result
    return out


def render_one(tree: Tree, directory: str) -> Render:
    got = render(tree, [directory])[directory]
    if isinstance(got, KustomizeError):
        raise got
    return got


# --- target selection --------------------------------------------------------------------


def _fullmatch(pattern: Any, value: str) -> bool | None:
    try:
        return re.fullmatch(str(pattern), value) is not None
    except re.error:
        return None


def _label_selector(selector: Any, labels: Mapping[str, Any]) -> bool | None:
    """Equality-based selectors (``a=b,c!=d``); None for set-based ones we do not evaluate."""
    if not isinstance(selector, str):
        return None
    for term in (t.strip() for t in selector.split(",") if t.strip()):
        m = re.fullmatch(r"([^=!\s]+)\s*(==|=|!=)\s*([^=!\s]*)", term)
        if m is None:
            return None
        key, op, value = m.groups()
        has = key in labels and str(labels[key]) == value
        if has if op == "!=" else not has:
            return False
    return True


def _identity(data: Mapping[str, Any]) -> tuple[str, str, str, str, Mapping[str, Any], Mapping[str, Any]]:
    api = str(data.get("apiVersion") or "")
    group, _, version = api.rpartition("/")
    meta = data.get("metadata") if isinstance(data.get("metadata"), Mapping) else {}
    assert isinstance(meta, Mapping)
    labels = meta.get("labels") if isinstance(meta.get("labels"), Mapping) else {}
    notes = meta.get("annotations") if isinstance(meta.get("annotations"), Mapping) else {}
    assert isinstance(labels, Mapping) and isinstance(notes, Mapping)
    return group, version, str(data.get("kind") or ""), str(meta.get("namespace") or ""), labels, notes


def selects(selector: Mapping[str, Any], data: Mapping[str, Any], names: Collection[str]) -> bool | None:
    """Does a patch target select this resource? None when we cannot tell."""
    group, version, kind, namespace, labels, annotations = _identity(data)
    verdicts: list[bool | None] = []
    for key, actual in (("group", group), ("version", version), ("kind", kind), ("namespace", namespace)):
        if selector.get(key) not in (None, ""):
            verdicts.append(_fullmatch(selector[key], actual))
    if selector.get("name") not in (None, ""):
        matches = [_fullmatch(selector["name"], n) for n in names]
        verdicts.append(True if any(matches) else None if None in matches else False)
    if selector.get("labelSelector"):
        verdicts.append(_label_selector(selector["labelSelector"], labels))
    if selector.get("annotationSelector"):
        verdicts.append(_label_selector(selector["annotationSelector"], annotations))
    if False in verdicts:
        return False
    return None if None in verdicts else True


def _smp_selects(patch: Mapping[str, Any], data: Mapping[str, Any], names: Collection[str]) -> bool:
    meta = patch.get("metadata") if isinstance(patch.get("metadata"), Mapping) else {}
    assert isinstance(meta, Mapping)
    _, _, kind, namespace, _, _ = _identity(data)
    if patch.get("kind") != kind or meta.get("name") not in names:
        return False
    return not meta.get("namespace") or meta.get("namespace") == namespace


# --- tracing ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedLocation(ValueLocation):
    """Where a rendered claim's value is set: a patch op, a patch file or the base resource.

    ``key_path`` addresses the scalar inside document ``doc_index`` of
    ``path``; for a patch written inline in ``kustomization.yaml`` it addresses
    the patch text, and ``inner_key_path`` the scalar inside that text. The
    offsets point at the scalar itself (inside the block scalar for an inline
    patch). ``reason`` is set instead when the value could not be traced; such
    a location is never edited.
    """

    key_path: KeyPath = ()
    inner_key_path: KeyPath | None = None
    inner_doc: int = 0
    setter: str = ""  # e.g. "JSON 6902 patch patches[0] op 5"
    overlay: str = ""  # the overlay directory that renders the claim
    overlays: tuple[str, ...] = ()  # every overlay of the snapshot (re-rendered to verify an edit)
    reason: str = ""  # non-empty: not traced, and why


@dataclass(frozen=True)
class _Found:
    file: str
    doc_index: int
    key_path: KeyPath
    value: Any
    setter: str
    inner_doc: int = 0
    inner_key_path: KeyPath | None = None


@dataclass
class _Input:
    data: Mapping[str, Any]
    sub: str | None = None  # the base directory that rendered it
    file: str | None = None  # or the resource file
    doc_index: int = 0


class Untraced(Exception):
    """Internal: why a value cannot be traced."""


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _same_value(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def op_effect(op: Any, field_name: str) -> str:
    """'set' when the op sets /spec/<field>, 'other' when it may change it another way, '' if not."""
    if not isinstance(op, Mapping):
        return "other"
    target = f"/spec/{field_name}"
    name, path, source = op.get("op"), op.get("path"), op.get("from")

    def touches(p: Any) -> bool:
        return isinstance(p, str) and (p == target or target.startswith(p.rstrip("/") + "/") or p == "")

    if name == "test":
        return ""
    if name in _ADD_REPLACE and path == target:
        return "set"
    if touches(path) or (isinstance(path, str) and path.startswith(target + "/")):
        return "other"
    if name == "move" and touches(source):
        return "other"
    return ""


class Tracer:
    """Traces rendered values to their source, layer by layer, for one tree."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self._inputs: dict[str, list[_Input]] = {}

    def inputs(self, k: Kustomization) -> list[_Input]:
        if k.dir not in self._inputs:
            found: list[_Input] = []
            for e in k.resources:
                if e.is_dir:
                    for doc in render_one(self.tree, e.path).docs:
                        if isinstance(doc.data, Mapping):
                            found.append(_Input(doc.data, sub=e.path))
                else:
                    for doc in self.tree.docs(e.path):
                        if isinstance(doc.data, Mapping):
                            found.append(_Input(doc.data, file=e.path, doc_index=doc.index))
            self._inputs[k.dir] = found
        return self._inputs[k.dir]

    def _names(self, k: Kustomization, data: Mapping[str, Any]) -> list[str]:
        """Names a resource may carry while this kustomization's patches apply, last = final."""
        meta = data.get("metadata") if isinstance(data.get("metadata"), Mapping) else {}
        assert isinstance(meta, Mapping)
        names = [str(meta.get("name") or "")]
        for p in k.patches:
            if not p.json6902:
                continue
            assert p.target is not None
            if selects(p.target, data, names) is False:
                continue
            for op in p.docs[0].data:
                if isinstance(op, Mapping) and op.get("op") in _ADD_REPLACE and op.get("path") == "/metadata/name":
                    names.append(str(op.get("value")))
        final = f"{k.name_prefix}{names[-1]}{k.name_suffix}"
        if final != names[-1]:
            names.append(final)
        return names

    def check_targets(self, k: Kustomization) -> None:
        """A patch that selects nothing is silently ignored by kustomize: make it an error."""
        inputs = self.inputs(k)
        named = [(i.data, self._names(k, i.data)) for i in inputs]
        for p in k.patches:
            if p.json6902:
                assert p.target is not None
                hit = any(selects(p.target, data, names) is not False for data, names in named)
                shown = ", ".join(f"{key}={v}" for key, v in p.target.items())
            elif p.target is not None:
                hit = any(selects(p.target, data, names) is not False for data, names in named)
                shown = ", ".join(f"{key}={v}" for key, v in p.target.items())
            else:
                docs = [d.data for d in p.docs if isinstance(d.data, Mapping)]
                hit = all(any(_smp_selects(d, data, names) for data, names in named) for d in docs)
                shown = "; ".join(f"kind={d.get('kind')}, name={(d.get('metadata') or {}).get('name')}" for d in docs)
            if not hit:
                raise KustomizeError(
                    f"{k.path}: {p.where}: target {{{shown}}} matches no resource, so kustomize "
                    "would skip the patch silently; fix the target"
                )

    def _match(self, k: Kustomization, out: Mapping[str, Any]) -> _Input:
        _, _, kind, _, _, _ = _identity(out)
        same = [i for i in self.inputs(k) if i.data.get("kind") == kind]
        if len(same) == 1:
            return same[0]
        name = str((out.get("metadata") or {}).get("name") or "")
        hits = [i for i in same if self._names(k, i.data)[-1] == name]
        if len(hits) != 1:
            raise Untraced(f"cannot tell which resource of {k.dir or '.'}/ renders {kind} {name}")
        return hits[0]

    def _setter(self, k: Kustomization, data: Mapping[str, Any], field_name: str) -> _Found | None:
        names = self._names(k, data)
        found: _Found | None = None
        for p in k.patches:
            if p.json6902:
                assert p.target is not None
                chosen = selects(p.target, data, names)
                if chosen is False:
                    continue
                for j, op in enumerate(p.docs[0].data):
                    effect = op_effect(op, field_name)
                    if effect and chosen is None:
                        raise Untraced(f"{k.path}: cannot evaluate the target of {p.where}")
                    if effect == "other":
                        raise Untraced(f"{k.path}: {p.where} op {j} changes spec.{field_name} indirectly")
                    if effect == "set":
                        found = self._found(p, k, 0, (j, "value"), op.get("value"), f"{p.describe()} op {j}")
                continue
            for doc in p.docs:
                smp = doc.data
                if not isinstance(smp, Mapping):
                    continue
                chosen = selects(p.target, data, names) if p.target is not None else _smp_selects(smp, data, names)
                if chosen is False:
                    continue
                spec = smp.get("spec")
                if isinstance(spec, Mapping) and (any(str(key).startswith("$") for key in spec) or "$patch" in smp):
                    raise Untraced(f"{k.path}: {p.where} uses a $patch directive on spec")
                if "spec" in smp and not isinstance(spec, Mapping):
                    raise Untraced(f"{k.path}: {p.where} replaces spec as a whole")
                if isinstance(spec, Mapping) and field_name in spec:
                    if chosen is None:
                        raise Untraced(f"{k.path}: cannot evaluate the target of {p.where}")
                    if not _scalar(spec[field_name]):
                        raise Untraced(f"{k.path}: {p.where} sets spec.{field_name} to a structure")
                    found = self._found(p, k, doc.index, ("spec", field_name), spec[field_name], p.describe())
        return found

    @staticmethod
    def _found(p: Patch, k: Kustomization, doc_index: int, key: KeyPath, value: Any, setter: str) -> _Found:
        if p.file is not None:
            return _Found(p.file, doc_index, key, value, setter)
        return _Found(k.path, k.doc.index, p.key_path, value, setter, doc_index, key)

    def trace(self, directory: str, out: Mapping[str, Any], field_name: str) -> _Found:
        k = self.tree.kustomization(directory)
        if k.untraceable:
            raise Untraced(k.untraceable)
        source = self._match(k, out)
        found = self._setter(k, source.data, field_name)
        if found is not None:
            return found
        if source.sub is not None:
            return self.trace(source.sub, source.data, field_name)
        assert source.file is not None
        spec = source.data.get("spec")
        if not isinstance(spec, Mapping) or field_name not in spec:
            raise Untraced(f"spec.{field_name} is not set in {source.file} nor by a patch")
        return _Found(source.file, source.doc_index, ("spec", field_name), spec[field_name], "resource")

    def locate(self, found: _Found) -> ValueLocation:
        """Offsets of the traced scalar (inside the block scalar of an inline patch)."""
        docs = self.tree.docs(found.file)
        doc = next(d for d in docs if d.index == found.doc_index)
        outer = doc.positions.get(found.key_path)
        if outer is None:
            raise Untraced(f"{found.file}: the value has no position (an alias or a merge key)")
        if found.inner_key_path is None:
            return outer
        text = self.tree.text(found.file)
        inner_text = _lookup(doc.data, found.key_path)
        inner_docs = load_documents(found.file, inner_text)
        inner_doc = next(d for d in inner_docs if d.index == found.inner_doc)
        inner = inner_doc.positions.get(found.inner_key_path)
        if inner is None:
            raise Untraced(f"{found.file}: the value has no position inside {found.setter}")
        mapped = map_inline(text, outer, inner_text, inner.start, inner.end)
        if mapped is None:
            raise Untraced(f"{found.file}: the patch text is not a literal block scalar (|); edit it by hand")
        start, end, line, column = mapped
        return ValueLocation(found.file, found.doc_index, start, end, line, column)


def _lookup(data: Any, key_path: KeyPath) -> Any:
    for part in key_path:
        data = data[part]
    return data


def block_lines(text: str, outer: ValueLocation) -> tuple[int, list[int]] | None:
    """For a literal block scalar: its indentation and the offset where each content line starts."""
    if text[outer.start : outer.start + 1] != "|":
        return None
    header_end = text.find("\n", outer.start)
    if header_end < 0 or any(ch.isdigit() for ch in text[outer.start : header_end].split("#")[0]):
        return None
    starts = []
    pos = header_end + 1
    while pos <= outer.end and pos < len(text):
        starts.append(pos)
        nl = text.find("\n", pos)
        if nl < 0:
            break
        pos = nl + 1
    indent = None
    for s in starts:
        line = text[s : text.find("\n", s) if text.find("\n", s) >= 0 else len(text)]
        if line.strip():
            indent = len(line) - len(line.lstrip(" "))
            break
    if indent is None:
        return None
    return indent, starts


def map_inline(
    text: str, outer: ValueLocation, inner_text: str, start: int, end: int
) -> tuple[int, int, int, int] | None:
    """Map [start, end) of a literal block scalar's value to offsets in the file's text.

    Returns (start, end, line, column); None when the span cannot be mapped
    exactly (another scalar style, an explicit indentation indicator, a span
    across lines) or the file's text there differs from the value's.
    """
    layout = block_lines(text, outer)
    if layout is None or "\n" in inner_text[start:end]:
        return None
    indent, starts = layout
    line_no = inner_text.count("\n", 0, start)
    column = start - (inner_text.rfind("\n", 0, start) + 1)
    if line_no >= len(starts):
        return None
    s = starts[line_no] + indent + column
    e = s + (end - start)
    if text[s:e] != inner_text[start:end]:
        return None
    line = text.count("\n", 0, s) + 1
    return s, e, line, s - (text.rfind("\n", 0, s) + 1) + 1


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
        except KustomizeError as e:
            result.errors.append(e)
            continue
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
        except Untraced as why:
            locations[f"spec.{name}"] = RenderedLocation(
                k_path, 0, 0, 0, 0, 0, overlay=overlay, overlays=overlays, reason=str(why)
            )
            continue
        except (KustomizeError, YamlError) as e:
            locations[f"spec.{name}"] = RenderedLocation(
                k_path, 0, 0, 0, 0, 0, overlay=overlay, overlays=overlays, reason=str(e)
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
