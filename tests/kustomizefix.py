"""Copies of the real corpus in temporary git repos, and an independent kubectl render.

The corpus (the seed's own source repository) authors its claims two ways:
plain files under ``examples/claims`` and a Kustomize base plus four
overlays under ``infra/claims``. Tests copy the whole directory into a fresh
repo, change what they need, and check results with the real ``kubectl``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.clirun import Result, cli
from tests.gitutil import RepoFactory


def _corpus() -> Path:
    """The corpus in the shared folder beside the repo (CI clones elsewhere, with shared/ beside it)."""
    named = os.environ.get("FEEDBACKCTL_CORPUS")
    if named:
        return Path(named)
    here = Path(__file__).resolve().parents[1]
    for shared in (here.parent / "shared", Path("/work/shared")):
        candidate = shared / "corpus" / "serverless-message-wall-demo"
        if candidate.is_dir():
            return candidate
    return here.parent / "shared" / "corpus" / "serverless-message-wall-demo"


CORPUS = _corpus()
EXAMPLE_METRICS = Path(__file__).resolve().parents[1] / "examples" / "messagewall" / "metrics"
NOW = "2026-11-08T00:00:00Z"  # the end of the example metric fixtures

OVERLAYS = ("dev-east", "dev-west", "prod-east", "prod-west")
BASE = "infra/claims/base/claim.yaml"
XRD = "platform/crossplane/xrd/serverless-event-app.yaml"
RENDERED = tuple(f"messagewall-{o}" for o in OVERLAYS)
PLAIN = ("messagewall-dev", "messagewall-prod")


def overlay(name: str) -> str:
    return f"infra/claims/overlays/{name}/kustomization.yaml"


def corpus_files() -> dict[str, str]:
    return {
        str(p.relative_to(CORPUS)): p.read_text()
        for p in sorted(CORPUS.rglob("*"))
        if p.is_file() and ".git" not in p.parts
    }


def corpus_repo(repo_factory: RepoFactory, changes: Mapping[str, str | None] | None = None) -> Path:
    """A work repo (with a bare origin) holding the corpus, with ``changes`` applied."""
    files: dict[str, str | None] = {**corpus_files(), **(changes or {})}
    work, _ = repo_factory({p: t for p, t in files.items() if t is not None})
    return work


def replace_in(path: str, old: str, new: str, count: int = 1) -> str:
    """The corpus file ``path`` with ``old`` replaced (it must be there)."""
    text = corpus_files()[path]
    assert old in text, f"{old!r} not in {path}"
    return text.replace(old, new, count)


def kubectl_render(directory: Path) -> list[dict[str, Any]]:
    """Render with the real kubectl, independently of the code under test."""
    proc = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=True
    )
    return [d for d in yaml.safe_load_all(proc.stdout) if d is not None]


def render_all(work: Path) -> dict[str, list[dict[str, Any]]]:
    return {o: kubectl_render(work / "infra/claims/overlays" / o) for o in OVERLAYS}


def metrics_dir(tmp_path: Path, claims: Mapping[str, str] | None = None) -> Path:
    """Fixture metrics: prod-like pressure for prod claims, idle dev data for dev claims."""
    claims = claims or {
        **{
            c: "messagewall-prod"
            for c in ("messagewall-prod", "messagewall-prod-east", "messagewall-prod-west")
        },
        **{c: "messagewall-dev" for c in ("messagewall-dev", "messagewall-dev-east", "messagewall-dev-west")},
    }
    out = tmp_path / "metrics"
    for claim, source in claims.items():
        shutil.copytree(EXAMPLE_METRICS / source, out / claim)
    return out


def corpus_cli(command: str, work: Path, tmp_path: Path) -> Result:
    """``feedbackctl COMMAND --output json`` on a corpus repo, with the example metrics at ``NOW``."""
    metrics = str(metrics_dir(tmp_path))
    return cli(command, "--repo", str(work), "--metrics", metrics, "--now", NOW, "--output", "json")
