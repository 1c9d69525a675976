"""commands/options.py's @command: the shared options are declared once and reach the body intact."""

from __future__ import annotations

import re
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from feedbackctl.commands.options import (
    Claim,
    Common,
    Detailed,
    DryRun,
    Field,
    Metrics,
    Now,
    Output,
    OutputOpt,
    Push,
    Reason,
    Ref,
    RemoteOpt,
    Repo,
    ShardOpt,
    command,
)

EVERY = "claim field repo ref metrics now output reason dry_run push remote detailed_exitcode shard"
# The probe's own --depth between the shared arguments and the shared options.
BETWEEN = "claim field depth repo ref metrics now reason output dry_run push remote detailed_exitcode shard"
Depth = Annotated[int, typer.Option("--depth", help="A probe's own option.")]
PushRemote = Annotated[str, typer.Option("--remote", help="Remote for --push.")]


def _app(fn: object) -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command("probe")(fn)  # type: ignore[arg-type]
    app.command("other")(lambda: None)  # two commands, so "probe" is a subcommand as in the CLI
    return app


def _run(app: typer.Typer, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "100", "NO_COLOR": "1"})
    return result.exit_code, result.output


def test_every_shared_option_reaches_the_body_as_given() -> None:
    seen: list[tuple[Common, int]] = []

    @command(EVERY + " depth")
    def probe(c: Common, depth: Depth = 1) -> int:
        seen.append((c, depth))
        return 0

    code, out = _run(
        _app(probe), "probe", "my-claim", "spec.lambdaMemory", "--repo", "/r", "--ref", "main",
        "--metrics", "m", "--now", "2026-01-02T03:04:05Z", "--output", "json", "--reason", "why",
        "--dry-run", "--push", "--remote", "up", "--detailed-exitcode", "--shard", "1/4", "--depth", "7",
    )  # fmt: skip
    assert code == 0, out
    assert seen == [
        (
            Common(
                claim="my-claim", field="spec.lambdaMemory", repo="/r", ref="main", metrics="m",
                now="2026-01-02T03:04:05Z", output=Output.json, reason="why", dry_run=True, push=True,
                remote="up", detailed_exitcode=True, shard="1/4",
            ),
            7,
        )
    ]  # fmt: skip


def test_options_a_command_does_not_offer_keep_their_defaults() -> None:
    seen: list[Common] = []

    @command("repo now")
    def probe(c: Common) -> int:
        seen.append(c)
        return 0

    assert _run(_app(probe), "probe", "--now", "2026-01-02T03:04:05Z")[0] == 0
    assert seen == [Common(now="2026-01-02T03:04:05Z")]
    code, out = _run(_app(probe), "probe", "--dry-run")
    assert code == 2 and "No such option: --dry-run" in out


def test_a_body_that_declares_a_shared_name_gets_its_own_value() -> None:
    seen: list[tuple[Common, str]] = []

    @command("repo remote")
    def probe(c: Common, remote: PushRemote = "origin") -> int:
        seen.append((c, remote))
        return 0

    assert _run(_app(probe), "probe", "--remote", "up")[0] == 0
    assert seen == [(Common(), "up")]


def test_help_is_what_a_hand_written_signature_shows() -> None:
    @command(BETWEEN)
    def decorated(c: Common, depth: Depth = 1) -> int:
        """Probe: one line of help."""
        return 0

    def by_hand(
        claim: Claim,
        field: Field,
        depth: Depth = 1,
        repo: Repo = ".",
        ref: Ref = None,
        metrics: Metrics = None,
        now: Now = None,
        reason: Reason = "",
        output: OutputOpt = Output.table,
        dry_run: DryRun = False,
        push: Push = False,
        remote: RemoteOpt = None,
        detailed_exitcode: Detailed = False,
        shard: ShardOpt = None,
    ) -> int:
        """Probe: one line of help."""
        return 0

    shown = _run(_app(decorated), "probe", "--help")
    assert shown == _run(_app(by_hand), "probe", "--help")
    assert shown[0] == 0
    flags = re.findall(r"--[a-z-]+", shown[1])
    assert flags[:3] == ["--depth", "--repo", "--ref"]


@pytest.mark.parametrize(
    ("argv", "order"),
    [
        (["proposals", "list"], ["--repo", "--ref", "--now", "--output", "--remote"]),
        (["audit", "verify"], ["--repo", "--ref", "--since", "--now", "--output", "--detailed-exitcode"]),
        (["reset"], ["--claim", "--field", "--repo", "--ref", "--now", "--output", "--dry-run"]),
    ],
)
def test_the_cli_shows_its_options_in_layout_order(argv: list[str], order: list[str]) -> None:
    from feedbackctl.cli import app

    code, out = _run(app, *argv, "--help")
    assert code == 0, out
    assert [f for f in re.findall(r"^\W*(--[a-z-]+)", out, re.M) if f != "--help"] == order


@pytest.mark.parametrize(
    ("layout", "why"),
    [
        ("repo colour", r"unknown \['colour'\]"),  # not shared, not the body's
        ("repo", r"leaves out \['depth'\]"),  # the body's own option has no place
        ("repo depth repo", "repeats"),
    ],
)
def test_a_layout_that_does_not_fit_the_body_fails_at_import(layout: str, why: str) -> None:
    def body(c: Common, depth: Depth = 1) -> int:
        return 0

    with pytest.raises(TypeError, match=why):
        command(layout)(body)
