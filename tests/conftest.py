"""Shared fixtures: a pinned git environment and real temporary repos."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

# `pytest` (unlike `python -m pytest`) does not put the project root on
# sys.path; tests import `tests.gitutil` and the source-tree `feedbackctl`.
ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.gitutil import (  # noqa: E402
    DEFAULT_DATE,
    RepoFactory,
    configure_git_env,
    make_repo,
    set_env,
)


@pytest.fixture(scope="session", autouse=True)
def git_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Pinned identity, HOME with a minimal gitconfig, no system config; yields HOME."""
    home = tmp_path_factory.mktemp("home")
    previous = configure_git_env(home)
    yield home
    set_env(previous)


@pytest.fixture
def repo_factory(tmp_path: Path) -> RepoFactory:
    """``repo_factory(files, bare_origin=True, date=...) -> (work, origin)``; call it more than once."""
    count = 0

    def factory(
        files: Mapping[str, str], *, bare_origin: bool = True, date: str = DEFAULT_DATE
    ) -> tuple[Path, Path]:
        nonlocal count
        count += 1
        name = "work" if count == 1 else f"work{count}"
        return make_repo(tmp_path, files, bare_origin=bare_origin, date=date, name=name)

    return factory


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """One moto server (real HTTP on 127.0.0.1) for the whole session."""
    from tests.motoserver import moto_server

    with moto_server() as url:
        yield url


@pytest.fixture()
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A clean moto server and the standard AWS environment pointing at it."""
    from tests.motoserver import AWS_ENV, reset

    reset(moto_url)
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    return moto_url
