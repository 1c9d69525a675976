"""``feedbackctl simulate``: backtest a policy over metric history, with pictures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from feedbackctl.charts import terminal_chart
from feedbackctl.charts_svg import html_report
from feedbackctl.commands.options import Output, OutputOpt, Ref, switch
from feedbackctl.errors import EXIT_OK, EXIT_RUNTIME, UsageError
from feedbackctl.patterns.simulate import Options, Result, result_json, run, setup_from
from feedbackctl.render import print_cost_line, print_json, stderr, stdout

_STYLE = {"applied": "green", "blocked": "red", "proposed": "yellow"}


def _value(v: Any) -> str:
    return "-" if v is None else str(v)


def print_result(result: Result, doc: dict[str, Any], charts: bool) -> None:
    out = stdout()
    s = result.setup
    mode = "plant model" if s.plant else "recorded metrics"
    guards = "guards on" if s.guards else "[bold red]guards OFF[/] (simulation only)"
    title = f" — {s.title}" if s.title else ""
    out.print(f"[bold]feedbackctl simulate{title}[/]")
    out.print(f"{doc['from']} → {doc['to']} every {s.step_minutes}m ({result.steps} steps); {mode}, {guards}")
    timeline = Table(title="timeline", title_justify="left")
    for col in ("at", "claim", "field", "event", "from → to", "rule", "blocked by / why"):
        timeline.add_column(col, overflow="fold")
    for e in result.events:
        when = f"{e.at:%m-%d %H:%M}"
        if e.until and e.until != e.at:
            when += f" … {e.until:%m-%d %H:%M} ({e.steps} steps)"
        why = e.reason
        if e.shaped_by:
            why = f"shaped by {', '.join(e.shaped_by)}; {why}"
        style = _STYLE.get(e.event, "")
        change = f"{_value(e.old)} → {_value(e.new)}"
        timeline.add_row(when, e.claim, e.field, f"[{style}]{e.event}[/]", change, e.rule or "-", why)
    if result.events:
        out.print(timeline)
    else:
        out.print("no rule fired: nothing applied or blocked")
    summary = Table(title="final values and estimates", title_justify="left")
    for col in ("claim", "initial", "final", "applied", "blocked", "cost USD (untuned)", "p99 mean/max ms",
                "at timeout"):  # fmt: skip
        summary.add_column(col, overflow="fold")
    for c in doc["claims"]:
        est = c.get("estimates") or {}
        summary.add_row(
            c["claim"],
            ", ".join(f"{k.removeprefix('spec.')}={v}" for k, v in c["initial"].items()),
            ", ".join(f"{k.removeprefix('spec.')}={v}" for k, v in c["final"].items()),
            str(c["applied"]),
            str(c["blocked"]),
            f"{est['costUsd']:.2f} ({est['baselineCostUsd']:.2f})" if est else "-",
            f"{est['p99MeanMs']:.0f} / {est['p99MaxMs']:.0f}" if est else "-",
            f"{est['timeoutMinutes']:.0f} min" if est else "-",
        )
    out.print(summary)
    safety = doc["safety"]
    nb, nc = len(safety["boundViolations"]), len(safety["cooldownViolations"])
    reversals = ", ".join(f"{k} {v}" for k, v in safety["reversals"].items()) or "none"
    blocked = ", ".join(f"{k} {v}" for k, v in safety["blockedByRule"].items()) or "none"
    colour = "green" if nb == nc == 0 else "red"
    out.print(
        f"[{colour}]bound violations {nb}, cooldown violations {nc}[/]; reversals: {reversals}; "
        f"frozen: {', '.join(safety['frozen']) or 'none'}; blocked steps by rule: {blocked}"
    )
    print_cost_line(doc, out)
    if charts:
        width = out.width
        for track in result.tracks:
            out.print()
            for line in terminal_chart(track, width=width):
                out.print(line, overflow="crop", no_wrap=True)


# simulate reads and never writes, so its --metrics, --claim and --repo are its own, not Common's.
SimMetrics = Annotated[str | None, typer.Option("--metrics", help="Metric history: a fixtures directory.")]
ClaimFile = Annotated[str | None, typer.Option("--claim", help="A claim YAML file (one or more claims).")]
ReadRepo = Annotated[
    str | None, typer.Option("--repo", help="Read claims and policy from this repo (never written).")
]
Scenario = Annotated[
    str | None,
    typer.Option("--scenario", help="A scenario directory (scenario.yaml names claims, metrics, policies)."),
]
Policy = Annotated[str | None, typer.Option("--policies", help="Policy overrides directory (with --claim).")]
Start = Annotated[str | None, typer.Option("--from", help="Start, ISO-8601 (default: first point).")]
End = Annotated[str | None, typer.Option("--to", help="End, ISO-8601 (default: last point).")]
Step = Annotated[str | None, typer.Option("--step", help="Simulated time step (default 5m).")]
Plant = Annotated[
    bool | None,
    typer.Option("--plant/--no-plant", help="Feed changes back into the metrics (default: the scenario's)."),
]
NoGuards = Annotated[bool, switch("no-guards", "Apply every recommendation: shows the runaway.")]
Html = Annotated[str | None, typer.Option("--html", help="Write a self-contained HTML report here.")]
Chart = Annotated[bool, switch("chart", "Terminal charts (table output).")]


def simulate_command(
    metrics: SimMetrics = None,
    claim: ClaimFile = None,
    repo: ReadRepo = None,
    ref: Ref = None,
    scenario: Scenario = None,
    policies: Policy = None,
    start: Start = None,
    end: End = None,
    step: Step = None,
    plant: Plant = None,
    no_guards: NoGuards = False,
    output: OutputOpt = Output.table,
    html: Html = None,
    chart: Chart = True,
) -> int:
    """Backtest a policy over metric history in memory, through the same core and guards as autotune."""
    opts = Options(scenario, metrics, claim, repo, ref, policies, start, end, step, plant, not no_guards)
    result = run(setup_from(opts))
    doc = result_json(result)
    doc["description"] = result.setup.description
    if html is not None:
        target = Path(html)
        if target.is_dir():
            raise UsageError(f"--html {html} is a directory; pass a file name such as report.html")
        try:
            target.write_text(html_report(doc, result.tracks), encoding="utf-8")
        except OSError as e:
            raise UsageError(f"--html {html}: cannot write ({e.strerror or e})") from None
    if output == Output.json:
        print_json(doc)
    else:
        print_result(result, doc, chart)
    err = stderr()
    if html is not None:
        err.print(f"wrote {html}", markup=False)
    for p in result.problems:
        err.print(f"error: {p.message}", markup=False)
    return EXIT_RUNTIME if result.problems else EXIT_OK


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_command)
