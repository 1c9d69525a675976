"""Support for the hostile-content cases: canary servers, evil trees, CLI runs with a private TMPDIR.

Every case runs the real CLI as a subprocess (a generous timeout, never a
timed assertion) with ``TMPDIR`` pointed at a folder the test owns, so "nothing
written outside the repo and the tool's temp folder" can be checked by listing
what exists around them.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.clirun import Result, cli
from tests.kustomizefix import NOW, PLAIN, RENDERED, metrics_dir

ALL_CLAIMS = tuple(sorted((*PLAIN, *RENDERED)))
GENEROUS = 240.0  # seconds: only a hang reaches it


@dataclass
class Canary:
    """An HTTP server on 127.0.0.1 that records every request it gets (it must get none)."""

    url: str
    hits: list[str] = field(default_factory=list)


@contextmanager
def canary_server(redirect_to: str | None = None) -> Iterator[Canary]:
    canary = Canary("")

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            canary.hits.append(f"{self.command} {self.path}")
            if redirect_to is not None:
                self.send_response(302)
                self.send_header("Location", redirect_to)
                self.end_headers()
                return
            body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fetched\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_HEAD = do_PUT = _any  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    canary.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield canary
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def blackhole() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers: ``host:port``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        sock.close()


def git(cwd: Path, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None) -> str:
    full = {**os.environ, **env} if env else None
    proc = subprocess.run(
        ["git", "-C", str(cwd), *args], input=input, capture_output=True, check=False, env=full
    )
    assert proc.returncode == 0, f"git {args} failed: {proc.stderr.decode()}"
    return proc.stdout.decode().strip()


def evil_commit(work: Path, entries: Mapping[str, bytes], message: str = "evil") -> str:
    """Commit on top of HEAD adding tree entries with *any* names ('..', '.git', newlines).

    ``entries`` maps a '/'-separated path (its components may be '..') to content;
    the trees are built with ``git mktree --missing``, as a hostile pusher would,
    and the branch is moved with update-ref (the porcelain would refuse).
    """
    head = git(work, "rev-parse", "HEAD")
    tree: dict[str, object] = {}
    listing = subprocess.run(
        ["git", "-C", str(work), "ls-tree", "-r", "-z", "HEAD"], capture_output=True, check=True
    ).stdout
    for item in listing.split(b"\0"):
        if item:
            meta, _, name = item.partition(b"\t")
            _insert(tree, name.decode("utf-8", "surrogateescape").split("/"), ("existing", meta.decode()))
    for path, data in entries.items():
        blob = git(work, "hash-object", "-w", "--stdin", input=data)
        _insert(tree, path.split("/"), ("new", f"100644 blob {blob}"))
    top = _mktree(work, tree)
    # Dated like the commit it follows: writers refuse a --now before the tip (docs/history.md).
    when = git(work, "log", "-1", "--format=%cI", "HEAD")
    dates = {"GIT_COMMITTER_DATE": when, "GIT_AUTHOR_DATE": when}
    sha = git(work, "commit-tree", top, "-p", head, "-m", message, env=dates)
    branch = git(work, "symbolic-ref", "HEAD")
    git(work, "update-ref", branch, sha, head)
    return sha


def _insert(tree: dict[str, object], parts: Sequence[str], leaf: tuple[str, str]) -> None:
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        assert isinstance(child, dict)
        node = child
    node[parts[-1]] = leaf


def _mktree(work: Path, node: Mapping[str, object]) -> str:
    lines = []
    for name, value in node.items():
        if isinstance(value, dict):
            lines.append(f"040000 tree {_mktree(work, value)}\t{name}")
        else:
            assert isinstance(value, tuple)
            lines.append(f"{value[1]}\t{name}")
    data = "".join(f"{line}\0" for line in lines).encode("utf-8", "surrogateescape")
    return git(work, "mktree", "-z", "--missing", input=data)


def run_cli(tmp_path: Path, *args: str, env: Mapping[str, str] | None = None) -> Result:
    """The CLI as a subprocess whose temporary folders go to ``tmp_path/tool-tmp``."""
    tool_tmp = tmp_path / "tool-tmp"
    tool_tmp.mkdir(exist_ok=True)
    return cli(*args, env={"TMPDIR": str(tool_tmp), **(env or {})}, timeout=GENEROUS)


def analyze(tmp_path: Path, work: Path, *extra: str, env: Mapping[str, str] | None = None) -> Result:
    metrics = tmp_path / "metrics"
    if not metrics.exists():
        metrics_dir(tmp_path)
    return run_cli(
        tmp_path,
        "analyze",
        "--repo",
        str(work),
        "--metrics",
        str(metrics),
        "--now",
        NOW,
        "--output",
        "json",
        *extra,
        env=env,
    )


def problems(r: Result) -> list[str]:
    data = r.json()
    return [p["message"] if isinstance(p, dict) else str(p) for p in data["problems"]]


def claims_decided(r: Result) -> list[str]:
    return sorted({d["claim"] for d in r.json()["decisions"]})


def assert_refused(r: Result, pattern: str, others: Sequence[str]) -> None:
    """Exit 1 or 2; exactly one problem line matching ``pattern``; every claim in ``others`` decided."""
    assert r.code in (1, 2), f"exit {r.code}\n{r.stdout}\n{r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    found = problems(r)
    hits = [p for p in found if re.search(pattern, p)]
    assert len(hits) == 1, (pattern, found)
    assert "\n" not in hits[0]
    assert set(others) <= set(claims_decided(r)), (others, claims_decided(r))


def files_under(root: Path, skip: Sequence[Path] = ()) -> set[str]:
    """Every path under ``root`` (not descending into ``skip``), relative, for before/after checks."""
    out: set[str] = set()
    for p in root.rglob("*"):
        if any(p == s or s in p.parents for s in skip):
            continue
        out.add(str(p.relative_to(root)))
    return out
