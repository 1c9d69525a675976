"""Kustomize roots at the authority ref: read their kustomizations.

A directory under the claim paths that holds a ``kustomization.yaml`` is a
Kustomize root. A root that another root lists in its ``resources`` (or
``components``) is a *base*: its claims exist only through the overlays that
use it, so it is not rendered on its own. Every other root is an *overlay*:
``kubectl kustomize`` renders it, and the claims it renders (named by their
rendered ``metadata.name``) are the effective claims (``overlays.py``).
Files inside a root's directory are Kustomize inputs, never plain claims.

Rendering them with ``kubectl kustomize`` lives in ``kustomize_render.py``.
Remote bases and paths that leave the repository are refused here, before
kubectl runs.
"""

from __future__ import annotations

import bisect
import hashlib
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from feedbackctl.authority.gitrepo import GitRepo
from feedbackctl.authority.paths import path_problem
from feedbackctl.authority.yamldoc import Doc, KeyPath, YamlError, load_documents
from feedbackctl.errors import FeedbackError

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
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
ADD_REPLACE = ("add", "replace")
# Other fields that name files or directories kustomize loads.
_LOADED = ("generators", "transformers", "validators", "crds", "configurations")
# Generator fields that load files (``files`` entries may be ``key=path``).
_GENERATORS = ("configMapGenerator", "secretGenerator")
# Fields that only fetch from elsewhere (chart repositories, plugins): never rendered.
_REFUSED = {
    "helmCharts": "Helm charts (kustomize would fetch and run helm)",
    "helmChartInflationGenerator": "Helm charts (kustomize would fetch and run helm)",
    "helmGlobals": "Helm charts (kustomize would fetch and run helm)",
}


class KustomizeError(FeedbackError):
    """One Kustomize root cannot be read or rendered; the other claims still run."""


# --- the tree at the authority ref ---------------------------------------------------

_LISTINGS: dict[tuple[str, str], dict[str, str]] = {}
# Parsed YAML by (path, blob id): a blob's content never changes.
_DOCS: dict[tuple[str, str], list[Doc]] = {}


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
    resources: tuple[Entry, ...]
    components: tuple[Entry, ...]
    loaded: tuple[Entry, ...]  # generators, transformers, crds, ...: files or directories
    patches: tuple[Patch, ...]  # in kustomize's application order
    name_prefix: str = ""
    name_suffix: str = ""
    untraceable: str | None = None  # why values set here cannot be traced

    @property
    def reaches(self) -> tuple[Entry, ...]:
        return tuple(e for e in (*self.resources, *self.components, *self.loaded) if e.is_dir)


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
        self._prefetched = False

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
        """The parsed documents of a file (cached by content across trees and runs)."""
        key = (path, self.blobs[path])
        if key not in _DOCS:
            if len(_DOCS) > _CACHE_LIMIT * 4:
                _DOCS.clear()
            _DOCS[key] = load_documents(path, self.text(path))
        return _DOCS[key]

    def _prefetch(self) -> None:
        """Every kustomization file in one read, before the first is parsed."""
        if not self._prefetched:
            self._prefetched = True
            self.read([p for p in self.paths if posixpath.basename(p) in KUSTOMIZATION_FILES])

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
            self._prefetch()
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
                raise KustomizeError(
                    f"{d}/: kustomizations refer to each other in a cycle ({chain}); break it"
                )
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
    if _REMOTE.search(text) or "://" in text:
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
    problem = path_problem(path) if path else None
    if problem:
        raise KustomizeError(f"{k_path}: {where}: '{text}' {problem}; use a plain path inside the repo")
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


_INLINE: dict[tuple[str, str], tuple[Doc, ...]] = {}


def _patch_docs(label: str, text: Any, k_path: str, where: str) -> tuple[Doc, ...]:
    if not isinstance(text, str):
        raise KustomizeError(f"{k_path}: {where}: expected the patch as text; fix the kustomization")
    if (label, text) not in _INLINE:
        try:
            docs = tuple(load_documents(label, text))
        except YamlError as e:
            raise KustomizeError(f"{k_path}: {where}: patch is not valid YAML ({e}); fix it") from None
        if len(_INLINE) > _CACHE_LIMIT * 4:
            _INLINE.clear()
        _INLINE[(label, text)] = docs
    return _INLINE[(label, text)]


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
    docs = tree.docs(path)
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
    # Plugin configs and other loaded files: checked like resources (in the
    # repo, not remote); inline configs (YAML text) are left to kustomize.
    loaded = [
        _resolve(tree, directory, path, e, f"{key}[{i}]")
        for key in _LOADED
        for i, e in enumerate(_list(data.get(key), path, key))
        if not (isinstance(e, str) and "\n" in e.strip())
    ]
    loaded += _file_fields(tree, directory, path, data)
    patches: list[Patch] = []
    # kustomize applies strategic-merge patches, then `patches`, then (after
    # prefixes and labels) `patchesJson6902`.
    for i, raw in enumerate(_list(data.get("patchesStrategicMerge"), path, "patchesStrategicMerge")):
        where = f"patchesStrategicMerge[{i}]"
        # One line that is not a YAML mapping is a file path (a URL too: refused as remote).
        one_line = isinstance(raw, str) and "\n" not in raw.strip()
        if one_line and ": " not in raw and not raw.strip().startswith(("{", "[")):
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
        resources=tuple(resources),
        components=tuple(components),
        loaded=tuple(loaded),
        patches=tuple(patches),
        name_prefix=str(data.get("namePrefix") or ""),
        name_suffix=str(data.get("nameSuffix") or ""),
        untraceable=f"{path} uses {' and '.join(reasons)}" if reasons else None,
    )


def _file_fields(tree: Tree, directory: str, path: str, data: Mapping[str, Any]) -> list[Entry]:
    """Files named by generators, openapi and replacements: in the repo, under the root, never URLs."""
    for key, why in _REFUSED.items():
        if data.get(key):
            raise KustomizeError(f"{path}: {key}: {why} is not supported; render the chart into the repo")
    out: list[Entry] = []
    for key in _GENERATORS:
        for i, gen in enumerate(_list(data.get(key), path, key)):
            if not isinstance(gen, Mapping):
                raise KustomizeError(f"{path}: {key}[{i}]: expected a mapping; fix the kustomization")
            for field_name in ("files", "envs", "env"):
                raw = gen.get(field_name)
                entries = [raw] if field_name == "env" and raw is not None else _list(raw, path, field_name)
                for j, entry in enumerate(entries):
                    where = f"{key}[{i}].{field_name}" + ("" if field_name == "env" else f"[{j}]")
                    written = entry
                    if field_name == "files" and isinstance(entry, str) and "=" in entry:
                        written = entry.partition("=")[2]  # key=path
                    out.append(_resolve(tree, directory, path, written, where, dirs=False))
    openapi = data.get("openapi")
    if isinstance(openapi, Mapping) and openapi.get("path") is not None:
        out.append(_resolve(tree, directory, path, openapi["path"], "openapi.path", dirs=False))
    elif openapi is not None and not isinstance(openapi, Mapping):
        raise KustomizeError(f"{path}: openapi: expected a mapping; fix the kustomization")
    for i, rep in enumerate(_list(data.get("replacements"), path, "replacements")):
        if isinstance(rep, Mapping) and rep.get("path") is not None:
            out.append(_resolve(tree, directory, path, rep["path"], f"replacements[{i}].path", dirs=False))
    return out
