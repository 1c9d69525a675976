"""Hostile kustomizations: every field that can load a file or URL is checked before kubectl runs.

Each case edits the corpus's dev-east overlay, runs ``analyze`` through the CLI
and asserts: one clear line naming the overlay file and field, exit 1, the
other five claims still decided, no request at the canary server on
127.0.0.1 (the URL every case points at) and nothing written outside the
repo and the tool's temp folder.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from feedbackctl.core import regex
from tests.gitutil import RepoFactory, commit_files
from tests.kustomizefix import BASE, OVERLAYS, corpus_repo, overlay, replace_in
from tests.security.hostilefix import (
    ALL_CLAIMS,
    Canary,
    analyze,
    assert_refused,
    canary_server,
    claims_decided,
    files_under,
    problems,
)

DEV_EAST = overlay("dev-east")
OTHERS = tuple(c for c in ALL_CLAIMS if c != "messagewall-dev-east")
KIND = "kind: Kustomization\n"


@pytest.fixture
def canary() -> Iterator[Canary]:
    with canary_server() as c:
        yield c


def _add(text: str) -> Callable[[str], str]:
    """The overlay with ``text`` (``{url}`` filled in) added at the top level."""
    return lambda url: replace_in(DEV_EAST, KIND, KIND + text.format(url=url))


def _resource(entry: str) -> Callable[[str], str]:
    """The overlay with one more ``resources`` entry (``{url}`` filled in)."""
    base = "  - ../../base\n"
    return lambda url: replace_in(DEV_EAST, base, f"{base}  - {entry.format(url=url)}\n")


def _patch_path(url: str) -> str:
    return replace_in(DEV_EAST, "  - target:\n", f"  - path: {url}/p.yaml\n  - target:\n")


# field -> (edit of dev-east given the canary URL, the problem it must be named by)
URL_CASES: dict[str, tuple[Callable[[str], str], str]] = {
    "resources": (_resource("{url}/r.yaml"), r"resources\[1\]: remote"),
    "bases": (_add("bases:\n  - {url}/base\n"), r"bases\[0\]: remote"),
    "components": (_add("components:\n  - {url}/c\n"), r"components\[0\]: remote"),
    "patches.path": (_patch_path, r"patches\[0\]\.path: remote"),
    "patchesStrategicMerge": (
        _add("patchesStrategicMerge:\n  - {url}/smp.yaml\n"),
        r"patchesStrategicMerge\[0\](\.path)?: remote",
    ),
    "patchesJson6902": (
        _add("patchesJson6902:\n  - target: {{kind: X, name: y}}\n    path: {url}/j.yaml\n"),
        r"patchesJson6902\[0\]\.path: remote",
    ),
    "configMapGenerator.files": (
        _add("configMapGenerator:\n  - name: c\n    files:\n      - {url}/f\n"),
        r"configMapGenerator\[0\]\.files\[0\]: remote",
    ),
    "configMapGenerator.files key=url": (
        _add("configMapGenerator:\n  - name: c\n    files:\n      - k={url}/f\n"),
        r"configMapGenerator\[0\]\.files\[0\]: remote",
    ),
    "configMapGenerator.envs": (
        _add("configMapGenerator:\n  - name: c\n    envs:\n      - {url}/e.env\n"),
        r"configMapGenerator\[0\]\.envs\[0\]: remote",
    ),
    "configMapGenerator.env": (
        _add("configMapGenerator:\n  - name: c\n    env: {url}/e.env\n"),
        r"configMapGenerator\[0\]\.env: remote",
    ),
    "secretGenerator.files": (
        _add("secretGenerator:\n  - name: s\n    files:\n      - {url}/f\n"),
        r"secretGenerator\[0\]\.files\[0\]: remote",
    ),
    "secretGenerator.envs": (
        _add("secretGenerator:\n  - name: s\n    envs:\n      - {url}/e.env\n"),
        r"secretGenerator\[0\]\.envs\[0\]: remote",
    ),
    "openapi.path": (_add("openapi:\n  path: {url}/schema.json\n"), r"openapi\.path: remote"),
    "replacements.path": (
        _add("replacements:\n  - path: {url}/rep.yaml\n"),
        r"replacements\[0\]\.path: remote",
    ),
    "crds": (_add("crds:\n  - {url}/crd.json\n"), r"crds\[0\]: remote"),
    "configurations": (_add("configurations:\n  - {url}/conf.yaml\n"), r"configurations\[0\]: remote"),
    "generators": (_add("generators:\n  - {url}/gen.yaml\n"), r"generators\[0\]: remote"),
    "transformers": (_add("transformers:\n  - {url}/t.yaml\n"), r"transformers\[0\]: remote"),
    "validators": (_add("validators:\n  - {url}/v.yaml\n"), r"validators\[0\]: remote"),
    "helmCharts": (_add("helmCharts:\n  - name: x\n    repo: {url}/charts\n"), r"helmCharts: Helm charts"),
    "git url": (_resource("git::{url}/repo.git//x"), r"resources\[1\]: remote"),
    "file url": (_resource("file:///etc/passwd"), r"resources\[1\]: remote"),
    "scp-like git": (_resource("git@127.0.0.1:x/y.git"), r"resources\[1\]: remote"),
}


def _outside(tmp_path: Path, work: Path) -> set[str]:
    return files_under(tmp_path, skip=(work, tmp_path / "tool-tmp", tmp_path / "work-origin.git"))


@pytest.mark.parametrize("case", sorted(URL_CASES))
def test_a_url_in_any_loading_field_is_refused_and_never_fetched(
    repo_factory: RepoFactory, tmp_path: Path, canary: Canary, case: str
) -> None:
    edit, named = URL_CASES[case]
    work = corpus_repo(repo_factory, {DEV_EAST: edit(canary.url)})
    before = _outside(tmp_path, work)
    r = analyze(tmp_path, work)
    assert_refused(r, rf"^{re.escape(DEV_EAST)}: {named}", OTHERS)
    assert canary.hits == []
    added = _outside(tmp_path, work) - before
    assert {p for p in added if p != "metrics" and not p.startswith("metrics/")} == set()


PATH_CASES: dict[str, tuple[str, str]] = {
    "absolute generator file": (
        "configMapGenerator:\n  - name: c\n    files:\n      - /etc/passwd\n",
        r"configMapGenerator\[0\]\.files\[0\]: '/etc/passwd' is an absolute path",
    ),
    "generator file leaving the repo": (
        "configMapGenerator:\n  - name: c\n    files:\n      - ../../../../../../etc/passwd\n",
        r"configMapGenerator\[0\]\.files\[0\]: '.*' points outside the repository",
    ),
    "generator env beside the root": (
        "configMapGenerator:\n  - name: c\n    envs:\n      - ../../base/claim.yaml\n",
        r"configMapGenerator\[0\]\.envs\[0\]: '../../base/claim.yaml' is a file outside",
    ),
    "openapi absolute": (
        "openapi:\n  path: /etc/hostname\n",
        r"openapi\.path: '/etc/hostname' is an absolute",
    ),
    "replacements leaving the repo": (
        "replacements:\n  - path: ../../../../../../../etc/passwd\n",
        r"replacements\[0\]\.path: '.*' points outside the repository",
    ),
    "a .git component": (
        "configMapGenerator:\n  - name: c\n    files:\n      - .git/config\n",
        r"configMapGenerator\[0\]\.files\[0\]: '.git/config' has a '.git' component",
    ),
    "crds absolute": ("crds:\n  - /etc/passwd\n", r"crds\[0\]: '/etc/passwd' is an absolute path"),
}


@pytest.mark.parametrize("case", sorted(PATH_CASES))
def test_a_path_leaving_the_root_is_refused_naming_overlay_and_field(
    repo_factory: RepoFactory, tmp_path: Path, canary: Canary, case: str
) -> None:
    text, named = PATH_CASES[case]
    work = corpus_repo(repo_factory, {DEV_EAST: replace_in(DEV_EAST, KIND, KIND + text)})
    r = analyze(tmp_path, work)
    assert_refused(r, rf"^{re.escape(DEV_EAST)}: {named}", OTHERS)
    assert canary.hits == []


def test_a_generator_file_inside_the_root_still_renders(repo_factory: RepoFactory, tmp_path: Path) -> None:
    """The checks refuse only what leaves the root: a local generator file is fine."""
    generator = "configMapGenerator:\n  - name: c\n    files:\n      - k=extra.txt\n"
    text = replace_in(DEV_EAST, KIND, KIND + generator)
    work = corpus_repo(repo_factory, {DEV_EAST: text, "infra/claims/overlays/dev-east/extra.txt": "hello\n"})
    r = analyze(tmp_path, work)
    assert r.code == 0, r.stdout + r.stderr
    assert claims_decided(r) == sorted(ALL_CLAIMS)


# --- patterns on RE2 ----------------------------------------------------------------------

EVIL = "(a|a)*b"


def test_a_catastrophic_target_name_pattern_is_evaluated_in_linear_time(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    """Python's ``re`` would backtrack 2**40 times on this subject; RE2 (like kubectl) answers at once."""
    base_claim = replace_in(BASE, "  name: messagewall  # Patched by overlay\n", f"  name: {'a' * 40}\n")
    evil = {
        "infra/evil/base/claim.yaml": base_claim,
        "infra/evil/base/kustomization.yaml": "resources:\n  - claim.yaml\n",
        "infra/evil/overlay/kustomization.yaml": (
            "resources:\n  - ../base\npatches:\n  - target:\n      kind: ServerlessEventAppClaim\n"
            f'      name: "{EVIL}"\n    patch: |\n      - op: replace\n        path: /spec/region\n'
            "        value: us-east-2\n"
        ),
    }
    work = corpus_repo(repo_factory, evil)
    r = analyze(tmp_path, work)
    named = r"^infra/evil/overlay/kustomization\.yaml: patches\[0\]: target .* matches no resource"
    assert_refused(r, named, ALL_CLAIMS)


def test_re2_gives_kubectls_answers_for_the_corpus_targets() -> None:
    """Kustomize anchors target patterns; these are the corpus's own and their edge cases."""
    assert regex.fullmatch("messagewall", "messagewall") is True
    assert regex.fullmatch("messagewall", "messagewall-dev") is False  # anchored, as in kustomize
    assert regex.fullmatch("messagewall.*", "messagewall-dev-east") is True
    assert regex.fullmatch("ServerlessEventAppClaim", "ServerlessEventAppClaim") is True
    assert regex.fullmatch(EVIL, "a" * 64) is False
    assert regex.search("^(a|a)*b$", "a" * 64) is False
    assert regex.fullmatch("(?=x)x", "x") is None  # not RE2: an invalid pattern, as in Go
    assert regex.pattern_error("(?=x)") is not None


def test_an_xrd_pattern_re2_cannot_compile_is_one_problem(repo_factory: RepoFactory, tmp_path: Path) -> None:
    from tests.kustomizefix import XRD

    work = corpus_repo(repo_factory)
    xrd = (work / XRD).read_text()
    old = 'pattern: "^[a-z][a-z0-9-]*$"'
    assert old in xrd, "corpus XRD layout changed"
    commit_files(work, {XRD: xrd.replace(old, "pattern: '^(?=m)[a-z-]*$'", 1)}, "a look-ahead")
    r = analyze(tmp_path, work)
    found = [p for p in problems(r) if "RE2" in p]
    assert len(found) == 1 and XRD in found[0], problems(r)
    assert r.code in (0, 1, 2)  # a schema problem is reported; the claims still run
    assert set(claims_decided(r)) == set(ALL_CLAIMS)


def test_every_corpus_overlay_still_renders_with_the_restrictions(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    """The proxy, plugin and load-restrictor settings change nothing for honest overlays."""
    work = corpus_repo(repo_factory)
    r = analyze(tmp_path, work)
    assert r.code == 0, r.stdout + r.stderr
    assert claims_decided(r) == sorted(ALL_CLAIMS)
    assert {f"messagewall-{o}" for o in OVERLAYS} <= set(claims_decided(r))
