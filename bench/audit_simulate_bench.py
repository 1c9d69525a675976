"""``audit verify`` over long auto-tune histories, and ``simulate`` steps per second.

audit: a repo of C claims and N auto-tune commits (written like autotune writes
them: object database + CAS, one change per commit, 90 minutes apart, round
robin over the claims); the floor is one ``git log --first-parent --raw`` of
the same range (the audit cannot read less). simulate: each shipped scenario,
guards on and off.

    python -m bench.audit_simulate_bench [--commits 200 1000] [--claims 50]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import OUT, ROOT, Row, print_rows, timed

CLAIM = """\
apiVersion: x.demo/v1
kind: ServerlessEventAppClaim
metadata:
  name: {name}
spec:
  environment: dev
  lambdaMemory: 1024
  lambdaTimeout: 30
  autoTune:
    enabled: true
    memoryBounds: {{min: 128, max: 4096}}
    timeoutBounds: {{min: 5, max: 900}}
    cooldownMinutes: 60
"""


def history(root: Path, claims: int, commits: int) -> Path:
    from feedbackctl.authority.gitrepo import GitRepo
    from feedbackctl.authority.writer import Plan, trailer, write

    repo_dir = root / f"audit-{claims}x{commits}"
    if (repo_dir / ".done").exists():
        return repo_dir
    shutil.rmtree(repo_dir, ignore_errors=True)
    (repo_dir / "claims").mkdir(parents=True)
    for i in range(claims):
        (repo_dir / "claims" / f"app-{i:03d}.yaml").write_text(CLAIM.format(name=f"app-{i:03d}"))
    env = {"GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
           "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "b@example.com", "GIT_COMMITTER_NAME": "Bench",
           "GIT_COMMITTER_EMAIL": "b@example.com", "PATH": "/usr/bin:/bin:/usr/local/bin"}
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo_dir)], check=True)
    subprocess.run(["git", "-C", str(repo_dir), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo_dir), "commit", "-qm", "claims"], check=True, env=env)
    repo = GitRepo.open(repo_dir)
    timeouts = [30] * claims
    at = datetime(2026, 1, 2, tzinfo=UTC)
    for k in range(commits):
        i = k % claims
        path = f"claims/app-{i:03d}.yaml"
        head = repo.resolve("main")
        text = (repo.read_file(head, path) or b"").decode()
        old, new = timeouts[i], timeouts[i] + 5
        text = text.replace(f"lambdaTimeout: {old}", f"lambdaTimeout: {new}", 1)
        timeouts[i] = new
        plan = Plan(
            f"feedbackctl: auto-tune app-{i:03d} lambdaTimeout {old} -> {new}",
            trailers=[trailer("auto-tune", f"app-{i:03d}", "lambdaTimeout", old=old, new=new,
                              source="metric-fixtures", rule="timeout-pressure", risk="LOW")],
            edits={path: text.encode()},
        )
        write(repo, "main", head, plan, at)
        at += timedelta(minutes=90)
    (repo_dir / ".done").write_text("ok")
    return repo_dir


def audit_rows(claims: int, commits: int) -> list[Row]:
    from feedbackctl.authority.gitrepo import GitRepo
    from feedbackctl.patterns.audit import verify

    repo_dir = history(OUT, claims, commits)
    floor, _ = timed(lambda: subprocess.run(
        ["git", "-C", str(repo_dir), "log", "--first-parent", "--raw", "--format=%H %B", "main"],
        capture_output=True, check=True))
    seconds, result = timed(lambda: verify(GitRepo.open(repo_dir), None, None))
    per = seconds / max(1, result.commits) * 1000
    return [Row("audit verify", f"{claims} claims, {commits} auto-tune commits", seconds, floor,
                "linear in commits", f"{per:.1f} ms/commit, {len(result.violations)} violations")]


def simulate_rows() -> list[Row]:
    from feedbackctl.patterns.simulate import Options, run, setup_from

    rows = []
    for scenario in sorted(p for p in (ROOT / "examples" / "scenarios").iterdir() if p.is_dir()):
        for guards in (True, False):
            setup = setup_from(Options(scenario=str(scenario), guards=guards))
            seconds, result = timed(lambda setup=setup: run(setup))  # type: ignore[misc]
            claim_steps = result.steps * len(setup.claims)
            rows.append(Row("simulate", f"{scenario.name}{'' if guards else ' --no-guards'}", seconds, None,
                            "", f"{claim_steps / seconds:.0f} claim-steps/s, {len(result.applied)} applied"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commits", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--claims", type=int, default=50)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    for n in args.commits:
        rows += audit_rows(args.claims, n)
    rows += simulate_rows()
    print_rows(rows, "audit verify and simulate")


if __name__ == "__main__":
    main()
