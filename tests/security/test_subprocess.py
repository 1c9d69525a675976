"""Subprocesses: deadlines, process-group kills, no repo-configured programs, private temp folders.

A hung kubectl costs its overlay only; a git that never hears back from a
remote costs the step, named; programs the repository's config names
(``core.fsmonitor``, hooks, clean/smudge filters a committed ``.gitattributes``
selects) never run; temp folders are 0700 and swept when a killed run left them.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from feedbackctl.authority import tempdirs
from feedbackctl.notify import post_event
from feedbackctl.proc import SubprocessTimeout, run
from tests.autotunefix import DEV_CLAIM, PROD_CLAIM, T0, autotune, example_metrics
from tests.gitutil import RepoFactory, git_out
from tests.kustomizefix import PLAIN, RENDERED, corpus_repo
from tests.security.hostilefix import (
    ALL_CLAIMS,
    analyze,
    blackhole,
    canary_server,
    claims_decided,
    problems,
    run_cli,
)


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie not yet reaped by init counts as gone: it runs nothing.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" in status.read_text()


def _wait_gone(pid: int) -> bool:
    for _ in range(100):  # init reaps asynchronously; this only waits, it asserts no duration
        if _gone(pid):
            return True
        time.sleep(0.1)
    return _gone(pid)


# --- deadlines -------------------------------------------------------------------------------


def test_a_hanging_kubectl_costs_only_its_overlays_and_its_children_die(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    fake = _script(tmp_path / "kubectl", f'sleep 1000 &\necho $! >> "{pids}"\nwait\n')
    work = corpus_repo(repo_factory)
    r = analyze(tmp_path, work, env={"FEEDBACKCTL_KUBECTL": str(fake), "FEEDBACKCTL_KUBECTL_TIMEOUT": "2"})
    assert r.code == 1, r.stdout + r.stderr
    timed_out = [p for p in problems(r) if "did not finish within 2s and was killed" in p]
    assert sorted(p.split(":")[0] for p in timed_out) == sorted(
        f"infra/claims/overlays/{o}/" for o in ("dev-east", "dev-west", "prod-east", "prod-west")
    ), problems(r)
    assert claims_decided(r) == sorted(PLAIN)  # the plain claims still ran
    children = [int(x) for x in pids.read_text().split()]
    assert len(children) == len(RENDERED)
    assert all(_wait_gone(pid) for pid in children), children


def test_kubectl_dies_with_feedbackctl_when_the_run_is_killed(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    """kill -9 of the cron job used to leave kubectl running (it had no deadline of its own)."""
    pids = tmp_path / "pids"
    fake = _script(tmp_path / "kubectl", f'echo $$ >> "{pids}"\nexec sleep 1000\n')
    work = corpus_repo(repo_factory)
    from tests.kustomizefix import metrics_dir

    metrics = metrics_dir(tmp_path)
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "FEEDBACKCTL_KUBECTL": str(fake),
        "TMPDIR": str(tmp_path),
    }
    argv = [sys.executable, "-m", "feedbackctl", "analyze", "--repo", str(work), "--metrics", str(metrics)]
    run_ = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(2400):  # until every overlay's kubectl has started (bounded, not timed)
            if pids.exists() and len(pids.read_text().split()) >= len(RENDERED):
                break
            time.sleep(0.05)
        children = [int(x) for x in pids.read_text().split()]
        assert len(children) == len(RENDERED)
    finally:
        run_.kill()
        run_.wait()
    assert all(_wait_gone(pid) for pid in children), children


def test_a_remote_that_never_answers_is_a_named_step_timeout(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    work, _ = repo_factory({"claims/messagewall-prod.yaml": PROD_CLAIM})
    with blackhole() as address:
        git_out(work, "remote", "set-url", "origin", f"http://{address}/claims.git")
        r = run_cli(
            tmp_path,
            "autotune", "--repo", str(work), "--metrics", str(example_metrics(tmp_path / "m")),
            "--now", "2026-11-08T00:00:00Z", "--push", "--output", "json",
            env={"FEEDBACKCTL_GIT_TIMEOUT": "3"},
        )  # fmt: skip
    out = r.stdout + r.stderr
    assert r.code == 1, out
    assert re.search(r"`git fetch --no-tags` did not finish within 3s and was killed", out), out
    assert "FEEDBACKCTL_GIT_TIMEOUT" in out and "Traceback" not in out


def test_run_kills_the_whole_process_group_on_timeout(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    with pytest.raises(SubprocessTimeout, match=r"did not finish within 1s"):
        run(["sh", "-c", f'sleep 1000 & echo $! > "{pid_file}"; wait'], timeout=1, timeout_setting="X")
    assert _wait_gone(int(pid_file.read_text()))


def test_run_removes_env_entries_set_to_none(tmp_path: Path) -> None:
    os.environ["H14A_PROBE"] = "1"
    try:
        out = run(["sh", "-c", 'echo "${H14A_PROBE-unset}"'], env={"H14A_PROBE": None}).stdout
    finally:
        del os.environ["H14A_PROBE"]
    assert out == b"unset\n"


@pytest.mark.parametrize("value", ["soon", "0", "-5", "inf", "nan"])
def test_a_bad_timeout_setting_is_a_usage_error(
    repo_factory: RepoFactory, tmp_path: Path, value: str
) -> None:
    work, _ = repo_factory({"claims/messagewall-prod.yaml": PROD_CLAIM})
    r = run_cli(tmp_path, "analyze", "--repo", str(work), "--now", "2026-11-08T00:00:00Z",
                env={"FEEDBACKCTL_GIT_TIMEOUT": value})  # fmt: skip
    assert r.code == 2, r.stdout + r.stderr
    assert f"FEEDBACKCTL_GIT_TIMEOUT='{value}'" in r.stderr and "Traceback" not in r.stderr


def test_a_bad_kubectl_timeout_setting_is_a_usage_error(repo_factory: RepoFactory, tmp_path: Path) -> None:
    r = analyze(tmp_path, corpus_repo(repo_factory), env={"FEEDBACKCTL_KUBECTL_TIMEOUT": "soon"})
    assert r.code == 2, r.stdout + r.stderr
    assert "FEEDBACKCTL_KUBECTL_TIMEOUT='soon' is not a number of seconds" in r.stderr
    assert "not installed" not in r.stderr and "Traceback" not in r.stderr


# --- kubectl's environment ----------------------------------------------------------------------


def test_kubectl_runs_with_no_route_no_plugins_the_root_only_restrictor_in_a_private_folder(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    log = tmp_path / "kubectl-calls.jsonl"
    probe = (
        "import json, os, stat, sys\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(json.dumps({'argv': sys.argv[1:], 'env': dict(os.environ),\n"
        "        'mode': stat.S_IMODE(os.stat('.').st_mode), 'cwd': os.getcwd()}) + '\\n')\n"
        "os.execvp('kubectl', ['kubectl', *sys.argv[1:]])\n"
    )
    (tmp_path / "probe.py").write_text(probe)
    fake = _script(tmp_path / "kubectl-probe", f'exec {sys.executable} "{tmp_path / "probe.py"}" "$@"\n')
    work = corpus_repo(repo_factory)
    env = {
        "FEEDBACKCTL_KUBECTL": str(fake),
        "NO_PROXY": "*",
        "no_proxy": "*",
        "HTTPS_PROXY": "http://real:3128",
    }
    r = analyze(tmp_path, work, env=env)
    assert r.code == 0, r.stdout + r.stderr
    assert claims_decided(r) == sorted(ALL_CLAIMS)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(calls) >= len(RENDERED)
    for call in calls:
        assert call["argv"][:2] == ["kustomize", "--load-restrictor=LoadRestrictionsRootOnly"]
        assert not any(a.startswith("--enable") for a in call["argv"])
        for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
            assert call["env"][key] == "http://127.0.0.1:9"
        assert "NO_PROXY" not in call["env"] and "no_proxy" not in call["env"]
        assert call["env"]["KUSTOMIZE_PLUGIN_HOME"].startswith("/nonexistent/")
        assert call["mode"] == 0o700
        assert Path(call["cwd"]).name.startswith("feedbackctl-kustomize-")
        assert Path(call["cwd"]).parent == tmp_path / "tool-tmp"
    assert list((tmp_path / "tool-tmp").iterdir()) == []  # removed after the run


# --- stale temp folders ---------------------------------------------------------------------------


def test_stale_temp_folders_of_killed_runs_are_swept_by_the_next_run(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    tool_tmp = tmp_path / "tool-tmp"
    tool_tmp.mkdir()
    old = time.time() - tempdirs.STALE_SECONDS - 60
    stale = [tool_tmp / "feedbackctl-kustomize-dead1", tool_tmp / "feedbackctl-import-dead2"]
    young = tool_tmp / "feedbackctl-kustomize-live"
    foreign = [tool_tmp / "feedbackctl-demo-keep", tool_tmp / "other-kustomize-x"]
    for d in (*stale, young, *foreign):
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "f").write_text("x")
    for d in (*stale, *foreign):
        os.utime(d, (old, old))
    link = tool_tmp / "feedbackctl-import-link"
    link.symlink_to(tmp_path / "precious", target_is_directory=True)
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "keep").write_text("x")
    os.utime(link, (old, old), follow_symlinks=False)
    r = analyze(tmp_path, corpus_repo(repo_factory))
    assert r.code == 0, r.stdout + r.stderr
    assert not any(d.exists() for d in stale)
    assert young.exists() and all(d.exists() for d in foreign)
    assert link.is_symlink() and (tmp_path / "precious" / "keep").exists()


def test_private_dir_is_0700_and_refuses_foreign_prefixes() -> None:
    with tempdirs.private_dir("feedbackctl-import-") as d:
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert not d.exists()
    with pytest.raises(ValueError), tempdirs.private_dir("feedbackctl-demo-"):
        pass


# --- programs the repository's config names -------------------------------------------------------


def _tune_checkout(tmp_path: Path, repo_factory: RepoFactory, files: dict[str, str] | None = None) -> Path:
    work, _ = repo_factory({"claims/messagewall-prod.yaml": PROD_CLAIM, **(files or {})})
    return work


SAFE = ("-c", "core.fsmonitor=", "-c", "filter.evil.clean=", "-c", "filter.evil.smudge=")


def _assert_tuned(work: Path, tmp_path: Path, pwned: Path) -> None:
    """autotune commits and fast-forwards the checkout; the planted program never ran."""
    r = autotune(work, example_metrics(tmp_path / "metrics"), T0)
    assert r.code == 0, r.stdout + r.stderr
    assert not pwned.exists()  # checked before this test's own git commands could run it
    assert int(git_out(work, "rev-list", "--count", "HEAD")) == 2
    assert git_out(work, *SAFE, "-c", "filter.evil.required=false", "status", "--porcelain") == ""


def test_core_fsmonitor_in_the_repo_config_never_runs(repo_factory: RepoFactory, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned-fsmonitor"
    work = _tune_checkout(tmp_path, repo_factory)
    hook = _script(tmp_path / "fsmonitor", f'touch "{pwned}"\nexit 1\n')
    git_out(work, "config", "core.fsmonitor", str(hook))
    pwned.unlink(missing_ok=True)
    _assert_tuned(work, tmp_path, pwned)


@pytest.mark.parametrize("hook", ["reference-transaction", "post-index-change", "pre-push"])
def test_repository_hooks_never_run(repo_factory: RepoFactory, tmp_path: Path, hook: str) -> None:
    pwned = tmp_path / f"pwned-{hook}"
    work = _tune_checkout(tmp_path, repo_factory)
    _script(work / ".git" / "hooks" / hook, f'touch "{pwned}"\nexit 0\n')
    r = autotune(work, example_metrics(tmp_path / "metrics"), T0, "--push")
    assert r.code == 0, r.stdout + r.stderr
    assert git_out(work, "rev-parse", "HEAD") == git_out(work, "rev-parse", "origin/main")
    assert not pwned.exists()


def test_clean_and_smudge_filters_a_committed_gitattributes_selects_never_run(
    repo_factory: RepoFactory, tmp_path: Path
) -> None:
    pwned = tmp_path / "pwned-filter"
    work = _tune_checkout(tmp_path, repo_factory, {".gitattributes": "*.yaml filter=evil\n"})
    evil = _script(tmp_path / "filter", f'touch "{pwned}"\ncat\n')
    git_out(work, "config", "filter.evil.clean", str(evil))
    git_out(work, "config", "filter.evil.smudge", str(evil))
    git_out(work, "config", "filter.evil.required", "true")
    claim = work / "claims" / "messagewall-prod.yaml"
    os.utime(claim, (time.time() - 3600, time.time() - 3600))  # stat-dirty: a refresh would clean it
    pwned.unlink(missing_ok=True)
    _assert_tuned(work, tmp_path, pwned)
    assert claim.read_text() == git_out(work, "show", "HEAD:claims/messagewall-prod.yaml") + "\n"


def test_a_global_gitconfig_fsmonitor_never_runs_either(repo_factory: RepoFactory, tmp_path: Path) -> None:
    """What the path-escape exploit planted: a config file outside the repo naming a command."""
    pwned = tmp_path / "pwned-global"
    work = _tune_checkout(tmp_path, repo_factory)
    hook = _script(tmp_path / "fsmonitor", f'touch "{pwned}"\nexit 1\n')
    config = tmp_path / "planted.gitconfig"
    config.write_text(Path(os.environ["GIT_CONFIG_GLOBAL"]).read_text() + f"[core]\n\tfsmonitor = {hook}\n")
    metrics = str(example_metrics(tmp_path / "metrics"))
    r = run_cli(
        tmp_path, "autotune", "--repo", str(work), "--metrics", metrics, "--now", "2026-11-08T00:00:00Z",
        "--output", "json", env={"GIT_CONFIG_GLOBAL": str(config)},
    )  # fmt: skip
    assert r.code == 0, r.stdout + r.stderr
    assert not pwned.exists()
    assert int(git_out(work, "rev-list", "--count", "HEAD")) == 2


# --- the webhook ------------------------------------------------------------------------------


def test_the_webhook_never_follows_a_redirect() -> None:
    with canary_server() as target, canary_server(redirect_to=f"{target_url(target)}/metadata") as hook:
        why = post_event(f"{hook.url}/notify", {"event": "drift"})
    assert why is not None and "HTTP 302" in why and "never follow" in why
    assert len(hook.hits) == 1
    assert target.hits == []


def target_url(c: object) -> str:
    return str(getattr(c, "url"))  # noqa: B009


def test_dev_claim_constant_is_plain() -> None:
    assert "messagewall-dev" in DEV_CLAIM
