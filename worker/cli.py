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
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from worker import commands, demo
from worker.logs import configure_logging

__all__ = ["build_parser", "main"]

Subparsers = Any  # argparse's _SubParsersAction is private; its type is not worth importing


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


def build_parser() -> argparse.ArgumentParser:
    """The parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="mlworker", description="Run students' machine-learning jobs for a job server."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(subparsers)
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


def _algorithms(args: argparse.Namespace) -> int:
    """Print the registry; report skipped plugins on stderr (listing still succeeds)."""
    # Imported here, not at the top: numpy must not load before `mlworker run` has
    # set the BLAS/OpenMP thread variables (see worker.commands).
    from algorithms.catalog import default_registry

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
    demo.add_demo,
)
