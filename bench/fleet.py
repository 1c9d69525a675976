"""Synthetic fleets for benchmarks: a claims repo and its metric fixtures.

Claims live in ``claims/<app>/<name>.yaml``, one per file, commented like the
corpus. Repos are written with one ``git fast-import`` stream (10k files in
seconds, not the minutes a commit per ``git add`` would take); fixtures are
epoch-second CSVs written with bulk string joins.

    python -m bench.fleet DIR --claims 10000 --points 168 --step 3600
    python -m bench.fleet DIR --history 20000     # also a repo with a year of commits
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from feedbackctl.proc import run

DEFAULT_NOW = 1794096000  # 2026-11-08T00:00:00Z, the end of the embedded example's week
DEFAULT_METRICS = ("memory_utilization", "used_memory_max", "duration_p99", "errors")
BRANCH = "main"
YEAR = 365 * 86400

APPS = ("messagewall", "orders", "billing", "search", "notify", "ingest", "reports", "auth")
ENVIRONMENTS = ("dev", "dev", "staging", "prod")
REGIONS = ("us-east-1", "us-west-2", "eu-west-1")
MEMORY_LADDER = (128, 192, 256, 320, 384, 512, 768, 1024, 1536, 2048, 3008)
TIMEOUTS = (3, 10, 15, 30, 60, 120)
AUTO_TUNE_FRACTION = 0.1

HUMANS = (
    ("Ana Ops", "ana@example.com"),
    ("Bo Platform", "bo@example.com"),
    ("Cy Oncall", "cy@example.com"),
)
FEEDBACKCTL = ("feedbackctl", "feedbackctl@localhost")
FLEET_BOT = ("Fleet Generator", "fleet@example.com")


@dataclass(frozen=True)
class FleetPaths:
    repo: Path  # git repo (work tree checked out unless bare) with claims/ on BRANCH
    metrics: Path  # fixtures: metrics/<claim>/<metric>.csv, epoch-second timestamps
    claims: tuple[str, ...]  # claim names, in file order
    now: float  # the last metric point: pass it as --now
    branch: str = BRANCH


@dataclass(frozen=True)
class HistoryRepo:
    repo: Path
    claims: tuple[str, ...]
    commits: int  # edits after the initial commit
    feedback_commits: int  # of those, how many carry Feedback-* trailers
    now: float


@dataclass(frozen=True)
class ClaimSpec:
    index: int
    name: str
    app: str
    environment: str
    region: str
    account: str
    memory: int
    timeout: int
    auto_tune: bool
    bounds: tuple[int, int]  # autoTune.memoryBounds, set once by the "human" who wrote it
    cooldown: int
    threshold: int
    sustained: int

    @property
    def path(self) -> str:
        # A directory per app keeps trees small: fast-import rewrites every tree on a
        # commit's path, and one flat 10k-entry tree per commit makes history slow.
        return f"claims/{self.app}/{self.name}.yaml"

    @property
    def prefix(self) -> str:
        return f"{self.app}-{self.index:05d}"


def fleet_claims(n_claims: int, seed: int = 0) -> list[ClaimSpec]:
    """Varied claims: memory, timeout, environment and region mixed; ~10% with autoTune."""
    rng = np.random.default_rng(seed)
    draws = rng.random((n_claims, 8))
    claims = []
    for i in range(n_claims):
        d = draws[i]
        app = APPS[int(d[0] * len(APPS))]
        environment = ENVIRONMENTS[int(d[1] * len(ENVIRONMENTS))]
        memory = MEMORY_LADDER[int(d[4] * 8)]  # start in the lower, common part
        claims.append(
            ClaimSpec(
                index=i,
                name=f"{app}-{environment}-{i:05d}",
                app=app,
                environment=environment,
                region=REGIONS[int(d[2] * len(REGIONS))],
                account=f"{100000000000 + int(d[3] * 899999999999):012d}",
                memory=memory,
                timeout=TIMEOUTS[int(d[5] * len(TIMEOUTS))],
                auto_tune=bool(d[6] < AUTO_TUNE_FRACTION),
                bounds=(max(128, memory // 2), min(10240, memory * 2)),
                cooldown=(30, 60, 120)[int(d[7] * 3)],
                threshold=(85, 90)[int(d[7] * 6) % 2],
                sustained=(15, 30)[int(d[7] * 10) % 2],
            )
        )
    return claims


def render_claim(claim: ClaimSpec) -> str:
    """A claim laid out like the corpus: a comment header, inline comments, `---`."""
    prod = claim.environment == "prod"
    annotations = (
        "  annotations:\n"
        "    # Precious resource protection (EPIC-17)\n"
        '    confighub.io/precious: "true"\n'
        '    confighub.io/precious-resources: "dynamodb,s3"\n'
        "    # Gate enforcement\n"
        '    confighub.io/delete-gate: "enabled"\n'
        if prod
        else ""
    )
    auto_tune = ""
    if claim.auto_tune:
        low, high = claim.bounds
        auto_tune = (
            "\n"
            "  autoTune:\n"
            "    enabled: true\n"
            "    memoryBounds:\n"
            f"      min: {low}\n"
            f"      max: {high}    # Agent can adjust within this range\n"
            f"    cooldownMinutes: {claim.cooldown}  # Minimum time between adjustments\n"
            "    trigger:\n"
            "      metric: memory_utilization\n"
            f"      threshold: {claim.threshold}\n"
            f"      sustainedMinutes: {claim.sustained}\n"
        )
    memory_note = "  # Higher memory for production" if prod else ""
    timeout_note = "  # Longer timeout for reliability" if prod else ""
    return (
        f"# ServerlessEventApp Claim for {claim.environment} environment ({claim.app})\n"
        f"# Deploys all 17 AWS resources for the {claim.app} service\n"
        "#\n"
        "# Prerequisites:\n"
        "#   - MessageWallRoleBoundary IAM policy must exist in AWS\n"
        "#   - Lambda artifacts must be uploaded to S3 (artifacts/api-handler.zip)\n"
        "#\n"
        "# Usage:\n"
        f"#   kubectl apply -f {claim.name}.yaml\n"
        f"#   kubectl get serverlesseventappclaim {claim.name} -w\n"
        "---\n"
        "apiVersion: messagewall.demo/v1alpha1\n"
        "kind: ServerlessEventAppClaim\n"
        "metadata:\n"
        f"  name: {claim.name}\n"
        "  namespace: default\n"
        f"{annotations}"
        "spec:\n"
        "  # Required fields\n"
        f"  environment: {claim.environment}\n"
        f'  awsAccountId: "{claim.account}"  # Replace with your AWS account ID\n'
        "\n"
        "  # Optional fields with defaults shown\n"
        f"  resourcePrefix: {claim.prefix}\n"
        f"  region: {claim.region}\n"
        f"  lambdaMemory: {claim.memory}{memory_note}\n"
        f"  lambdaTimeout: {claim.timeout}{timeout_note}\n"
        f"  eventSource: {claim.prefix}.api-handler\n"
        '  # artifactBucket: ""  # Uses app bucket if not specified\n'
        f"{auto_tune}"
    )


def render_companion(claim: ClaimSpec, index: int) -> str:
    """A non-claim file beside a claim (repos hold more than claims; loaders must skip it)."""
    return (
        f"# Runbook settings for {claim.name} (not a claim)\n"
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        f"  name: {claim.name}-runbook-{index}\n"
        "data:\n"
        f'  owner: "team-{claim.app}"  # pager rotation\n'
        f'  dashboard: "https://grafana.example.com/d/{claim.name}"\n'
    )


# -- git --------------------------------------------------------------------------


def _ident(who: tuple[str, str], when: int) -> bytes:
    return f"{who[0]} <{who[1]}> {when} +0000".encode()


def _data(payload: bytes) -> bytes:
    return b"data %d\n%s\n" % (len(payload), payload)


def _commit(
    message: str,
    when: int,
    files: Sequence[tuple[str, str]],
    *,
    author: tuple[str, str],
    committer: tuple[str, str] | None = None,
) -> Iterator[bytes]:
    yield f"commit refs/heads/{BRANCH}\n".encode()
    yield b"author " + _ident(author, when) + b"\n"
    yield b"committer " + _ident(committer or author, when) + b"\n"
    yield _data(message.encode())
    for path, text in files:
        yield f"M 100644 inline {path}\n".encode()
        yield _data(text.encode())


def _import(repo: Path, chunks: Iterator[bytes], *, bare: bool) -> None:
    """One fast-import stream; a non-bare repo then gets its work tree and index."""
    if repo.exists() and any(repo.iterdir()):
        raise FileExistsError(f"{repo} already exists and is not empty; pick a new DIR")
    repo.mkdir(parents=True, exist_ok=True)
    run(["git", "init", "-q", "-b", BRANCH, *(["--bare"] if bare else []), str(repo)])
    stream = b"".join(chunks) + b"done\n"
    run(["git", "fast-import", "--quiet", "--done"], cwd=repo, input=stream)
    if not bare:
        run(["git", "reset", "-q", "--hard", BRANCH], cwd=repo)


# -- metrics ----------------------------------------------------------------------


def metric_values(
    claims: Sequence[ClaimSpec], metric: str, points: int, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """(claims, points) of plausible, non-negative values, rounded to 2 decimals."""
    n = len(claims)
    level = rng.random((n, 1))
    noise = rng.random((n, points))
    memory = np.array([[c.memory] for c in claims], dtype=np.float64)
    timeout_ms = np.array([[c.timeout * 1000] for c in claims], dtype=np.float64)
    utilization = np.clip(5 + 90 * level + 8 * (noise - 0.5), 0, 100)
    if metric == "memory_utilization":
        values = utilization
    elif metric == "used_memory_max":
        values = utilization * memory / 100
    elif metric in ("duration_p99", "duration_p50"):
        share = 0.05 + 0.85 * level + 0.05 * (noise - 0.5)
        values = timeout_ms * np.clip(share, 0.01, 1.0) * (0.2 if metric == "duration_p50" else 1)
    elif metric in ("errors", "throttles"):
        values = np.floor(noise * 3) * (noise > 0.9)
    elif metric == "invocations":
        values = np.floor(10 + 4000 * level * noise)
    else:
        values = 100 * noise
    # Adding 0.0 turns -0.0 into 0.0, which would otherwise print as "-0.0".
    return np.asarray(np.round(values, 2) + 0.0, dtype=np.float64)


def write_metrics(
    out: Path,
    claims: Sequence[ClaimSpec],
    metrics: Sequence[str],
    ts: npt.NDArray[np.int64],
    rng: np.random.Generator,
    chunk: int = 1000,
) -> None:
    prefixes = np.array([f"{t}," for t in ts.tolist()])
    header = "timestamp,value\n"
    for lo in range(0, len(claims), chunk):
        part = claims[lo : lo + chunk]
        for claim in part:
            (out / claim.name).mkdir(parents=True, exist_ok=True)
        for metric in metrics:
            # numpy's float-to-str gives the shortest repr ("95.05", "3.0") in C.
            cells = metric_values(part, metric, ts.shape[0], rng).astype(str)
            lines = np.strings.add(np.strings.add(prefixes, cells), "\n")
            for claim, row in zip(part, lines, strict=True):
                text = header + "".join(row.tolist())
                with open(os.path.join(out, claim.name, f"{metric}.csv"), "w") as handle:
                    handle.write(text)


# -- public -----------------------------------------------------------------------


def make_fleet(
    root: Path,
    n_claims: int,
    *,
    points: int,
    step_seconds: int,
    metrics: Sequence[str] = DEFAULT_METRICS,
    files_per_claim: int = 1,
    seed: int = 0,
    now: int = DEFAULT_NOW,
    bare: bool = False,
) -> FleetPaths:
    """A claims repo (one commit) and fixtures with ``points`` points ending at ``now``.

    ``files_per_claim`` > 1 adds that many minus one non-claim YAML files beside each
    claim, for repos where claims are a fraction of the files.
    """
    if n_claims < 1 or points < 1 or step_seconds < 1 or files_per_claim < 1:
        raise ValueError("n_claims, points, step_seconds and files_per_claim must be >= 1")
    claims = fleet_claims(n_claims, seed)
    files: list[tuple[str, str]] = []
    for claim in claims:
        files.append((claim.path, render_claim(claim)))
        for k in range(1, files_per_claim):
            companion = f"claims/{claim.app}/{claim.name}.runbook-{k}.yaml"
            files.append((companion, render_companion(claim, k)))
    ts = now - step_seconds * np.arange(points - 1, -1, -1, dtype=np.int64)
    # Committed well before the first point, so settling time never hides the metrics.
    committed = int(ts[0]) - 86400
    repo = root / ("fleet.git" if bare else "fleet")
    _import(
        repo,
        _commit(f"Add {n_claims} claims", committed, files, author=FLEET_BOT),
        bare=bare,
    )
    metrics_dir = root / "metrics"
    write_metrics(metrics_dir, claims, metrics, ts, np.random.default_rng(seed + 1))
    return FleetPaths(repo, metrics_dir, tuple(c.name for c in claims), float(now))


def make_history_repo(
    root: Path,
    n_commits: int,
    feedback_fraction: float = 0.1,
    n_claims: int = 1000,
    *,
    now: int = DEFAULT_NOW,
    seed: int = 0,
    bare: bool = False,
) -> HistoryRepo:
    """A year of history: ``n_commits`` edits of one claim's lambdaMemory each, ending at ``now``.

    About ``feedback_fraction`` of them are auto-tune commits with Feedback-* trailers;
    the rest are human edits without trailers.
    """
    claims = fleet_claims(n_claims, seed)
    rng = np.random.default_rng(seed + 2)
    start = now - YEAR
    chunks: list[Iterator[bytes]] = [
        _commit(
            f"Add {n_claims} claims",
            start - 86400,
            [(c.path, render_claim(c)) for c in claims],
            author=FLEET_BOT,
        )
    ]
    spacing = YEAR / max(n_commits, 1)
    tuned = [c.index for c in claims if c.auto_tune] or [0]
    feedback = 0
    for i in range(n_commits):
        when = int(start + spacing * (i + 1) - spacing * 0.5 * rng.random())
        automated = bool(rng.random() < feedback_fraction)
        # Auto-tune only ever touches claims whose humans wrote an autoTune block.
        k = tuned[int(rng.random() * len(tuned))] if automated else int(rng.random() * n_claims)
        claim = claims[k]
        new = replace(claim, memory=_next_memory(claim, automated, rng))
        claims[k] = new
        change = [(new.path, render_claim(new))]
        if automated:
            feedback += 1
            up = new.memory > claim.memory
            utilization = 90 + 9 * rng.random() if up else 10 + 20 * rng.random()
            message = (
                f"feedbackctl: auto-tune {claim.name} spec.lambdaMemory "
                f"{claim.memory} -> {new.memory}\n\n"
                f"Feedback-Kind: auto-tune\n"
                f"Feedback-Claim: {claim.name}\n"
                f"Feedback-Field: spec.lambdaMemory\n"
                f"Feedback-From: {claim.memory}\n"
                f"Feedback-To: {new.memory}\n"
                f"Feedback-Source: cloudwatch-metrics\n"
                f"Feedback-Evidence: memory_utilization p95={utilization:.4g} over 30m, n=6\n"
            )
            chunks.append(_commit(message, when, change, author=FEEDBACKCTL))
        else:
            verb = "Raise" if new.memory > claim.memory else "Lower"
            message = f"{verb} {claim.name} memory to {new.memory} MB\n"
            human = HUMANS[int(rng.random() * len(HUMANS))]
            chunks.append(_commit(message, when, change, author=human))
    repo = root / ("history.git" if bare else "history")
    _import(repo, (piece for chunk in chunks for piece in chunk), bare=bare)
    return HistoryRepo(repo, tuple(c.name for c in claims), n_commits, feedback, float(now))


def _next_memory(claim: ClaimSpec, automated: bool, rng: np.random.Generator) -> int:
    """One rung up or down the ladder; auto-tune stays inside the claim's bounds."""
    low, high = claim.bounds if automated else (MEMORY_LADDER[0], MEMORY_LADDER[-1])
    rung = MEMORY_LADDER.index(claim.memory)
    up = MEMORY_LADDER[min(rung + 1, len(MEMORY_LADDER) - 1)]
    down = MEMORY_LADDER[max(rung - 1, 0)]
    options = [m for m in (up, down) if low <= m <= high and m != claim.memory]
    if not options:  # a human moved it outside the bounds: step back toward them
        return down if claim.memory > high else up
    return options[0] if len(options) == 1 or rng.random() < 0.6 else options[1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fleet",
        description="Write a benchmark fleet: a claims repo and its metric fixtures.",
    )
    parser.add_argument("dir", type=Path)
    parser.add_argument("--claims", type=int, default=1000)
    parser.add_argument("--points", type=int, default=168)
    parser.add_argument("--step", type=int, default=3600, help="seconds between points")
    parser.add_argument("--metrics", default=",".join(DEFAULT_METRICS))
    parser.add_argument("--files-per-claim", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bare", action="store_true")
    parser.add_argument("--history", type=int, default=0, help="also build a repo with N commits")
    args = parser.parse_args(argv)
    try:
        return _write(args)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _write(args: argparse.Namespace) -> int:
    began = time.perf_counter()
    fleet = make_fleet(
        args.dir,
        args.claims,
        points=args.points,
        step_seconds=args.step,
        metrics=tuple(m for m in args.metrics.split(",") if m),
        files_per_claim=args.files_per_claim,
        seed=args.seed,
        bare=args.bare,
    )
    print(f"repo     {fleet.repo}")
    print(f"metrics  {fleet.metrics}")
    print(f"now      {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(fleet.now))}")
    print(f"fleet    {len(fleet.claims)} claims in {time.perf_counter() - began:.2f}s")
    if args.history:
        began = time.perf_counter()
        history = make_history_repo(args.dir, args.history, seed=args.seed, bare=args.bare)
        print(
            f"history  {history.repo}: {history.commits} commits "
            f"({history.feedback_commits} auto-tune) in {time.perf_counter() - began:.2f}s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
