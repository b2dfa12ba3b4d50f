"""The ``mlworker`` command.

One sub-command per job of the tool; each is added to the parser by a small
``add_<name>(subparsers)`` function listed in ``_SUBCOMMANDS`` and runs
through the ``handler`` it sets, which returns the exit code. Importing this
module loads neither numpy nor scikit-learn: a sub-command imports what it
needs when it runs, so ``mlworker run`` can configure threads first.

- ``mlworker run [--burst] [settings]``: claim and run jobs until stopped
  (``worker.commands``).
- ``mlworker check [settings]``: validate the configuration, log in, list
  the algorithms.
- ``mlworker demo [--keep] [--processes N]``: the reference server with demo data
  and workers until every demo job is done, then a table of the results
  (``worker.demo``; what ``make demo`` runs).
- ``mlworker algorithms [--json]``: the algorithms jobs may name (built-ins and
  plugins), with their task, description, params with defaults and source;
  plugins that failed to load are reported on stderr.

Every exit status is listed once, in ``EXIT_STATUSES``, which ``--help`` prints.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from worker import commands

__all__ = ["EXIT_STATUSES", "build_parser", "main"]

Subparsers = Any  # argparse's _SubParsersAction is private; its type is not worth importing

EX_CLOSED_PIPE = 141  # as a shell reports a process that SIGPIPE ended
EXIT_STATUSES = (
    (0, "done: check passed, run stopped on request or (--burst) ran out of jobs"),
    (1, "demo: a job failed or the demo could not run; any command: an unexpected error"),
    (2, "wrong usage: an unknown command or flag"),
    (69, "check: the server cannot be reached (EX_UNAVAILABLE)"),
    (78, "the configuration is invalid, or the server refused the login (EX_CONFIG):\n"
     "       systemd does not restart the worker"),
    (130, "demo: interrupted (Ctrl-C or SIGTERM)"),
    (EX_CLOSED_PIPE, "the reader of the output went away (as head -1 does)"),
)  # fmt: skip
EPILOG = "exit status:\n" + "\n".join(f"  {code:<4} {text}" for code, text in EXIT_STATUSES)


class _Version(argparse.Action):
    """argparse's version action, reading the installed version only when asked.

    `importlib.metadata` takes 60 ms to import: every command would pay it,
    `mlworker run` before it launches its job forkserver.
    """

    def __init__(self, option_strings: list[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from importlib.metadata import version

        print(f"{parser.prog} {version('mlworker')}")
        parser.exit()


class _Formatter(argparse.HelpFormatter):
    """Descriptions wrapped as usual; the exit-status table printed as laid out."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text == EPILOG:
            return text
        return super()._fill_text(text, width, indent)


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # the sub-command's usage, not the top level's
        args.subparser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        code: int = args.handler(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # Nobody reads the rest: say nothing, and keep Python's exit-time flush quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EX_CLOSED_PIPE
    return code


def build_parser() -> argparse.ArgumentParser:
    """The parser with every sub-command; each prints the exit statuses in its --help."""
    parser = argparse.ArgumentParser(
        prog="mlworker",
        description="Run students' machine-learning jobs for a job server.",
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action=_Version, help="show the version and exit")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(subparsers)
    for subparser in subparsers.choices.values():
        subparser.set_defaults(subparser=subparser)
        subparser.epilog = EPILOG
        subparser.formatter_class = _Formatter
    return parser


def _add_algorithms(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "algorithms",
        help="list the algorithms a job may name",
        description="List the algorithms a job may name: built-ins and installed plugins.",
    )
    parser.add_argument(
        "--json", action="store_true", help="print a JSON list instead of readable text"
    )
    parser.set_defaults(handler=_algorithms)


def _add_demo(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the reference server with demo data and workers until every demo job is done",
        description="Start the reference server with demo data on a free loopback port, run "
        "worker processes until every demo job is done, print the results, clean up.",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the server running afterwards, to browse results and pictures",
    )
    parser.add_argument(
        "--processes", type=_positive, default=2, metavar="N", help="worker processes (2)"
    )
    parser.set_defaults(handler=_demo)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _demo(args: argparse.Namespace) -> int:
    # Imported here: the demo's HTTP client and server helpers would delay every other
    # command, `mlworker run`'s launch of the job forkserver first.
    from worker.demo import demo

    return demo(args)


def _algorithms(args: argparse.Namespace) -> int:
    """Print the registry; report skipped plugins on stderr (listing still succeeds)."""
    # Imported here, not at the top: numpy must not load before `mlworker run` has
    # set the BLAS/OpenMP thread variables (see worker.commands), nor structlog
    # before it has launched its job forkserver.
    from algorithms.catalog import default_registry
    from worker.logs import configure_logging

    # The skipped plugins are printed below; the registry's log warnings would repeat them.
    configure_logging(level=logging.ERROR)
    registry = default_registry()
    described = [algorithm.describe() for algorithm in registry]
    if args.json:
        print(json.dumps(described, indent=2, allow_nan=False))
    else:
        for entry in described:
            print(_as_text(entry))
    for report in registry.reports:
        print(f"mlworker: {report}", file=sys.stderr)
    return 0


def _as_text(entry: dict[str, Any]) -> str:
    """One algorithm as readable lines; defaults spelled as JSON, as a job writes them."""
    params = ", ".join(f"{k}={json.dumps(v)}" for k, v in entry["params"].items())
    return (
        f"{entry['name']} ({entry['task']}, {entry['source']})\n"
        f"  {entry['description']}\n"
        f"  params: {params or '(none)'}\n"
    )


_SUBCOMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    commands.add_run,
    commands.add_check,
    _add_algorithms,
    _add_demo,
)
