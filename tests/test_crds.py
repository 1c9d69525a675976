"""The shipped CustomResourceDefinitions (deploy/crds/) describe what the tool writes.

Each CRD is parsed, rendered with the real ``kubectl kustomize`` from a kustomization
that includes it beside claims, and the sidecar and proposal record the CLI writes for
the example's claims are checked against its schema (group, version, kind, required
fields, enums).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.clirun import ROOT, cli
from tests.gitutil import git_out, make_repo
from tests.kustomizefix import kubectl_render

CRDS = ROOT / "deploy" / "crds"
EXAMPLE = ROOT / "examples" / "messagewall"
NOW = "2026-11-08T00:00:00Z"
FILES = {"recommendations": "configurationrecommendations.yaml", "proposals": "configurationproposals.yaml"}
KINDS = {"recommendations": "ConfigurationRecommendation", "proposals": "ConfigurationProposal"}


def crd(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((CRDS / FILES[name]).read_text())
    assert isinstance(doc, dict)
    return doc


def violations(schema: dict[str, Any], value: Any, where: str = "") -> list[str]:
    """The parts of OpenAPI v3 that the CRDs use: type, required, enum, properties, items."""
    if value is None and schema.get("nullable"):
        return []
    kind = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "number": (int, float), "integer": int}
    if kind and not isinstance(value, types[kind]):
        return [f"{where or '/'}: expected {kind}, got {value!r}"]
    out = []
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        out += [f"{where}/{k}: required" for k in schema.get("required", ()) if k not in value]
        for k, sub in schema.get("properties", {}).items():
            if k in value:
                out += violations(sub, value[k], f"{where}/{k}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            out += violations(schema["items"], item, f"{where}/{i}")
    return out


def check_against(name: str, doc: dict[str, Any]) -> None:
    c = crd(name)
    (version,) = [v for v in c["spec"]["versions"] if v["storage"]]
    assert doc["apiVersion"] == f"{c['spec']['group']}/{version['name']}"
    assert doc["kind"] == c["spec"]["names"]["kind"]
    assert violations(version["schema"]["openAPIV3Schema"], doc) == []


@pytest.mark.parametrize("name", sorted(FILES))
def test_each_crd_is_a_well_formed_definition(name: str) -> None:
    c = crd(name)
    assert (c["apiVersion"], c["kind"]) == ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
    spec = c["spec"]
    assert spec["names"]["kind"] == KINDS[name]
    assert c["metadata"]["name"] == f"{spec['names']['plural']}.{spec['group']}"
    assert spec["group"] == f"{name}.messagewall.demo"
    assert [v["storage"] for v in spec["versions"]].count(True) == 1
    assert all(v["served"] and v["schema"]["openAPIV3Schema"]["type"] == "object" for v in spec["versions"])


def test_kubectl_kustomize_renders_them_beside_the_claims(tmp_path: Path) -> None:
    shutil.copytree(CRDS, tmp_path / "crds")
    shutil.copytree(EXAMPLE / "claims", tmp_path / "claims")
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        "resources:\n  - crds\n  - claims/messagewall-prod.yaml\n  - claims/messagewall-dev.yaml\n"
    )
    rendered = kubectl_render(tmp_path)
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in rendered)
    assert kinds == [
        ("CustomResourceDefinition", "configurationproposals.proposals.messagewall.demo"),
        ("CustomResourceDefinition", "configurationrecommendations.recommendations.messagewall.demo"),
        ("ServerlessEventAppClaim", "messagewall-dev"),
        ("ServerlessEventAppClaim", "messagewall-prod"),
    ]
    assert [d["kind"] for d in kubectl_render(CRDS)] == ["CustomResourceDefinition"] * 2


def test_what_the_cli_writes_matches_the_crds(tmp_path: Path) -> None:
    files = {f"claims/{p.name}": p.read_text() for p in (EXAMPLE / "claims").glob("*.yaml")}
    files[".feedbackctl.yaml"] = "recommendations:\n  dir: feedback/recommendations\n"
    work, _ = make_repo(tmp_path, files, date="2026-10-01T00:00:00Z")
    metrics = tmp_path / "metrics"
    shutil.copytree(EXAMPLE / "metrics", metrics)
    common = ("--repo", str(work), "--metrics", str(metrics), "--now", NOW)
    r = cli("analyze", *common, "--write")
    assert r.code == 0, r.stderr
    # The configurable sidecar folder keeps them out of the claims folder a GitOps tool syncs.
    listed = git_out(work, "ls-tree", "-r", "--name-only", "main").splitlines()
    sidecars = [p for p in listed if p.endswith(".recommendation.yaml")]
    assert sidecars and all(p.startswith("feedback/recommendations/") for p in sidecars)
    for path in sidecars:
        check_against("recommendations", yaml.safe_load(git_out(work, "show", f"main:{path}")))
    r = cli("propose", *common)
    assert r.code == 0, r.stderr
    branch = "feedback/messagewall-dev/lambdaMemory"
    record = yaml.safe_load(git_out(work, "show", f"{branch}:proposals/messagewall-dev/lambdaMemory.yaml"))
    check_against("proposals", record)
