"""``feedbackctl dashboard``: end to end on a real demo repo, determinism, the JSON model, the pure core."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from feedbackctl.core.dashboard import (
    MAX_POINTS,
    DashboardInputs,
    ProposalInput,
    build,
    evidence,
    thin,
)
from feedbackctl.dashboard.page import render
from feedbackctl.patterns.proposals import OPEN
from tests.clirun import cli
from tests.dashboardfix import DEMO_NOW, FORGED_MESSAGE, HANDED_OFF, PROD, Demo, make_demo, run_dashboard
from tests.gitutil import commit_files

TOP_KEYS = {
    "schemaVersion",
    "command",
    "ref",
    "commit",
    "remote",
    "generatedAt",
    "counts",
    "proposals",
    "recommendations",
    "captures",
    "frozen",
    "atBounds",
    "blocked",
    "automated",
    "audit",
    "problems",
}
COUNT_KEYS = {
    "proposals",
    "proposalsByRisk",
    "stale",
    "handedOff",
    "recommendations",
    "captures",
    "frozen",
    "atBounds",
    "blocked",
    "automatedChanges",
    "violations",
}
PROPOSAL_KEYS = {
    "branch",
    "risk",
    "riskClass",
    "riskRationale",
    "claim",
    "field",
    "from",
    "to",
    "status",
    "detail",
    "stale",
    "handedOff",
    "createdAt",
    "expiresAt",
    "ageHours",
    "expiresInHours",
    "ack",
    "reviewReason",
    "policyResult",
    "tip",
    "diff",
    "summary",
    "rule",
    "source",
    "evidence",
    "commands",
}
EVIDENCE_KEYS = {
    "metric",
    "statistic",
    "windowMinutes",
    "points",
    "value",
    "threshold",
    "summary",
    "windowStart",
    "windowEnd",
    "series",
}
AUTOMATED_KEYS = {
    "commit",
    "at",
    "author",
    "kind",
    "claim",
    "field",
    "from",
    "to",
    "source",
    "rule",
    "risk",
    "evidence",
    "tags",
    "audit",
    "violations",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, git_env: Path) -> Demo:
    return make_demo(tmp_path_factory.mktemp("dash") / "demo")


_run = run_dashboard


class TestDemo:
    def test_demo_ends_by_writing_the_dashboard_and_printing_its_path(self, demo: Demo) -> None:
        page = demo.root / "dashboard" / "index.html"
        assert page.is_file()
        assert demo.demo_stdout.strip().splitlines()[-1] == f"Review dashboard: {page}"
        assert "feedback/messagewall-dev/lambdaMemory" in page.read_text()


class TestEndToEnd:
    """Proposals, sidecars, a drift capture, automated changes and a forged commit, through the CLI."""

    def test_every_section_holds_what_the_repo_holds(self, demo: Demo, tmp_path: Path) -> None:
        doc, page = _run(demo, tmp_path / "site")
        listed = cli("proposals", "list", "--repo", str(demo.repo), "--now", DEMO_NOW, "--output", "json")
        waiting = {e["branch"] for e in listed.json()["proposals"] if e["status"] in OPEN}
        assert waiting and {p["branch"] for p in doc["proposals"]} == waiting
        for branch in waiting:
            assert f'id="{branch}"' in page
        handed = next(p for p in doc["proposals"] if p["branch"] == HANDED_OFF)
        assert handed["handedOff"] and handed["status"] == "handed-off"
        assert handed["commands"]["approve"].startswith(f"git log main..{HANDED_OFF}")
        assert doc["counts"]["handedOff"] == 1 and "HANDED OFF to a human" in page
        assert doc["commit"] == demo.head() and doc["ref"] == "main"
        assert doc["generatedAt"] == DEMO_NOW
        p = doc["proposals"][0]
        assert p["diff"] and p["diff"][0].startswith("-  lambdaMemory: 512")
        assert p["diff"][1].startswith("+  lambdaMemory: 128")
        assert p["commands"]["approve"] == (
            "feedbackctl proposals approve messagewall-dev lambdaMemory --ref main"
        )
        ev = p["evidence"][0]
        assert ev["threshold"] == 40.0 and ev["windowEnd"] == p["createdAt"]
        assert ev["series"] and all(ev["windowStart"] for ev in p["evidence"])
        # the sidecar analyze --write committed: three open recommendations
        assert doc["counts"]["recommendations"] == 3
        assert {r["path"] for r in doc["recommendations"]} == {
            "claims/messagewall-dev.recommendation.yaml",
            "claims/messagewall-prod.recommendation.yaml",
        }
        capture = doc["captures"][0]
        assert capture["field"] == "spec.lambdaTimeout" and capture["to"] == 60
        assert {"break-glass", "requires-review"} <= set(capture["tags"])
        assert capture["commit"][:10] in page

    def test_forged_commit_shows_as_a_violation_in_red_and_in_words_at_the_top(
        self, demo: Demo, tmp_path: Path
    ) -> None:
        doc, page = _run(demo, tmp_path / "site")
        assert not doc["audit"]["ok"] and doc["counts"]["violations"] >= 1
        assert {v["commit"] for v in doc["audit"]["violations"]} == {demo.forged}
        forged = next(a for a in doc["automated"] if a["commit"] == demo.forged)
        assert forged["audit"] == "violation" and "trailer-diff" in forged["violations"]
        others = [a for a in doc["automated"] if a["commit"] != demo.forged]
        assert others and all(a["audit"] == "ok" for a in others)
        top = page.index('class="violations"')
        assert top < page.index('id="proposals"')
        assert "AUDIT VIOLATIONS" in page and re.search(r"VIOLATION: [^<]*trailer-diff", page)

    def test_page_is_self_contained_and_semantic(self, demo: Demo, tmp_path: Path) -> None:
        _, page = _run(demo, tmp_path / "site")
        assert "<script" not in page.lower()
        # The only URL is SVG's namespace name, which is never fetched.
        assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg"}
        assert not re.search(r"\b(src|srcset)=", page)
        assert not re.search(r"""href="(?!#|data:)""", page)
        assert "@import" not in page and "url(" not in page
        assert '<th scope="col">' in page and "<details><summary>Claim diff" in page
        assert "<h1>" in page and page.count("<h2") >= 5
        assert "LOW risk" in page  # risk as text, not only a colour
        assert "@media (max-width:600px)" in page
        assert page.count("<svg") >= 2 and 'class="window"' in page and 'class="threshold"' in page

    def test_json_schema_keys(self, demo: Demo, tmp_path: Path) -> None:
        doc, _ = _run(demo, tmp_path / "site")
        assert set(doc) == TOP_KEYS
        assert set(doc["counts"]) == COUNT_KEYS
        assert doc["schemaVersion"] == 1 and doc["command"] == "dashboard"
        assert all(set(p) == PROPOSAL_KEYS for p in doc["proposals"])
        assert all(set(e) == EVIDENCE_KEYS for p in doc["proposals"] for e in p["evidence"])
        assert all(set(a) == AUTOMATED_KEYS for a in doc["automated"])
        assert set(doc["audit"]) == {"ok", "commits", "changes", "violations", "problems"}

    def test_without_metrics_the_evidence_summary_stands_in_for_the_chart(
        self, demo: Demo, tmp_path: Path
    ) -> None:
        out = tmp_path / "site"
        ran = cli(
            "dashboard", "--repo", str(demo.repo), "--now", DEMO_NOW, "--out", str(out), "--output", "json"
        )
        assert ran.code == 0, ran.stderr
        doc = ran.json()
        assert doc["blocked"] is None and doc["counts"]["blocked"] is None
        assert all(e["series"] is None for p in doc["proposals"] for e in p["evidence"])
        page = (out / "index.html").read_text()
        assert "<svg" not in page
        assert "pass --metrics to draw the window" in page
        assert "memory_utilization max=14.6% vs threshold 40% over 24h" in page
        assert "Not evaluated: pass --metrics" in page


class TestHeld:
    def test_flapping_field_is_frozen_and_a_field_past_its_bound_is_listed(
        self, demo: Demo, tmp_path: Path
    ) -> None:
        copy = Demo(tmp_path / "copy", demo.demo_stdout, demo.forged, demo.handoff)
        shutil.copytree(demo.root, copy.root)
        text = (copy.repo / PROD).read_text()
        # The forged commit went up (384 -> 1024); down and up again make two reversals.
        for old, new in ((1024, 512), (512, 1024)):
            text = text.replace(f"lambdaMemory: {old} ", f"lambdaMemory: {new} ")
            message = FORGED_MESSAGE.replace("384", str(old)).replace("448", str(new))
            commit_files(copy.repo, {PROD: text}, message, date=DEMO_NOW)
        doc, page = _run(copy, tmp_path / "site")
        frozen = {(f["claim"], f["field"]): f for f in doc["frozen"]}
        f = frozen[("messagewall-prod", "spec.lambdaMemory")]
        assert f["guards"] == ["flap-freeze"] and "direction reversals" in f["reason"]
        assert f["command"] == "feedbackctl unfreeze messagewall-prod lambdaMemory --ref main"
        bound = {(b["claim"], b["field"]) for b in doc["atBounds"]}
        assert ("messagewall-prod", "spec.lambdaMemory") in bound
        assert "feedbackctl unfreeze messagewall-prod lambdaMemory" in page
        # the auto-tuner's own evaluation: the decision for that field is blocked, by named guards
        blocked = {(b["claim"], b["field"]): b for b in doc["blocked"]}
        guards = blocked[("messagewall-prod", "spec.lambdaMemory")]["guards"]
        assert guards and "opt-in" not in guards
        assert not any(b["claim"] == "messagewall-dev" for b in doc["blocked"])  # never opted in
        assert all(f'<td data-label="guards">{", ".join(b["guards"])}</td>' in page for b in doc["blocked"])
        print("blocked by", guards)


class TestDeterminism:
    def test_two_runs_are_byte_identical(self, demo: Demo, tmp_path: Path) -> None:
        first_doc, _ = _run(demo, tmp_path / "a")
        second_doc, _ = _run(demo, tmp_path / "b")
        assert (tmp_path / "a" / "index.html").read_bytes() == (tmp_path / "b" / "index.html").read_bytes()
        assert first_doc == second_doc

    def test_a_later_now_changes_the_page(self, demo: Demo, tmp_path: Path) -> None:
        _, early = _run(demo, tmp_path / "a")
        later = cli(
            "dashboard",
            "--repo",
            str(demo.repo),
            "--now",
            "2026-11-09T00:00:00Z",
            "--out",
            str(tmp_path / "b"),
        )
        assert later.code == 0, later.stderr
        assert "wrote " in later.stdout
        assert (tmp_path / "b" / "index.html").read_text() != early


class TestBadInput:
    def test_out_that_is_a_file_is_one_line_and_exit_2(self, demo: Demo, tmp_path: Path) -> None:
        blocker = tmp_path / "file"
        blocker.write_text("x")
        ran = cli("dashboard", "--repo", str(demo.repo), "--now", DEMO_NOW, "--out", str(blocker / "site"))
        assert ran.code == 2
        assert ran.stderr.count("\n") == 1 and "--out" in ran.stderr and "Traceback" not in ran.stderr

    def test_a_broken_sidecar_is_one_line_and_the_rest_of_the_page_is_built(
        self, demo: Demo, tmp_path: Path
    ) -> None:
        copy = Demo(tmp_path / "copy", demo.demo_stdout, demo.forged, demo.handoff)
        shutil.copytree(demo.root, copy.root)
        broken = "claims/messagewall-dev.recommendation.yaml"
        commit_files(copy.repo, {broken: "kind: [unclosed\n"}, "Ada breaks a sidecar", date=DEMO_NOW)
        out = tmp_path / "site"
        ran = cli(
            "dashboard", "--repo", str(copy.repo), "--now", DEMO_NOW, "--out", str(out), "--output", "json"
        )
        assert ran.code == 1
        lines = ran.stderr.strip().splitlines()
        assert len(lines) == 1 and broken in lines[0] and "malformed YAML" in lines[0]
        doc = ran.json()
        assert doc["problems"] == [lines[0].removeprefix("error: ")]
        assert {r["claim"] for r in doc["recommendations"]} == {"messagewall-prod"}
        assert len(doc["proposals"]) == 2
        page = (out / "index.html").read_text()
        assert "Could not read everything" in page and broken in page

    def test_remote_is_named_in_the_page_and_the_commands(self, demo: Demo, tmp_path: Path) -> None:
        doc, page = _run(demo, tmp_path / "site", "--remote", "origin")
        assert doc["remote"] == "origin"
        assert doc["proposals"] and all(
            p["commands"]["reject"].endswith("--remote origin --reason '...'")
            for p in doc["proposals"]
            if p["status"] == "pending"
        )
        assert "proposal branches from remote <code>origin</code>" in page

    def test_out_is_required(self, demo: Demo) -> None:
        ran = cli("dashboard", "--repo", str(demo.repo))
        assert ran.code == 2 and "--out" in ran.stderr


# --- the pure model ------------------------------------------------------------------------

NOW = datetime(2026, 11, 8, tzinfo=UTC)


def _entry(branch: str, risk: str, created: datetime, **extra: Any) -> dict[str, Any]:
    claim, field = branch.split("/")[1:]
    return {
        "branch": branch,
        "status": "pending",
        "detail": "waiting for review",
        "claim": claim,
        "field": f"spec.{field}",
        "from": 1,
        "to": 2,
        "risk": risk,
        "riskClass": risk,
        "escalated": False,
        "createdAt": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "expiresAt": (created + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **extra,
    }


class TestModel:
    def test_grouped_by_risk_high_first(self) -> None:
        inputs = DashboardInputs(
            "main",
            "c0ffee",
            NOW,
            proposals=[
                ProposalInput(_entry("feedback/a/lambdaMemory", "LOW", NOW), None),
                ProposalInput(_entry("feedback/b/region", "HIGH", NOW), None),
                ProposalInput(_entry("feedback/c/environment", "MEDIUM", NOW), None),
            ],
        )
        doc = build(inputs)
        assert [p["risk"] for p in doc["proposals"]] == ["HIGH", "MEDIUM", "LOW"]
        assert doc["counts"]["proposalsByRisk"] == {"HIGH": 1, "MEDIUM": 1, "LOW": 1}
        page = render(doc)
        assert page.index("HIGH risk (1)") < page.index("MEDIUM risk (1)") < page.index("LOW risk (1)")

    def test_ack_state_age_and_expiry(self) -> None:
        made = NOW - timedelta(hours=3)
        medium = _entry("feedback/c/environment", "MEDIUM", made)
        acked = _entry("feedback/d/environment", "MEDIUM", made, acknowledgedBy="Ada <ada@example.com>")
        stale = _entry("feedback/e/region", "HIGH", made, status="stale")
        doc = build(
            DashboardInputs(
                "main", "c", NOW, proposals=[ProposalInput(e, None) for e in (medium, acked, stale)]
            )
        )
        by = {p["branch"]: p for p in doc["proposals"]}
        m = by["feedback/c/environment"]
        assert m["ageHours"] == 3.0 and m["expiresInHours"] == 165.0
        assert m["ack"]["state"] == "awaiting" and "5h" in m["ack"]["detail"]
        assert m["commands"]["ack"] == "feedbackctl proposals ack c environment --ref main"
        assert by["feedback/d/environment"]["ack"]["state"] == "acknowledged"
        assert by["feedback/d/environment"]["commands"]["ack"] is None
        s = by["feedback/e/region"]
        assert s["stale"] and s["commands"]["approve"] is None and s["commands"]["reject"]
        assert "STALE: must not be applied" in render(doc)

    def test_evidence_window_and_series(self) -> None:
        raw = {
            "metric": "m",
            "period": "60m",
            "points": 12,
            "summary": "m max=91 vs threshold 80 over 1h, n=12",
        }
        end = NOW
        inside = [(int((end - timedelta(minutes=k)).timestamp()), 90.0) for k in range(0, 200, 5)]
        e = evidence(raw, "claim", end, {("claim", "m"): inside})
        assert (e["value"], e["threshold"]) == (91.0, 80.0)  # from the summary when the record lacks them
        assert e["windowStart"] == "2026-11-07T23:00:00Z" and e["windowEnd"] == "2026-11-08T00:00:00Z"
        earliest = min(t for t, _ in e["series"])
        assert earliest >= (end - timedelta(hours=2)).timestamp()  # the window and as much context again
        assert evidence(raw, "claim", None, {})["series"] is None

    def test_thin_keeps_the_peaks(self) -> None:
        points = [(i, 1.0) for i in range(5000)]
        points[3333] = (3333, 99.0)
        thinned = thin(points)
        assert len(thinned) == MAX_POINTS and [3333, 99.0] in thinned
