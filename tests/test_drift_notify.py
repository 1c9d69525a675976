"""Drift capture notifications: one JSON event per capture, POSTed to a real HTTP server."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from feedbackctl.notify import post_event
from tests.gitutil import git_out
from tests.test_drift import DEV_CLAIM, PROD_CLAIM, drift, head, live_file, repo  # noqa: F401


class Hook:
    """A webhook receiver on 127.0.0.1 that records each POST and answers ``status``."""

    def __init__(self, status: int = 204) -> None:
        self.status = status
        self.posts: list[tuple[dict[str, str], Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.posts.append((dict(self.headers), json.loads(body)))
                self.send_response(hook.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/drift"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Hook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def hook() -> Iterator[Hook]:
    with Hook() as h:
        yield h


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def test_each_capture_emits_one_json_event(repo, tmp_path: Path) -> None:  # noqa: F811
    work, _ = repo
    live = live_file(tmp_path, {PROD_CLAIM: {"lambdaTimeout": 60}, DEV_CLAIM: {"lambdaMemory": 384}})
    r = drift(work, live, "--output", "json")
    assert r.code == 0, r.stderr
    report = r.json()
    events = {e["claim"]: e for e in report["events"]}
    assert set(events) == {PROD_CLAIM, DEV_CLAIM}
    prod = events[PROD_CLAIM]
    assert prod["event"] == "drift-capture"
    assert (prod["field"], prod["desired"], prod["observed"]) == ("spec.lambdaTimeout", 30, 60)
    assert prod["tags"] == ["break-glass", "requires-review"]
    assert prod["source"] == "live-file" and prod["branch"] == "main" and prod["at"] == "2026-11-08T00:00:00Z"
    assert git_out(
        work, "log", "-1", "--format=%(trailers:key=Feedback-Field,valueonly)", prod["commit"]
    ) == ("spec.lambdaTimeout")
    assert "notify" not in prod
    # The same live state again: no capture, no event.
    assert drift(work, live, "--output", "json").json()["events"] == []


def test_webhook_receives_the_event(repo, tmp_path: Path, hook: Hook) -> None:  # noqa: F811
    work, _ = repo
    live = live_file(tmp_path, {PROD_CLAIM: {"lambdaTimeout": 60}})
    r = drift(work, live, "--notify-webhook", hook.url, "--output", "json")
    assert r.code == 0, r.stderr
    event = r.json()["events"][0]
    assert event["notify"] == {"webhook": hook.url, "status": "sent"}
    assert len(hook.posts) == 1
    headers, body = hook.posts[0]
    assert headers["Content-Type"] == "application/json"
    assert body == {k: v for k, v in event.items() if k != "notify"}
    assert body["commit"] == head(work)


@pytest.mark.parametrize("failure", ["http-500", "unreachable"])
def test_webhook_failure_is_reported_and_the_capture_stays(repo, tmp_path: Path, failure: str) -> None:  # noqa: F811
    work, _ = repo
    before = head(work)
    live = live_file(tmp_path, {PROD_CLAIM: {"lambdaTimeout": 60}})
    with Hook(status=500) as failing:
        url = failing.url if failure == "http-500" else closed_port_url()
        r = drift(work, live, "--notify-webhook", url, "--output", "json")
    assert r.code == 1
    captured = head(work)
    assert captured != before
    assert (
        git_out(work, "log", "-1", "--format=%(trailers:key=Feedback-Kind,valueonly)", captured)
        == "drift-capture"
    )
    event = r.json()["events"][0]
    assert event["commit"] == captured
    assert event["notify"]["status"] == "failed"
    expected = "HTTP 500" if failure == "http-500" else "cannot reach"
    assert expected in event["notify"]["error"]
    assert (
        f"webhook notification failed ({event['notify']['error']}); the capture {captured[:10]} is committed"
        in (r.stderr)
    )
    assert "Traceback" not in r.stderr


def test_post_event_returns_none_on_2xx_and_a_reason_otherwise(hook: Hook) -> None:
    assert post_event(hook.url, {"a": 1}) is None
    hook.status = 404
    assert post_event(hook.url, {"a": 1}) == f"{hook.url} answered HTTP 404 Not Found"
    assert hook.posts[0][1] == {"a": 1}
