"""The reference server on PostgreSQL (``DATABASE_URL``), driven through worker.api.

A throw-away cluster (``postgres_helpers``) holds the database; the server is the real
``mlworker-server run --demo`` with leases of no grace. The claim and lease checks are the
ones the SQLite tests run (``lease_checks``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import RunningServer, server_command, server_env
from lease_checks import check_lease_expiry, check_never_handed_out_twice, check_one_job_one_winner
from postgres_helpers import PostgresCluster, postgres_cluster
from server_helpers import png_bytes, result_fields, running_job

from worker.api import API
from worker.errors import ConflictError, InvalidInputError

pytestmark = pytest.mark.slow  # end to end: a PostgreSQL cluster and a server process per module

DATABASE = "mlworker"
MIGRATIONS = Path(__file__).parent.parent / "server" / "migrations"


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster of this module's own, removed at the end."""
    with postgres_cluster() as running:
        yield running


@pytest.fixture(scope="module")
def demo_server(
    start_server: Callable[..., RunningServer], cluster: PostgresCluster
) -> RunningServer:
    """The demo server on a new PostgreSQL database; a 1 s job's lease ends after 1 s.

    It replaces conftest's SQLite demo server, so conftest's ``admin``,
    ``student`` and ``iris`` fixtures log in here.
    """
    url = cluster.create_database(DATABASE)
    return start_server(demo=True, lease_grace=0, env={"DATABASE_URL": url})


@pytest.fixture(scope="module")
def server(demo_server: RunningServer) -> RunningServer:
    """This module's server under its shorter name."""
    return demo_server


def test_migrations_ran_and_demo_data_is_in_postgres(
    server: RunningServer, cluster: PostgresCluster, admin: API
) -> None:
    """Every migration is recorded in PostgreSQL, which holds the demo; no SQLite file exists."""
    assert server.shell("from django.db import connection; print(connection.vendor)") == (
        "postgresql"
    )
    assert not (server.data_dir / "db.sqlite3").exists()
    applied = cluster.query(DATABASE, "SELECT name FROM django_migrations WHERE app = 'server'")
    expected = {path.stem for path in MIGRATIONS.glob("[0-9]*.py")}
    assert {name for (name,) in applied} == expected
    tasks = {info["name"]: info["task"] for info in admin.get_datasets().values()}
    assert {"iris", "moons", "diabetes", "blobs"} <= set(tasks)
    assert set(tasks.values()) == {"classification", "regression", "clustering"}
    [(jobs,)] = cluster.query(DATABASE, "SELECT count(*) FROM server_job")
    assert jobs >= 10
    assert any(info["open"] for info in admin.get_rounds().values())


def test_points_keep_the_feature_order(admin: API, student: API, iris: int) -> None:
    """jsonb reorders object keys; the wire points still list the features in their order."""
    info = admin.get_datasets()[iris]
    points = student.get_points(iris)
    assert len(points) == sum(info["points"].values())
    assert list(points[0]) == ["id", *info["features"], info["target"], "set"]
    assert all(point[info["target"]] is None for point in points if point["set"] == "test")


def test_one_job_sixteen_claims_exactly_one_wins(
    server: RunningServer, admin: API, iris: int
) -> None:
    """16 simultaneous requests for a single pending job: one gets it, 15 get None."""
    check_one_job_one_winner(server, admin, iris)


def test_many_jobs_many_claimers_never_hand_out_twice(
    server: RunningServer, admin: API, iris: int
) -> None:
    """16 claimers racing over 40 jobs: every job is handed out exactly once."""
    check_never_handed_out_twice(server, admin, iris)


def test_expired_lease_requeues_then_fails_after_three_attempts(admin: API, iris: int) -> None:
    """A 1 s job never updated comes back pending twice, then fails with "worker lost"."""
    check_lease_expiry(admin, iris)


def test_update_then_duplicate_then_conflict(admin: API, student: API, iris: int) -> None:
    """An update is stored through jsonb intact; the same again is a duplicate, another a 409."""
    job_id = running_job(admin, student, iris, params={"n_neighbors": 3, "weights": "distance"})
    fields = result_fields(admin, iris, score=0.8)
    assert admin.update_job_details(job_id, **fields) == {"success": True}
    assert admin.update_job_details(job_id, **fields) == {"success": True, "duplicate": True}
    with pytest.raises(ConflictError):
        admin.update_job_details(job_id, **{**fields, "score_test": 0.5})
    result = student.get_job_result(job_id)
    assert (result["status"], result["score_test"], result["message"]) == ("done", 0.8, "fine")
    assert result["extra_scores_test"] == fields["extra_scores_test"]
    assert result["params"] == {"n_neighbors": 3, "weights": "distance"}


def test_picture_upload(
    server: RunningServer, admin: API, student: API, iris: int, tmp_path: Path
) -> None:
    """A picture uploads once (the same bytes again are a duplicate) and is served back."""
    job_id = running_job(admin, student, iris)
    picture = tmp_path / "regions.png"
    picture.write_bytes(png_bytes(7))
    assert admin.add_job_picture(job_id, picture) == {"success": True}
    assert admin.add_job_picture(job_id, picture) == {"success": True, "duplicate": True}
    admin.update_job_details(job_id, **result_fields(admin, iris), pictures=[picture])
    [url] = student.get_job_result(job_id)["pictures"]
    assert url == f"/media/jobs/{job_id}/1.png"
    assert student._transport.session.get(server.url + url.lstrip("/")).content == png_bytes(7)


@pytest.mark.parametrize(
    "params", ['{"metric": "a\\u0000b"}', '{"\\u0000": 1}', '{"metric": "\\ud800"}']
)
def test_params_strings_jsonb_cannot_store_are_refused(admin: API, iris: int, params: str) -> None:
    """A NUL or an unpaired surrogate in the params' JSON is a 400 naming params, not a 500."""
    with pytest.raises(InvalidInputError) as refused:
        admin.load("jobs/submit/", algorithm="knn", dataset=iris, params=params)
    assert refused.value.status == 400
    assert "must not contain" in refused.value.fields["params"]


def test_labels_with_nul_are_refused(admin: API, student: API, iris: int) -> None:
    """A NUL in a result's labels is a 400 naming the field; the job stays running."""
    job_id = running_job(admin, student, iris)
    fields = result_fields(admin, iris)
    fields["labels_test"] = ["a\x00"] * len(fields["labels_test"])
    with pytest.raises(InvalidInputError) as refused:
        admin.update_job_details(job_id, **fields)
    assert "must not contain a NUL" in refused.value.fields["labels_test"]
    assert admin.get_job_result(job_id)["status"] == "running"
    admin.update_job_details(job_id, None, None, None, None, None, success=False)


def test_csv_with_nul_is_refused_with_its_line(server: RunningServer, tmp_path: Path) -> None:
    """A NUL in a CSV cell is refused naming the line, and nothing is imported."""
    csv = tmp_path / "nul.csv"
    csv.write_text("x,label,set\n1,a,training\n2,b\x00,test\n3,c,validation\n")
    result = server.cli(
        "import-dataset", str(csv), "--name", "nul", "--task", "classification", check=False
    )
    assert result.returncode == 1
    assert "line 3: contains a NUL character" in result.stderr
    assert "Traceback" not in result.stderr
    count = "from server.models import Dataset; print(Dataset.objects.filter(name='nul').count())"
    assert server.shell(count) == "0"


def manage(url: str, data_dir: Path, code: str) -> subprocess.CompletedProcess[str]:
    """``mlworker-server manage shell -c CODE`` with ``DATABASE_URL=url``."""
    return subprocess.run(
        [
            *server_command(),
            "manage",
            "--data-dir",
            str(data_dir),
            "shell",
            "--no-imports",
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        env=server_env({"DATABASE_URL": url}),
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("mongodb://u:s3cret@127.0.0.1/db", "DATABASE_URL has the scheme 'mongodb'"),
        ("postgres://u:s3cret@%2Fnonexistent-mlworker-socket/db", "cannot set up the database"),
    ],
)
def test_unusable_database_url_is_one_clear_line(url: str, complaint: str, tmp_path: Path) -> None:
    """A bad scheme or an unreachable server: exit 1, one sentence, no traceback, no password."""
    result = manage(url, tmp_path, "print('reached')")
    assert result.returncode == 1
    assert complaint in result.stderr
    assert "Traceback" not in result.stderr
    assert "s3cret" not in result.stderr
    assert "reached" not in result.stdout


def test_sqlite_database_url_keeps_wal_and_immediate(tmp_path: Path) -> None:
    """A sqlite:// DATABASE_URL gets the same WAL journal and IMMEDIATE transactions."""
    code = (
        "from django.db import connection; cursor = connection.cursor(); "
        "cursor.execute('PRAGMA journal_mode'); "
        "print(cursor.fetchone()[0], connection.settings_dict['OPTIONS']['transaction_mode'])"
    )
    result = manage(f"sqlite:///{tmp_path}/elsewhere.sqlite3", tmp_path, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["wal", "IMMEDIATE"]
    assert (tmp_path / "elsewhere.sqlite3").exists()
