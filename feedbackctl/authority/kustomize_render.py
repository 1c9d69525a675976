"""Rendering Kustomize roots with ``kubectl kustomize``, from the tree at the authority ref.

Rendering reads the tree at the authority ref (never the work tree): the
files an overlay can load (the directories of every root it reaches, which is
what kustomize's default load restrictor allows) are written to a temporary
directory, one ``kubectl kustomize`` process per overlay, run in parallel.
Renders are cached by the content of those files, so an overlay is rendered
once per run however often it is read, and re-rendering after an edit only
runs what the edit touched. ``kustomize.py`` reads the tree and refuses remote
bases and paths that leave the repository before kubectl runs.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from feedbackctl.authority.kustomize import _CACHE_LIMIT, KustomizeError, Tree
from feedbackctl.authority.paths import inside
from feedbackctl.authority.tempdirs import private_dir
from feedbackctl.authority.yamldoc import Doc, YamlError, load_documents
from feedbackctl.errors import UsageError
from feedbackctl.proc import SubprocessTimeout, run, timeout_for

KUBECTL_ENV = "FEEDBACKCTL_KUBECTL"  # path of the kubectl binary (default: kubectl on PATH)
MAX_PARALLEL_RENDERS = 8
KUBECTL_TIMEOUT_ENV = "FEEDBACKCTL_KUBECTL_TIMEOUT"
KUBECTL_TIMEOUT = 120.0  # seconds for one render; a correct overlay takes well under one
# kubectl may reach nothing: every proxy variable points at a closed local port
# (a URL we failed to refuse cannot be fetched), plugins have no home, and no
# flag that enables exec, helm or a looser load restrictor is passed.
_NO_ROUTE = "http://127.0.0.1:9"
KUBECTL_ENV_OVERRIDES: dict[str, str | None] = {
    **{k: _NO_ROUTE for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")},
    "all_proxy": _NO_ROUTE,
    "NO_PROXY": None,
    "no_proxy": None,
    "KUSTOMIZE_PLUGIN_HOME": "/nonexistent/feedbackctl-no-plugins",
    "KUSTOMIZE_ENABLE_ALPHA_COMMANDS": None,
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ALLOW_PROTOCOL": "",
}


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
    seconds = timeout_for(KUBECTL_TIMEOUT_ENV, KUBECTL_TIMEOUT)
    try:
        argv = [kubectl(), "kustomize", "--load-restrictor=LoadRestrictionsRootOnly", target]
        proc = run(argv, cwd=tmp, env=KUBECTL_ENV_OVERRIDES, check=False, timeout=seconds)
    except SubprocessTimeout as e:
        return KustomizeError(
            f"{directory or '.'}/: kubectl kustomize did not finish within {e.seconds:g}s and was "
            f"killed; the other claims still run (check what the overlay waits on, or raise "
            f"{KUBECTL_TIMEOUT_ENV})"
        )
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
        with private_dir("feedbackctl-kustomize-") as folder:
            tmp = str(folder)
            for rel, data in contents.items():
                # Listed paths are already clean; this catches anything that still resolves away.
                target = inside(folder, rel, f"{tree.commit[:12]}: {rel}")
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "xb") as out_file:  # never through an existing file or link
                    out_file.write(data)
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
