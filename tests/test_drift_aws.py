"""``drift --live aws``: Lambda GetFunctionConfiguration over HTTP against a real moto server."""

from __future__ import annotations

import io
import json
import socket
import threading
import urllib.request
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest

from feedbackctl.core.models import Claim
from feedbackctl.errors import UsageError
from feedbackctl.sources.live import LambdaLive, load_live_policy, parse_live_policy
from tests.clirun import Result, cli
from tests.gitutil import commit_files, git_out, make_repo
from tests.test_drift import DEV, DEV_CLAIM, NOW, PROD, PROD_CLAIM, example_claims, head, trailers

ROLE = "arn:aws:iam::123456789012:role/messagewall-lambda"


def claims_with_prefixes() -> dict[str, str]:
    files = example_claims()
    files[PROD] = files[PROD].replace("resourcePrefix: messagewall", "resourcePrefix: mw-prod")
    files[DEV] = files[DEV].replace("resourcePrefix: messagewall", "resourcePrefix: mw-dev")
    return files


@pytest.fixture()
def repo(tmp_path: Path) -> tuple[Path, Path]:
    return make_repo(tmp_path, claims_with_prefixes(), date="2026-10-01T00:00:00Z")


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("handler.py", "def handler(event, context):\n    return event\n")
    return buf.getvalue()


def create_functions(prefix: str, memory: int, timeout: int) -> None:
    lam = boto3.client("lambda")
    for suffix in ("api-handler", "snapshot-writer"):
        lam.create_function(
            FunctionName=f"{prefix}-{suffix}",
            Runtime="python3.12",
            Role=ROLE,
            Handler="handler.handler",
            Code={"ZipFile": _zip()},
            MemorySize=memory,
            Timeout=timeout,
        )


def break_glass(function: str, **config: int) -> None:
    """An operator's hand edit in the console, during an incident."""
    boto3.client("lambda").update_function_configuration(FunctionName=function, **config)


@pytest.fixture()
def deployed(aws: str) -> str:
    boto3.client("iam").create_role(
        RoleName="messagewall-lambda",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )
    create_functions("mw-prod", 256, 30)
    create_functions("mw-dev", 512, 10)
    return aws


def drift_aws(work: Path, *extra: str, env: dict[str, str] | None = None) -> Result:
    return cli(
        "drift", "--repo", str(work), "--live", "aws", "--now", NOW, "--output", "json", *extra, env=env
    )


def test_break_glass_edit_in_lambda_is_captured(repo, deployed) -> None:
    work, _ = repo
    before = head(work)
    assert drift_aws(work).json()["commits"] == []  # everything matches git
    for fn in ("mw-prod-api-handler", "mw-prod-snapshot-writer"):
        break_glass(fn, Timeout=60)
    r = drift_aws(work)
    assert r.code == 0, r.stderr
    assert git_out(work, "rev-list", "--count", f"{before}..main") == "1"
    t = trailers(work, "main")
    assert (t["Feedback-Claim"], t["Feedback-Field"], t["Feedback-From"], t["Feedback-To"]) == (
        PROD_CLAIM,
        "spec.lambdaTimeout",
        "30",
        "60",
    )
    assert t["Feedback-Source"] == "aws-lambda"
    assert t["Feedback-Tags"] == "break-glass, requires-review"
    report = r.json()
    assert report["source"] == "aws-lambda" and report["inSync"] == 3
    assert "lambdaTimeout: 60    # Longer timeout" in git_out(work, "show", f"main:{PROD}")
    # Same live state: nothing new.
    assert drift_aws(work).code == 0 and git_out(work, "rev-list", "--count", f"{before}..main") == "1"


def test_functions_that_disagree_capture_nothing_for_that_field(repo, deployed) -> None:
    work, _ = repo
    before = head(work)
    break_glass("mw-prod-api-handler", Timeout=60, MemorySize=512)
    break_glass("mw-prod-snapshot-writer", MemorySize=512)  # timeout left at 30
    r = drift_aws(work)
    assert r.code == 1
    assert (
        "messagewall-prod: the functions disagree on spec.lambdaTimeout (mw-prod-api-handler has Timeout 60, "
        "mw-prod-snapshot-writer has Timeout 30); nothing captured for it until they agree"
    ) in r.stderr
    # The field they agree on is still captured.
    assert git_out(work, "rev-list", "--count", f"{before}..main") == "1"
    assert trailers(work, "main")["Feedback-Field"] == "spec.lambdaMemory"
    assert trailers(work, "main")["Feedback-To"] == "512"


def test_a_missing_function_is_a_problem_for_its_claim_only(repo, aws) -> None:
    work, _ = repo
    boto3.client("iam").create_role(RoleName="messagewall-lambda", AssumeRolePolicyDocument="{}")
    create_functions("mw-prod", 256, 45)  # dev was never deployed
    r = drift_aws(work)
    assert r.code == 1
    assert "messagewall-dev: Lambda function mw-dev-api-handler (us-east-1) not found" in r.stderr
    assert "Traceback" not in r.stderr
    assert trailers(work, "main")["Feedback-Claim"] == PROD_CLAIM
    assert {p["claim"] for p in r.json()["problems"]} == {DEV_CLAIM}


def test_mapping_is_configurable_in_the_repos_policies(repo, deployed) -> None:
    work, _ = repo
    create_functions("custom-messagewall-prod", 1024, 30)
    commit_files(
        work,
        {
            "policies/live.yaml": (
                "lambda:\n"
                "  - kind: ServerlessEventAppClaim\n"
                "    functions: ['custom-{metadata.name}-api-handler']\n"
                "    fields: {lambdaMemory: MemorySize}\n"
            )
        },
        "Map claims to custom functions",
        "2026-10-02T00:00:00Z",
    )
    r = drift_aws(work)
    assert r.code == 1  # no custom function for dev
    assert "custom-messagewall-dev-api-handler" in r.stderr
    t = trailers(work, "main")
    assert (t["Feedback-Claim"], t["Feedback-Field"], t["Feedback-To"]) == (
        PROD_CLAIM,
        "spec.lambdaMemory",
        "1024",
    )
    assert "lambdaTimeout" not in {d["field"] for d in r.json()["drift"]}


class ThrottlingProxy:
    """Forwards to moto, but answers 429 TooManyRequests for functions named ``*throttled*``."""

    def __init__(self, upstream: str) -> None:
        proxy = self
        self.upstream = upstream
        self.throttled = 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                if "throttled" in self.path:
                    proxy.throttled += 1
                    body = b'{"Type":"User","message":"Rate exceeded"}'
                    self.send_response(429)
                    self.send_header("x-amzn-ErrorType", "TooManyRequestsException")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                req = urllib.request.Request(
                    proxy.upstream + self.path,
                    headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
                )
                with urllib.request.urlopen(req, timeout=10) as up:
                    data = up.read()
                    self.send_response(up.status)
                    for k, v in up.headers.items():
                        if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def throttling(deployed: str) -> Iterator[ThrottlingProxy]:
    proxy = ThrottlingProxy(deployed)
    yield proxy
    proxy.close()


def test_throttling_is_reported_per_claim_and_the_run_continues(repo, throttling) -> None:
    work, _ = repo
    text = (work / DEV).read_text().replace("resourcePrefix: mw-dev", "resourcePrefix: throttled-dev")
    commit_files(work, {DEV: text}, "Rename dev functions", "2026-10-02T00:00:00Z")
    break_glass("mw-prod-api-handler", Timeout=60)
    break_glass("mw-prod-snapshot-writer", Timeout=60)
    env = {"AWS_ENDPOINT_URL": throttling.url, "AWS_MAX_ATTEMPTS": "2", "AWS_RETRY_MODE": "standard"}
    r = drift_aws(work, env=env)
    assert r.code == 1
    assert (
        "messagewall-dev: AWS throttled GetFunctionConfiguration for throttled-dev-api-handler (us-east-1) "
        "after retries; rerun later"
    ) in r.stderr
    assert throttling.throttled >= 2  # botocore retried before giving up
    assert trailers(work, "main")["Feedback-To"] == "60"


def test_unreachable_endpoint_is_one_clear_problem_per_claim(repo, aws) -> None:
    work, _ = repo
    before = head(work)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_MAX_ATTEMPTS": "1"}
    r = drift_aws(work, env=env)
    assert r.code == 1
    problems = r.json()["problems"]
    assert {p["claim"] for p in problems} == {PROD_CLAIM, DEV_CLAIM}
    assert all("cannot reach the Lambda endpoint" in p["message"] for p in problems)
    assert "Traceback" not in r.stderr and head(work) == before


def test_no_credentials_is_a_usage_error(repo, aws, tmp_path) -> None:
    work, _ = repo
    env = {
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SESSION_TOKEN": "",
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
    }
    r = drift_aws(work, env=env)
    assert r.code == 2
    assert "no AWS credentials found" in r.stderr


# --- the mapping itself ------------------------------------------------------------


def _claim(**spec: object) -> Claim:
    return Claim(PROD_CLAIM, "ServerlessEventAppClaim", "x/v1", spec, "c.yaml")


def test_default_mapping_is_the_composition_of_spec_section_7() -> None:
    policy = load_live_policy(None)
    mapping = policy.for_kind("ServerlessEventAppClaim")
    assert mapping is not None
    names = [t.render(_claim(resourcePrefix="mw")) for t in mapping.functions]
    assert names == ["mw-api-handler", "mw-snapshot-writer"]
    assert [t.render(_claim()) for t in mapping.functions] == [
        "messagewall-api-handler",
        "messagewall-snapshot-writer",
    ]  # the XRD's default prefix
    assert mapping.fields == {"lambdaMemory": "MemorySize", "lambdaTimeout": "Timeout"}
    assert mapping.region is not None and mapping.region.render(_claim(region="eu-west-1")) == "eu-west-1"


def test_a_template_needing_an_unset_field_is_a_problem_for_that_claim() -> None:
    policy = parse_live_policy(
        {
            "lambda": [
                {"kind": "ServerlessEventAppClaim", "functions": ["{spec.team}-api"], "fields": {"a": "B"}}
            ]
        },
        "policies/live.yaml",
    )
    state = LambdaLive(policy).observe([_claim()])
    assert state.problems == {
        PROD_CLAIM: [f"{PROD_CLAIM}: spec.team is not set, and the live mapping '{{spec.team}}-api' needs it"]
    }


@pytest.mark.parametrize(
    "doc",
    [
        {"lambda": {"kind": "X"}},
        {"lambda": [{"kind": "X", "functions": [], "fields": {"a": "B"}}]},
        {"lambda": [{"kind": "X", "functions": ["{spec.x"], "fields": {"a": "B"}}]},
        {"lambda": [{"kind": "X", "functions": ["f"], "fields": {"a": 1}}]},
    ],
)
def test_a_broken_mapping_is_a_configuration_error(doc) -> None:
    with pytest.raises(UsageError, match="policies/live.yaml: lambda"):
        parse_live_policy(doc, "policies/live.yaml")
