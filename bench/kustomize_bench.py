"""Kustomize overlays: snapshot, edit and verify against the cost of kubectl itself.

A generated repo holds one base claim and N overlays, each setting its name,
memory and timeout with an inline JSON 6902 patch (the corpus's shape).
Floor = N sequential ``kubectl kustomize`` runs on a checkout (what any tool
that renders every overlay pays). Figures:

- cold snapshot: empty render cache; one kubectl per overlay plus the base,
  run in parallel;
- warm snapshot: the same process again (renders cached by content);
- edit one overlay: splice + re-render that overlay + compare;
- batch edit of the base: every overlay re-rendered and compared.

    python -m bench.kustomize_bench [--overlays 4 50 200]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

from bench.common import OUT, Row, print_rows, timed

BASE = """\
apiVersion: messagewall.demo/v1alpha1
kind: ServerlessEventAppClaim
metadata:
  name: app
  namespace: default
spec:
  environment: dev
  lambdaMemory: 128  # base default
  lambdaTimeout: 10
  region: us-east-1
"""
OVERLAY = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
patches:
  - target:
      kind: ServerlessEventAppClaim
      name: app
    patch: |
      - op: replace
        path: /metadata/name
        value: app-{i:04d}
      - op: replace
        path: /spec/lambdaMemory
        value: {memory}
      - op: replace
        path: /spec/lambdaTimeout
        value: 30
"""


def _git(cwd: str, *args: str) -> None:
    subprocess.run(["git", "-C", cwd, *args], check=True, capture_output=True)


def make_repo(n: int) -> str:
    root = OUT / f"kustomize-{n}"
    shutil.rmtree(root, ignore_errors=True)
    (root / "claims/base").mkdir(parents=True)
    (root / "claims/base/claim.yaml").write_text(BASE)
    (root / "claims/base/kustomization.yaml").write_text("resources:\n  - claim.yaml\n")
    for i in range(n):
        d = root / f"claims/overlays/o{i:04d}"
        d.mkdir(parents=True)
        (d / "kustomization.yaml").write_text(OVERLAY.format(i=i, memory=256 + 128 * (i % 4)))
    _git(str(root), "init", "-q", "-b", "main")
    _git(str(root), "add", "-A")
    _git(str(root), "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "overlays")
    return str(root)


def floor(root: str, n: int) -> float:
    def run_all() -> None:
        for i in range(n):
            subprocess.run(
                ["kubectl", "kustomize", f"{root}/claims/overlays/o{i:04d}"], check=True, capture_output=True
            )

    seconds, _ = timed(run_all)
    return seconds


def one_size(n: int) -> list[Row]:
    from feedbackctl.authority import kustomize, kustomize_render
    from feedbackctl.authority.gitrepo import GitRepo
    from feedbackctl.authority.snapshot import load_snapshot
    from feedbackctl.authority.writer import Staging

    root = make_repo(n)
    base = floor(root, n)
    repo = GitRepo.open(root)
    kustomize_render._RENDERS.clear()
    kustomize._LISTINGS.clear()
    cold, s = timed(lambda: load_snapshot(repo, None))
    assert len(s.claims) == n and not s.errors, s.errors
    warm, s = timed(lambda: load_snapshot(repo, None))
    one = s.claim(f"app-{n - 1:04d}")
    shared = s.claim("app-0000")  # its region is set in the base, for all N
    assert one is not None and shared is not None
    edit, _ = timed(lambda: Staging(repo, s.commit).set_value(one, "lambdaMemory", 1024))
    batch, _ = timed(lambda: Staging(repo, s.commit).set_value(shared, "region", "us-west-2", batch=True))
    section = f"{n} overlays"
    return [
        Row(section, "kubectl floor (sequential)", base, None, "", f"{base / n * 1000:.0f} ms/overlay"),
        Row(section, "snapshot cold", cold, base, "<= 1x floor", "parallel renders + base + tracing"),
        Row(section, "snapshot warm", warm, base, "a fraction", "renders cached by content"),
        Row(section, "edit one overlay + verify", edit, base / n, "~1 render", "one re-render"),
        Row(section, "batch edit of base + verify", batch, base, "~1x floor", "every overlay re-rendered"),
    ]


def bench(sizes: list[int]) -> list[Row]:
    return [row for n in sizes for row in one_size(n)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--overlays", type=int, nargs="+", default=[4, 50, 200])
    a = ap.parse_args(sys.argv[1:] if argv is None else argv)
    print_rows(bench(a.overlays), title="feedbackctl Kustomize benchmarks")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
