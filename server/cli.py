"""``mlworker-server``: run the reference job server, add users, import datasets.

Every subcommand takes ``--data-dir DIR`` (default ``$MLWORKER_SERVER_DATA_DIR`` or
``./mlworker-data``) and migrates the database first, so any of them works on a new
directory. Exit status: 0 done, 1 the command failed (message on stderr), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import os
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

from server.constants import TASKS

PROG = "mlworker-server"
DESCRIPTION = "Run the reference job server, add users, import datasets."
EPILOG = "exit status: 0 done, 1 the command failed (the reason on stderr), 2 bad arguments"


class CommandError(Exception):
    """A command that cannot be done; its sentence goes to stderr, exit status 1."""


def _bind(text: str) -> str:
    host, _, port = text.rpartition(":")
    if text.startswith("unix:") or (host and port.isdigit() and int(port) < 65536):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:8000)")


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _seconds(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds (0 or more)")
    return int(text)


def _split(text: str) -> tuple[float, float, float]:
    problem = f"{text!r} is not three fractions TRAIN,TEST,VALIDATION adding up to 1"
    try:
        parts = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(problem) from None
    if len(parts) != 3 or min(parts) < 0 or abs(sum(parts) - 1) > 1e-6:
        raise argparse.ArgumentTypeError(problem)
    return parts[0], parts[1], parts[2]


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("MLWORKER_SERVER_DATA_DIR") or "mlworker-data"),
        help="database, media and secret key (default: $MLWORKER_SERVER_DATA_DIR or "
        "./mlworker-data)",
    )
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version('mlworker')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = functools.partial(
        commands.add_parser, parents=[common], allow_abbrev=False, epilog=EPILOG
    )

    run = add("run", help="serve the job server")
    run.add_argument("--bind", type=_bind, default="127.0.0.1:8000", help="HOST:PORT")
    run.add_argument("--demo", action="store_true", help="add demo accounts, data and jobs")
    run.add_argument(
        "--lease-grace", type=_seconds, help="seconds past a job's time limit (default 60)"
    )
    run.add_argument("--workers", type=_count, help="server processes (default 2 to 4)")

    adduser = add("adduser", help="add a user, or set an existing user's password and rights")
    adduser.add_argument("name")
    adduser.add_argument("--admin", action="store_true", help="admin rights (worker accounts)")
    adduser.add_argument("--password-file", type=Path, help="read the password from FILE")

    dataset = add("import-dataset", help="import a CSV file as a dataset")
    dataset.add_argument("file", type=Path, metavar="FILE.csv")
    dataset.add_argument("--name", required=True)
    dataset.add_argument("--task", required=True, choices=TASKS)
    dataset.add_argument("--target", help="the label column (default: label)")
    dataset.add_argument("--split", type=_split, default=(0.6, 0.2, 0.2), help="0.6,0.2,0.2")
    dataset.add_argument("--seed", type=int, help="seed of the random split")

    manage = add("manage", help="run a Django management command (operators)")
    manage.add_argument("args", nargs=argparse.REMAINDER, help="e.g. changepassword NAME")
    for subparser in commands.choices.values():
        subparser.set_defaults(subparser=subparser)
    return parser


def _setup(data_dir: Path, lease_grace: int | None = None) -> None:
    """Point Django at ``data_dir``, load it, and bring the database up to date."""
    os.environ["MLWORKER_SERVER_DATA_DIR"] = str(data_dir.resolve())
    if lease_grace is not None:
        os.environ["MLWORKER_SERVER_LEASE_GRACE"] = str(lease_grace)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "server.settings")  # as manage.py does
    import django
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import call_command
    from django.db import DatabaseError

    try:
        django.setup()
        call_command("migrate", interactive=False, verbosity=0)
    except (ImproperlyConfigured, DatabaseError) as error:  # a bad DATABASE_URL, no server
        sentence = " ".join(str(error).split())  # psycopg's messages span lines
        raise CommandError(f"cannot set up the database: {sentence}") from None


def _allow_bound_host(bind: str) -> None:
    """Serve requests addressed to the host we bind to, not only loopback names."""
    host = bind.rpartition(":")[0].strip("[]")
    if not bind.startswith("unix:") and host not in ("", "0.0.0.0", "::"):  # noqa: S104
        extra = os.environ.get("MLWORKER_SERVER_ALLOWED_HOSTS", "")
        os.environ["MLWORKER_SERVER_ALLOWED_HOSTS"] = f"{extra},{host}".strip(",")


def _run(args: argparse.Namespace) -> None:
    _allow_bound_host(args.bind)
    _setup(args.data_dir, args.lease_grace)
    if args.demo:
        from server.demo import seed_demo

        seed_demo()
    from server.serve import default_workers, serve

    serve(args.bind, args.workers or default_workers())


def _password(path: Path | None) -> str:
    if path is not None:
        try:
            password = path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as error:
            raise CommandError(f"cannot read the password file: {error}") from None
    else:
        password = getpass.getpass("Password: ")
        if sys.stdin.isatty() and getpass.getpass("Password (again): ") != password:
            raise CommandError("the passwords differ")
    if not password:
        raise CommandError("the password is empty")
    return password


def _adduser(args: argparse.Namespace) -> None:
    password = _password(args.password_file)
    _setup(args.data_dir)
    from django.contrib.auth.models import User

    user, created = User.objects.get_or_create(username=args.name)
    user.set_password(password)
    user.is_staff = user.is_superuser = args.admin
    user.save()
    role = "admin" if args.admin else "user"
    print(f"{'added' if created else 'updated'} {role} {args.name}")


def _import_dataset(args: argparse.Namespace) -> None:
    _setup(args.data_dir)
    from server.importer import DatasetImportError, import_csv

    try:
        dataset = import_csv(
            args.file,
            name=args.name,
            task=args.task,
            target=args.target,
            split=args.split,
            seed=args.seed,
        )
    except (DatasetImportError, OSError) as error:
        raise CommandError(str(error)) from None
    from server.wire import set_sizes

    sizes = ", ".join(f"{n} {name}" for name, n in set_sizes(dataset).items())
    print(
        f"imported dataset {dataset.pk} {dataset.name!r} ({dataset.task}): "
        f"{sizes} points; version {dataset.version}"
    )


def _manage(args: argparse.Namespace) -> None:
    _setup(args.data_dir)
    from django.core.management import execute_from_command_line

    execute_from_command_line([f"{PROG} manage", *args.args])


COMMANDS = {
    "run": _run,
    "adduser": _adduser,
    "import-dataset": _import_dataset,
    "manage": _manage,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mlworker-server`` console script."""
    args, unknown = _parser().parse_known_args(argv)
    if unknown:  # the subcommand's usage, not the top level's
        args.subparser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        COMMANDS[args.command](args)
    except CommandError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
