"""The thin shell: parse options, call a pattern, render, return an exit code.

One error type is caught here: a user's mistake prints one line and exits 1
or 2, never a traceback (``--debug`` shows one).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Annotated

import typer
from typer.exceptions import TyperException

from feedbackctl.commands.options import switch
from feedbackctl.errors import EXIT_RUNTIME, EXIT_USAGE, FeedbackError
from feedbackctl.render import terminal_safe

app = typer.Typer(
    name="feedbackctl",
    help="Runtime signals improve configuration; humans keep the authority.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module registers its commands; the list is the CLI's table of contents.
COMMAND_MODULES = (
    "analyze",
    "autotune",
    "propose",
    "drift",
    "history",
    "audit",
    "simulate",
    "observe",
    "reset",
    "demo",
    "dashboard",
)

_debug = {"on": False}


@app.callback()
def _root(
    debug: Annotated[bool, switch("debug", "Show tracebacks for errors.")] = False,
) -> None:
    _debug["on"] = debug or bool(os.environ.get("FEEDBACKCTL_DEBUG"))


for _name in COMMAND_MODULES:
    if importlib.util.find_spec(f"feedbackctl.commands.{_name}") is not None:
        importlib.import_module(f"feedbackctl.commands.{_name}").register(app)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (tests call this directly)."""
    try:
        result = app(args=argv, standalone_mode=False, prog_name="feedbackctl")
    except typer.Exit as e:
        return int(e.exit_code)
    except typer.Abort:
        print("feedbackctl: aborted", file=sys.stderr)
        return EXIT_RUNTIME
    except TyperException as e:  # bad options: typer's usage errors (exit 2)
        show = getattr(e, "show", None)
        if callable(show):
            show()
        else:
            print(f"feedbackctl: {e.format_message()}", file=sys.stderr)
        return int(getattr(e, "exit_code", EXIT_USAGE) or EXIT_USAGE)
    except FeedbackError as e:
        if _debug["on"]:
            raise
        print(f"feedbackctl: {terminal_safe(e, markup=False, newlines=True)}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug, not a user's mistake: say so, briefly
        if _debug["on"]:
            raise
        print(
            f"feedbackctl: internal error: {type(e).__name__}: "
            f"{terminal_safe(e, markup=False, newlines=True)} (rerun with --debug)",
            file=sys.stderr,
        )
        return EXIT_RUNTIME
    return result if isinstance(result, int) else 0


def main() -> None:
    sys.exit(run())
