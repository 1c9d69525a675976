"""Bad input, end to end: one exact message, the documented exit code, the other
claims still processed, and nothing written for what was bad (SPEC section 8).

Every case starts from the same world: the example's prod and dev claims in a
real repo (committed well before the example's week of metrics), those
metrics, and the live state. A case breaks one thing, runs a command that
writes (``propose --all`` for claims, policies and metrics; ``drift`` for live
state and the work tree), and checks:

- the exit code, and each expected line verbatim on stderr, with no traceback;
- the claims that were fine still got their write (a proposal branch or a
  drift capture), and nothing else was written: every path a new commit
  touches belongs to one of them;
- on exit 2 (usage or configuration), no ref moved at all;
- the work tree is exactly as it was (``git status`` unchanged).
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from feedbackctl.cli import run
from feedbackctl.core.models import Claim
from feedbackctl.core.policy import Condition, Rule
from feedbackctl.core.tuning import check_trigger, parse_autotune
from feedbackctl.errors import ClaimError
from tests.clirun import ROOT
from tests.gitutil import commit_files, git_out, make_repo

EXAMPLE = ROOT / "examples" / "messagewall"
NOW = "2026-11-08T00:00:00Z"
PROD, DEV = "messagewall-prod", "messagewall-dev"
PROD_PATH, DEV_PATH = f"claims/{PROD}.yaml", f"claims/{DEV}.yaml"
PROD_CLAIM = (EXAMPLE / "claims" / f"{PROD}.yaml").read_text()
DEV_CLAIM = (EXAMPLE / "claims" / f"{DEV}.yaml").read_text()
LIMITS = "proposals:\n  maxOpen: 100\n  maxNewPerHour: 100\n"
BOTH = frozenset({PROD, DEV})
ONLY_PROD = frozenset({PROD})
NONE: frozenset[str] = frozenset()
DEV_MEMORY = f"{DEV}/lambdaMemory"  # dev's memory proposal: needs memory_utilization


@dataclass
class World:
    tmp: Path
    work: Path
    metrics: Path
    live: Path

    def commit(self, files: dict[str, str | None], message: str = "Human edit") -> None:
        commit_files(self.work, files, message, "2026-10-02T00:00:00Z")
        # Pushed: proposals build on the authority branch's upstream, never on unpushed commits.
        git_out(self.work, "push", "-q", "origin", "main")

    def csv(self, claim: str = DEV, metric: str = "memory_utilization") -> Path:
        return self.metrics / claim / f"{metric}.csv"

    def rows(self, claim: str = DEV, metric: str = "memory_utilization") -> list[str]:
        return self.csv(claim, metric).read_text().splitlines()

    def set_rows(self, rows: list[str], claim: str = DEV, metric: str = "memory_utilization") -> None:
        self.csv(claim, metric).write_text("\n".join(rows) + "\n")


def make_world(tmp: Path) -> World:
    # Distinct function names, as deployed claims have (CloudWatch and Lambda tell them apart).
    dev = DEV_CLAIM.replace("resourcePrefix: messagewall", "resourcePrefix: messagewall-dev")
    work, _ = make_repo(
        tmp,
        {PROD_PATH: PROD_CLAIM, DEV_PATH: dev, ".feedbackctl.yaml": LIMITS},
        date="2026-10-01T00:00:00Z",
    )
    metrics = tmp / "metrics"
    shutil.copytree(EXAMPLE / "metrics", metrics)
    live = tmp / "live.yaml"
    live.write_text(f"{PROD}: {{lambdaTimeout: 60}}\n")  # prod's break-glass timeout
    return World(tmp, work, metrics, live)


Argv = list[str]


def propose(w: World) -> Argv:
    return ["propose", "--all", "--repo", str(w.work), "--metrics", str(w.metrics)]


def drift(w: World) -> Argv:
    return ["drift", "--repo", str(w.work), "--live", str(w.live)]


@dataclass(frozen=True)
class Case:
    id: str
    arrange: Callable[[World], Argv]  # breaks one thing; returns the command to run
    code: int
    messages: tuple[str, ...]  # verbatim; {work}, {metrics}, {tmp} are filled in
    processed: frozenset[str]  # claims that must still get their write
    bad: tuple[str, ...] = ()  # names no written path may contain
    extra_checks: tuple[Callable[[World], None], ...] = field(default=())


def _with(
    files: dict[str, str | None], command: Callable[[World], Argv] = propose
) -> Callable[[World], Argv]:
    def arrange(w: World) -> Argv:
        w.commit(files)
        return command(w)

    return arrange


def _rows(edit: Callable[[list[str]], list[str]], **where: str) -> Callable[[World], Argv]:
    def arrange(w: World) -> Argv:
        w.set_rows(edit(w.rows(**where)), **where)
        return propose(w)

    return arrange


def _live(text: str) -> Callable[[World], Argv]:
    def arrange(w: World) -> Argv:
        w.live.write_text(text)
        return drift(w)

    return arrange


def _dev(extra: str) -> str:
    return DEV_CLAIM.rstrip("\n") + "\n" + extra


def _auto_tune(
    bounds: str = "{min: 128, max: 1024}", cooldown: str = "60", metric: str = "memory_utilization"
) -> str:
    return _dev(
        "\n  autoTune:\n    enabled: true\n"
        f"    memoryBounds: {bounds}\n    cooldownMinutes: {cooldown}\n"
        f"    trigger: {{metric: {metric}, threshold: 90, sustainedMinutes: 30}}\n"
    )


def _named(name: str) -> str:
    return PROD_CLAIM.replace(f"name: {PROD}", f"name: {json.dumps(name)}")


def _bomb(levels: int = 9, indent: str = "  ") -> str:
    lines = [f"{indent}a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels + 1):
        lines.append(f"{indent}a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


STUB = (
    "apiVersion: messagewall.demo/v1alpha1\nkind: ServerlessEventAppClaim\nmetadata:\n  name: {name}\nspec:\n"
)
PWNED = "pwned-by-yaml"
DIRTY = f"{PROD_PATH} has uncommitted changes; commit or stash them, then rerun — nothing was changed"


def _not_executed(w: World) -> None:
    assert not (w.tmp / PWNED).exists() and not (w.work / PWNED).exists()


def _last(value: str) -> Callable[[list[str]], list[str]]:
    return lambda rows: rows[:-1] + [rows[-1].split(",")[0] + "," + value]


def _detach(w: World) -> Argv:
    git_out(w.work, "checkout", "-q", "--detach")
    return propose(w)


def _dirty(path: str) -> Callable[[World], Argv]:
    def arrange(w: World) -> Argv:
        target = w.work / path
        target.write_text(target.read_text().replace("environment: ", "environment:  "))
        return drift(w)  # the live state differs for prod only

    return arrange


def _not_git(w: World) -> Argv:
    (w.tmp / "plain").mkdir()
    return ["propose", "--repo", str(w.tmp / "plain"), "--metrics", str(w.metrics)]


CLAIM_CASES = [
    Case(
        "malformed-yaml",
        _with({"claims/broken.yaml": STUB.format(name="broken") + "  lambdaMemory: [128,\n"}),
        1,
        ("claims/broken.yaml:7: malformed YAML (did not find expected node content); fix the file",),
        BOTH,
        ("broken",),
    ),
    Case(
        "duplicate-claim-name",
        _with({"claims/dev-copy.yaml": DEV_CLAIM}),
        1,
        (f"claim '{DEV}' is defined twice: claims/dev-copy.yaml and {DEV_PATH}; rename one",),
        ONLY_PROD,
        (DEV,),
    ),
    Case(
        "string-for-lambdaMemory",
        _with({DEV_PATH: DEV_CLAIM.replace("lambdaMemory: 512", 'lambdaMemory: "lots"')}),
        1,
        (f"{DEV}: spec.lambdaMemory is 'lots', expected a number; fix the claim",),
        ONLY_PROD,
        (DEV,),
    ),
    Case(
        "bool-for-lambdaMemory",
        _with({DEV_PATH: DEV_CLAIM.replace("lambdaMemory: 512", "lambdaMemory: yes")}),
        1,
        (f"{DEV}: spec.lambdaMemory is True, expected a number; fix the claim",),
        ONLY_PROD,
        (DEV,),
    ),
    Case(
        "autotune-min-above-max",
        _with({DEV_PATH: _auto_tune(bounds="{min: 1024, max: 256}")}),
        1,
        (f"{DEV}: spec.autoTune.memoryBounds: min 1024 is greater than max 256; swap them",),
        ONLY_PROD,
        (DEV,),
    ),
    Case(
        "negative-cooldown",
        _with({DEV_PATH: _auto_tune(cooldown="-5")}),
        1,
        (f"{DEV}: spec.autoTune.cooldownMinutes: must be at least 0, got -5; fix the claim",),
        ONLY_PROD,
        (DEV,),
    ),
    Case(
        "unknown-trigger-metric",
        _with({DEV_PATH: _auto_tune(metric="memory_utilisation")}),
        1,
        (
            f"{DEV}: spec.autoTune.trigger.metric: no increase rule for a bounded field watches "
            "'memory_utilisation', so the trigger would be ignored; use one of: memory_utilization "
            "(spec.lambdaMemory)",
        ),
        ONLY_PROD,
        (DEV,),
    ),
    Case(
        "policy-rule-unknown-metric",
        _with(
            {
                "policies/feedback-rules.yaml": (
                    "rules:\n  - name: ghost\n    field: lambdaMemory\n    direction: increase\n"
                    "    when: {metric: no_such_metric, above: 90}\n    sustainedMinutes: 30\n"
                )
            }
        ),
        2,
        (
            "policies/feedback-rules.yaml: rules[ghost].when.metric: unknown metric 'no_such_metric' (known: "
            "cost_daily, duration_p50, duration_p99, errors, invocations, memory_utilization, throttles, "
            "used_memory_max); add it under metrics:",
        ),
        NONE,
    ),
    Case(
        "policy-rule-missing-field",
        _with(
            {
                "policies/feedback-rules.yaml": (
                    "rules:\n  - name: ghost\n    field: noSuchField\n    direction: increase\n"
                    "    when: {metric: memory_utilization, above: 90}\n    sustainedMinutes: 30\n"
                )
            }
        ),
        2,
        (
            "policies/feedback-rules.yaml: rules[ghost].field: rule 'ghost' names field 'noSuchField' that "
            "has "
            "no "
            "entry under fields: (step, min, max); add one",
        ),
        NONE,
    ),
    Case(
        "malformed-repo-config",
        _with({".feedbackctl.yaml": "proposals: {maxOpen: [\n"}),
        2,
        (".feedbackctl.yaml:2: malformed YAML (did not find expected node content); fix the file",),
        NONE,
    ),
    Case(
        "yaml-alias-bomb",
        _with({"claims/bomb.yaml": STUB.format(name="bomb") + _bomb()}),
        1,
        ("claims/bomb.yaml:6: YAML aliases expand too much (possible alias bomb); remove the anchors",),
        BOTH,
        ("bomb",),
    ),
    Case(
        "fifty-megabyte-file",
        _with({"claims/big.yaml": STUB.format(name="big") + "  note: '" + "x" * (50 * 1024 * 1024) + "'\n"}),
        1,
        (
            "claims/big.yaml: file is 50.0 MB, over the 10 MB limit for YAML; split it or move it out of "
            "the claims "
            "path",
        ),
        BOTH,
        ("big",),
    ),
    Case(
        "python-object-tag",
        _with(
            {
                "claims/evil.yaml": STUB.format(name="evil")
                + f"  region: !!python/object/apply:os.system ['touch {PWNED}']\n"
            }
        ),
        1,
        (
            "claims/evil.yaml:6: YAML tag '!!python/object/apply:os.system' is not allowed (only plain "
            "data: no "
            "Python objects or custom tags); remove the tag",
        ),
        BOTH,
        ("evil",),
        (_not_executed,),
    ),
    *[
        Case(
            f"claim-name-{label}",
            _with({f"claims/n-{label}.yaml": _named(name)}),
            1,
            (
                f"{name}: claims/n-{label}.yaml:25: invalid claim name: it contains {why}; rename it "
                "(lowercase "
                "letters, digits, '-' and '.')",
            ),
            BOTH,
            (f"n-{label}",),
        )
        for label, name, why in (
            ("dotdot", "app..prod", "'..'"),
            ("tilde", "app~1", "'~'"),
            ("caret", "app^2", "'^'"),
            ("colon", "app:prod", "':'"),
            ("space", "app prod", "a space"),
            ("unicode", "äpp-prød", "non-ASCII characters"),
            ("traversal", "../../etc/passwd", "'..'"),
        )
    ],
    *[
        Case(
            f"config-{key.replace('.', '-')}-traversal",
            _with({".feedbackctl.yaml": text}),
            2,
            (f".feedbackctl.yaml: {key}: '../outside' leaves the repository; use a path inside it",),
            NONE,
        )
        for key, text in (
            ("claims.paths", "claims:\n  paths: ['../outside']\n"),
            ("policies", "policies: ../outside\n"),
            ("proposals.dir", LIMITS + "  dir: ../outside\n"),
            ("recommendations.dir", "recommendations:\n  dir: ../outside\n"),
        )
    ],
    Case(
        "proposal-prefix-git-refuses",
        _with({".feedbackctl.yaml": LIMITS + "  prefix: '../x/'\n"}),
        2,
        (
            ".feedbackctl.yaml: proposals.prefix '../x/' cannot start a git branch name; use letters, "
            "digits, "
            "'-', '.' and '/' (default feedback/)",
        ),
        NONE,
    ),
]

METRIC_CASES = [
    Case(
        "nan-value",
        _rows(_last("NaN")),
        1,
        (
            "{metrics}/messagewall-dev/memory_utilization.csv:2018: value 'NaN' is not a finite number; "
            "fix or drop "
            "the row",
        ),
        BOTH,  # one bad series: only what needs it cannot decide (dev's timeout still proposes)
        (DEV_MEMORY,),
    ),
    Case(
        "inf-value",
        _rows(_last("inf")),
        1,
        (
            "{metrics}/messagewall-dev/memory_utilization.csv:2018: value 'inf' is not a finite number; "
            "fix or drop "
            "the row",
        ),
        BOTH,  # one bad series: only what needs it cannot decide (dev's timeout still proposes)
        (DEV_MEMORY,),
    ),
    Case(
        "negative-value",
        _rows(_last("-3.5")),
        1,
        (
            "{metrics}/messagewall-dev/memory_utilization.csv:2018: value '-3.5' is negative and metrics "
            "never are; "
            "fix the row",
        ),
        BOTH,  # one bad series: only what needs it cannot decide (dev's timeout still proposes)
        (DEV_MEMORY,),
    ),
    Case(
        "future-timestamp",
        _rows(lambda r: [*r, "2026-11-09T00:00:00Z,10.0"]),
        0,  # a point after --now is not yet known: left out, the claim decided without it
        (
            "warning: {metrics}: 1 point in 1 file after 2026-11-08T00:00:00Z left out "
            "(not yet known at that time)",
        ),
        BOTH,
    ),
    Case(
        "epoch-milliseconds",
        _rows(lambda r: [r[0], "1794095700000,10.0"]),
        1,
        (
            "{metrics}/messagewall-dev/memory_utilization.csv:2: timestamp '1794095700000' is after the "
            "year 5000 (epoch milliseconds? use seconds); fix the row",
        ),
        BOTH,  # one bad series: only what needs it cannot decide (dev's timeout still proposes)
        (DEV_MEMORY,),
    ),
    Case(
        "timestamp-without-zone",
        _rows(lambda r: [*r, "2026-11-07T23:59:00,10.0"]),
        1,
        (
            "{metrics}/messagewall-dev/memory_utilization.csv:2019: timestamp '2026-11-07T23:59:00' has no "
            "timezone; "
            "add 'Z' or an offset such as '+00:00'",
        ),
        BOTH,  # one bad series: only what needs it cannot decide (dev's timeout still proposes)
        (DEV_MEMORY,),
    ),
    Case(
        "garbage-timestamp",
        _rows(lambda r: [*r, "yesterday,10.0"]),
        1,
        (
            "{metrics}/messagewall-dev/memory_utilization.csv:2019: timestamp 'yesterday' is neither "
            "ISO-8601 nor "
            "epoch seconds; fix the row",
        ),
        BOTH,  # one bad series: only what needs it cannot decide (dev's timeout still proposes)
        (DEV_MEMORY,),
    ),
    Case(
        "wrong-header",
        _rows(lambda r: ["time,val", *r[1:]]),
        1,
        (
            "{metrics}/messagewall-dev/memory_utilization.csv:1: header is 'time,val', expected "
            "'timestamp,value'; "
            "fix the first line",
        ),
        BOTH,  # one bad series: only what needs it cannot decide (dev's timeout still proposes)
        (DEV_MEMORY,),
    ),
    Case(
        "empty-file",
        _rows(lambda r: [""]),
        1,
        (
            "{metrics}/messagewall-dev/memory_utilization.csv: file is empty; add the header "
            "'timestamp,value' and "
            "one row per point",
        ),
        BOTH,  # one bad series: only what needs it cannot decide (dev's timeout still proposes)
        (DEV_MEMORY,),
    ),
    Case(
        "three-fields",
        _rows(lambda r: [*r[:5], r[5] + ",7", *r[6:]]),
        1,
        (
            "{metrics}/messagewall-dev/memory_utilization.csv:6: row has 3 fields, expected "
            "'timestamp,value'; fix "
            "the row",
        ),
        BOTH,  # one bad series: only what needs it cannot decide (dev's timeout still proposes)
        (DEV_MEMORY,),
    ),
    Case(
        "missing-metrics-dir",
        lambda w: ["propose", "--repo", str(w.work), "--metrics", str(w.tmp / "nope")],
        2,
        (
            "metrics directory '{tmp}/nope' does not exist; pass --metrics with a directory of "
            "<claim>/<metric>.csv "
            "files, or --metrics cloudwatch",
        ),
        NONE,
    ),
]

GIT_CASES = [
    Case(
        "non-git-path",
        _not_git,
        2,
        ("{tmp}/plain: not a git repository; pass --repo a path inside a git work tree or a bare repo",),
        NONE,
    ),
    Case(
        "detached-head",
        _detach,
        2,
        ("HEAD is detached in {work}; pass --ref BRANCH to name the authority branch",),
        NONE,
    ),
    Case(
        "missing-ref",
        lambda w: [*propose(w), "--ref", "no-such-branch"],
        2,
        ("ref 'no-such-branch' not found in {work}; pass --ref an existing branch, tag or commit",),
        NONE,
    ),
    Case(
        "review-branch-git-refuses",
        lambda w: [*drift(w), "--branch", "review/../x"],
        2,
        (
            "'refs/heads/review/../x' is not a valid git ref name: it contains '//', '..' or '@{'; choose "
            "another "
            "name",
        ),
        NONE,
    ),
    Case("dirty-file-that-would-be-touched", _dirty(PROD_PATH), 1, (DIRTY,), NONE),
    Case("dirty-file-left-alone", _dirty(DEV_PATH), 0, (), ONLY_PROD),
    Case(
        "bad-now",
        lambda w: [*propose(w), "--now", "yesterday"],
        2,
        ("--now 'yesterday' is not an ISO-8601 time like 2026-11-08T00:00:00Z",),
        NONE,
    ),
]

LIVE_CASES = [
    Case(
        "live-names-unknown-claim",
        _live(f"{PROD}: {{lambdaTimeout: 60}}\nghost: {{lambdaTimeout: 5}}\n"),
        1,
        (
            "ghost: the live state names a claim that is not in the repo; fix the name or drop it from the "
            "live "
            "state",
        ),
        ONLY_PROD,
        ("ghost",),
    ),
    Case(
        "live-not-a-mapping",
        _live("- a\n- b\n"),
        2,
        ("{tmp}/live.yaml: expected a mapping of claim name to {field: value}; fix the file",),
        NONE,
    ),
    Case(
        "live-entry-not-a-mapping",
        _live(f"{PROD}: {{lambdaTimeout: 60}}\n{DEV}: 20\n"),
        1,
        ("{tmp}/live.yaml: messagewall-dev: expected a mapping of field to value; fix the file",),
        ONLY_PROD,
        (DEV,),
    ),
    Case(
        "live-value-a-list",
        _live(f"{PROD}: {{lambdaTimeout: 60}}\n{DEV}: {{lambdaTimeout: [1, 2]}}\n"),
        1,
        ("{tmp}/live.yaml: messagewall-dev.lambdaTimeout: expected a single value, not a list or map",),
        ONLY_PROD,
        (DEV,),
    ),
    Case(
        "live-nan",
        _live(f"{PROD}: {{lambdaTimeout: 60}}\n{DEV}: {{lambdaTimeout: .nan}}\n"),
        1,
        (
            f"{DEV}: cannot capture spec.lambdaTimeout: {DEV_PATH}:29: refusing to write nan, which is not "
            "a finite "
            "number",
        ),
        ONLY_PROD,
        (DEV,),
    ),
    Case(
        "live-malformed-yaml",
        _live(f"{PROD}: {{lambdaTimeout: 60\n"),
        2,
        ("{tmp}/live.yaml:2: malformed YAML (did not find expected ',' or '}'); fix the file",),
        NONE,
    ),
    Case(
        "live-alias-bomb",
        _live(_bomb(indent="") + f"{PROD}: {{lambdaTimeout: 60}}\n"),
        2,
        ("{tmp}/live.yaml:1: YAML aliases expand too much (possible alias bomb); remove the anchors",),
        NONE,
    ),
    Case(
        "live-python-object",
        _live(f"{PROD}: !!python/object/apply:os.system ['touch {PWNED}']\n"),
        2,
        (
            "{tmp}/live.yaml:1: YAML tag '!!python/object/apply:os.system' is not allowed (only plain "
            "data: no "
            "Python objects or custom tags); remove the tag",
        ),
        NONE,
        (),
        (_not_executed,),
    ),
    Case(
        "live-missing-file",
        lambda w: ["drift", "--repo", str(w.work), "--live", str(w.tmp / "gone.yaml")],
        2,
        ("--live {tmp}/gone.yaml: no such file; pass a live-state file or 'aws'",),
        NONE,
    ),
]

CASES = CLAIM_CASES + METRIC_CASES + GIT_CASES + LIVE_CASES


def test_there_are_at_least_thirty_distinct_cases() -> None:
    assert len({c.id for c in CASES}) == len(CASES) >= 30


# --- the harness ---------------------------------------------------------------------------


def refs(work: Path) -> dict[str, str]:
    out = git_out(work, "for-each-ref", "--format=%(refname) %(objectname)")
    return dict(line.split() for line in out.splitlines())


def written_paths(work: Path, before: dict[str, str], after: dict[str, str]) -> set[str]:
    """Every path a commit new since ``before`` touches, on any ref."""
    old = [f"^{sha}" for sha in set(before.values())]
    paths: set[str] = set()
    for ref, sha in after.items():
        if before.get(ref) == sha:
            continue
        out = git_out(work, "log", "--format=", "--name-only", sha, *old)
        paths |= {p for p in out.splitlines() if p}
    return paths


def written_claims(paths: set[str]) -> set[str]:
    return {c for c in (PROD, DEV) if any(c in p for p in paths)}


def run_cli(argv: Argv, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run([*argv, *([] if "--now" in argv else ["--now", NOW]), "--output", "json"])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = make_world(tmp_path)
    argv = case.arrange(w)
    before, status = refs(w.work), git_out(w.work, "status", "--porcelain")

    code, out, err = run_cli(argv, capsys)

    assert code == case.code, f"exit {code}, expected {case.code}\n{err}"
    for message in case.messages:
        expected = message
        for token, path in (("{work}", w.work), ("{metrics}", w.metrics), ("{tmp}", w.tmp)):
            expected = expected.replace(token, str(path))
        assert expected in err, f"expected:\n  {expected}\ngot:\n{err}"
    assert "Traceback" not in err and "internal error" not in err, err
    after = refs(w.work)
    paths = written_paths(w.work, before, after)
    if case.code == 2:
        assert after == before, "a usage or configuration error moved a ref"
    assert written_claims(paths) == set(case.processed), sorted(paths)
    assert not any(bad in p for bad in case.bad for p in paths), sorted(paths)
    assert git_out(w.work, "status", "--porcelain") == status
    if case.code != 2:
        assert git_out(w.work, "fsck", "--no-dangling") == ""
    for check in case.extra_checks:
        check(w)


# --- the same cases through autotune, the command cron runs ---------------------------------------


def as_autotune(argv: Argv) -> Argv | None:
    """A case's propose command as the autotune run cron would make (None: not a propose case)."""
    if argv[0] != "propose":
        return None
    return ["autotune", *(a for a in argv[1:] if a != "--all")]


def _dirty_autotune(w: World) -> Argv:
    target = w.work / PROD_PATH
    target.write_text(target.read_text().replace("region: us-east-1", "region: us-east-2"))
    return propose(w)


AUTOTUNE_CASES = [
    *(c for c in CLAIM_CASES if c.id != "proposal-prefix-git-refuses"),  # autotune opens no branches
    *METRIC_CASES,
    *(c for c in GIT_CASES if c.id in ("non-git-path", "detached-head", "missing-ref", "bad-now")),
    Case("dirty-file-autotune-would-touch", _dirty_autotune, 1, (DIRTY,), NONE),
]


@pytest.mark.parametrize("case", AUTOTUNE_CASES, ids=[c.id for c in AUTOTUNE_CASES])
def test_bad_input_through_autotune(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    w = make_world(tmp_path)
    argv = as_autotune(case.arrange(w))
    assert argv is not None
    before, status = refs(w.work), git_out(w.work, "status", "--porcelain")

    code, out, err = run_cli(argv, capsys)

    assert code == case.code, f"exit {code}, expected {case.code}\n{err}"
    for message in case.messages:
        expected = message
        for token, path in (("{work}", w.work), ("{metrics}", w.metrics), ("{tmp}", w.tmp)):
            expected = expected.replace(token, str(path))
        assert expected in err, f"expected:\n  {expected}\ngot:\n{err}"
    assert "Traceback" not in err and "internal error" not in err, err
    after = refs(w.work)
    if case.code == 2:
        assert after == before
    # Only prod opts in to auto-tune: when it was fine, its step is the one write.
    paths = written_paths(w.work, before, after)
    assert paths == ({PROD_PATH} if PROD in case.processed else set()), sorted(paths)
    assert git_out(w.work, "status", "--porcelain") == status


# --- series the fixture format allows: processed, and read the way SPEC section 5 says -----------


def decisions(
    argv: Argv, capsys: pytest.CaptureFixture[str]
) -> dict[tuple[str, str], tuple[str, object, str]]:
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    return {
        (d["claim"], d["field"]): (d["outcome"], d["recommended"], d["reason"])
        for d in json.loads(out)["decisions"]
    }


def analyze(w: World) -> Argv:
    return ["analyze", "--repo", str(w.work), "--metrics", str(w.metrics)]


@pytest.fixture()
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


def test_unsorted_rows_decide_like_sorted_ones(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    baseline = decisions(analyze(world), capsys)
    rows = world.rows(PROD)
    world.set_rows([rows[0], *reversed(rows[1:])], PROD)
    assert decisions(analyze(world), capsys) == baseline


def test_duplicated_timestamps_keep_the_last_row(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    baseline = decisions(analyze(world), capsys)
    rows = world.rows(PROD)
    # Every point of the last hour first appears at 10 % (no pressure), then at its real value.
    calm = [r.split(",")[0] + ",10.0" for r in rows[-12:]]
    world.set_rows([rows[0], *rows[1:-12], *calm, *rows[-12:]], PROD)
    assert decisions(analyze(world), capsys) == baseline
    world.set_rows([rows[0], *rows[1:-12], *rows[-12:], *calm], PROD)  # now the calm ones come last
    outcome, _, reason = decisions(analyze(world), capsys)[(PROD, "spec.lambdaMemory")]
    assert outcome == "hold" and "did not hold for 30m" in reason


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        ([], "no memory_utilization data"),
        (
            ["2026-11-07T23:55:00Z,97.0"],
            "1 memory_utilization points cover the 30m window too thinly (need 6+ from its start)",
        ),
    ],
    ids=["empty-series", "single-point"],
)
def test_too_little_data_is_not_enough_data_and_the_others_still_decide(
    world: World, capsys: pytest.CaptureFixture[str], rows: list[str], reason: str
) -> None:
    world.set_rows(["timestamp,value", *rows], PROD)
    got = decisions(analyze(world), capsys)
    assert got[(PROD, "spec.lambdaMemory")] == ("not-enough-data", None, reason)
    assert got[(DEV, "spec.lambdaMemory")][0] == "change"  # the other claim is untouched by it


def test_a_trigger_for_an_unbounded_field_names_what_would_work() -> None:
    rules = [
        Rule("memory-pressure", "lambdaMemory", "increase", Condition("memory_utilization", "above", 90), 30)
    ]
    spec = {"autoTune": {"enabled": True, "timeoutBounds": {"min": 5, "max": 60},
                         "trigger": {"metric": "memory_utilization", "threshold": 90}}}  # fmt: skip
    claim = Claim("c", "ServerlessEventAppClaim", "x/v1", spec, "c.yaml")
    with pytest.raises(ClaimError, match="use one of: none: bound a field first"):
        check_trigger("c", parse_autotune(claim), rules)
    spec["autoTune"]["memoryBounds"] = {"min": 128, "max": 512}  # type: ignore[index]
    check_trigger("c", parse_autotune(claim), rules)


# --- AWS: an unreachable endpoint and throttling, against a real HTTP server ---------------------


class Always429:
    """A 127.0.0.1 endpoint that answers every AWS call with 429 Too Many Requests."""

    def __init__(self) -> None:
        self.calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.calls += 1
                body = b'{"__type": "TooManyRequestsException", "message": "Rate exceeded"}'
                self.send_response(429)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("x-amzn-ErrorType", "TooManyRequestsException")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST  # noqa: N815 - Lambda's GetFunctionConfiguration is a GET

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def throttled(monkeypatch: pytest.MonkeyPatch) -> Iterator[Always429]:
    from tests.motoserver import AWS_ENV

    server = Always429()
    for key, value in {**AWS_ENV, "AWS_ENDPOINT_URL": server.url, "AWS_MAX_ATTEMPTS": "2"}.items():
        monkeypatch.setenv(key, value)
    yield server
    server.close()


@pytest.fixture()
def unreachable(monkeypatch: pytest.MonkeyPatch) -> str:
    from tests.motoserver import AWS_ENV

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    for key, value in {**AWS_ENV, "AWS_ENDPOINT_URL": url, "AWS_MAX_ATTEMPTS": "1"}.items():
        monkeypatch.setenv(key, value)
    return url


def _aws_drift(w: World) -> Argv:
    return ["drift", "--repo", str(w.work), "--live", "aws"]


def test_aws_throttling_is_one_line_per_claim_and_nothing_is_written(
    world: World, throttled: Always429, capsys: pytest.CaptureFixture[str]
) -> None:
    before = refs(world.work)
    code, out, err = run_cli(_aws_drift(world), capsys)
    assert code == 1
    for claim, prefix in ((PROD, "messagewall"), (DEV, "messagewall-dev")):
        assert (
            f"{claim}: AWS throttled GetFunctionConfiguration for {prefix}-api-handler (us-east-1) after "
            "retries; rerun later"
        ) in err
    assert throttled.calls >= 2 * 2  # both claims' first function, retried
    assert refs(world.work) == before and "Traceback" not in err


def test_an_unreachable_aws_endpoint_is_one_line_per_claim_and_nothing_is_written(
    world: World, unreachable: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = refs(world.work)
    code, out, err = run_cli(_aws_drift(world), capsys)
    assert code == 1
    problems = json.loads(out)["problems"]
    assert {p["claim"] for p in problems} == {PROD, DEV}
    assert all("cannot reach the Lambda endpoint" in p["message"] for p in problems), problems
    assert refs(world.work) == before and "Traceback" not in err


def _cloudwatch(w: World) -> Argv:
    return ["analyze", "--repo", str(w.work), "--metrics", "cloudwatch"]


def test_cloudwatch_throttling_names_each_claim_and_the_quota(
    world: World, throttled: Always429, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(_cloudwatch(world), capsys)
    assert code == 1
    lines = [line for line in err.splitlines() if line]
    assert len(lines) == 2, err
    for line, claim, prefix in zip(lines, (DEV, PROD), ("messagewall-dev", "messagewall"), strict=True):
        assert line.startswith(f"error: {claim}: cloudwatch: memory_utilization ({prefix}-api-handler), ")
        assert line.endswith(
            ": CloudWatch throttled GetMetricData (TooManyRequestsException) after 2 attempts; "
            "rerun later or raise the GetMetricData quota"
        )
    assert json.loads(out)["decisions"] == [] and throttled.calls >= 2


def test_an_unreachable_cloudwatch_endpoint_is_one_line(
    world: World, unreachable: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(_cloudwatch(world), capsys)
    assert (code, out) == (1, "")
    assert err == (
        f"feedbackctl: cloudwatch: cannot reach {unreachable}/; check AWS_ENDPOINT_URL, the region and the "
        "network\n"
    )
