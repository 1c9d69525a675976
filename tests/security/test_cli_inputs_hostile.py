"""Odd command-line and config values, and a planted claim cache.

``--now ''`` used to mean the real clock and ``--now 0001-01-01`` was an
internal OverflowError; ``--branch -x``/``@``/``refs/tags/v1`` and
``proposals.prefix: --upload-pack=x/`` or an empty prefix were accepted; the
claim cache in the git dir was a pickle loaded unguarded. Each is now one
usage line (exit 2, nothing moved), or, for the cache, ignored and rebuilt.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from feedbackctl.authority.claimcache import CACHE_VERSION
from tests.security.hostile_world import DEV, LIMITS, PROD, World, check, make_world


@pytest.fixture()
def w(tmp_path: Path) -> World:
    return make_world(tmp_path)


NOWS = {
    "empty": ("", "--now '' is not an ISO-8601 time"),
    "blank": ("  ", "--now '  ' is not an ISO-8601 time"),
    "year-one": ("0001-01-01T00:00:00Z", "--now '0001-01-01T00:00:00Z' is outside 1970-01-01..9000-01-01"),
    "no-zone": ("0001-01-01", "--now '0001-01-01' has no time zone"),
    "year-one-with-offset": ("0001-01-01T00:00:00+05:00", "is outside 1970-01-01..9000-01-01"),
    "year-9999": ("9999-12-31T23:59:59Z", "is outside 1970-01-01..9000-01-01"),
    "negative-epoch": ("-86400", "is outside 1970-01-01..9000-01-01"),
    "huge-epoch": ("1e300", "is not an ISO-8601 time"),
    "nan": ("nan", "is not an ISO-8601 time"),
}


@pytest.mark.parametrize("now,message", NOWS.values(), ids=NOWS.keys())
@pytest.mark.parametrize("command", ["propose"])
def test_a_bad_now_is_one_usage_line(w: World, now: str, message: str, command: str) -> None:
    argv = w.propose() if command == "propose" else w.drift()
    before = w.refs()
    r = w.run(*argv, "--now", now)
    check(w, r, code=2, line=lambda x: x.startswith("feedbackctl: --now") and message in x, before=before)
    assert w.refs() == before


BRANCHES = {
    "leading-dash": ("-x", "has a component starting with '-'"),
    "option-like-component": ("review/--upload-pack=x", "has a component starting with '-'"),
    "at-sign": ("@", "is '@', 'HEAD' or a full ref name"),
    "head": ("HEAD", "is '@', 'HEAD' or a full ref name"),
    "full-tag-ref": ("refs/tags/v1", "is '@', 'HEAD' or a full ref name"),
    "empty": ("", "is empty"),
}


@pytest.mark.parametrize("branch,why", BRANCHES.values(), ids=BRANCHES.keys())
def test_an_odd_branch_name_is_one_usage_line(w: World, branch: str, why: str) -> None:
    before = w.refs()
    r = w.run(*w.drift(), "--branch", branch)
    line = f"feedbackctl: --branch '{branch}' is not a valid git ref name: it {why}"
    check(w, r, code=2, line=line, before=before)
    assert w.refs() == before


PREFIXES = {
    "upload-pack": ("--upload-pack=x/", "has a component starting with '-'"),
    "empty": ("''", "does not end with '/'"),
    "no-slash": ("feedback", "does not end with '/'"),
    "refs": ("refs/tags/", "is '@', 'HEAD' or a full ref name"),
    "not-a-string": ("[1]", "is not a string"),
}


@pytest.mark.parametrize("prefix,why", PREFIXES.values(), ids=PREFIXES.keys())
def test_an_odd_proposal_prefix_is_one_usage_line(w: World, prefix: str, why: str) -> None:
    w.commit({".feedbackctl.yaml": LIMITS + f"  prefix: {prefix}\n"})
    before = w.refs()
    r = w.run(*w.propose())
    check(
        w,
        r,
        code=2,
        line=lambda x: x.startswith("feedbackctl: .feedbackctl.yaml: proposals.prefix") and why in x,
        before=before,
    )
    assert w.refs() == before


CANARY = "pwned-by-pickle"


class _Plant:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, (f"touch {CANARY}",))


PLANTED = {
    "pickle-at-the-old-name": ("claims-v1.pickle", pickle.dumps({"x": _Plant()})),
    "pickle-at-the-new-name": (f"claims-v{CACHE_VERSION}.json", pickle.dumps({"x": _Plant()})),
    "json-of-the-wrong-shape": (f"claims-v{CACHE_VERSION}.json", b'{"version": 2, "entries": [{"path": 1}]}'),
    "json-with-a-forged-claim": (
        f"claims-v{CACHE_VERSION}.json",
        b'{"version": 2, "entries": [{"path": "claims/x.yaml", "blob": "b", "kinds": [],'
        b' "claims": [[{"name": 5}, 0]]}]}',
    ),
    "not-utf8": (f"claims-v{CACHE_VERSION}.json", b"\xff\xfe\x00"),
}


@pytest.mark.parametrize("name,content", PLANTED.values(), ids=PLANTED.keys())
def test_a_planted_claim_cache_is_ignored_and_never_executed(w: World, name: str, content: bytes) -> None:
    folder = w.work / ".git" / "feedbackctl"
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(content)
    before = w.refs()
    r = w.run(*w.propose())
    assert r.code == 0, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    for where in (w.tmp, w.work, Path.cwd()):
        assert not (where / CANARY).exists()
    new = set(w.refs()) - set(before)
    assert any(PROD in ref for ref in new) and any(DEV in ref for ref in new), new
    written = (folder / f"claims-v{CACHE_VERSION}.json").read_bytes()
    assert written.startswith(f'{{"version":{CACHE_VERSION},'.encode())


def test_the_cache_round_trips_and_a_second_run_uses_it(w: World) -> None:
    assert w.run(*w.propose()).code == 0
    cache = w.work / ".git" / "feedbackctl" / f"claims-v{CACHE_VERSION}.json"
    first = cache.read_bytes()
    r = w.run("analyze", "--repo", str(w.work), "--metrics", str(w.metrics))
    assert r.code == 0 and PROD in r.stdout and DEV in r.stdout
    assert cache.read_bytes() == first  # read back and used as it was: nothing to rewrite
