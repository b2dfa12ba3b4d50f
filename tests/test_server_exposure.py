"""Finding 12: the server's files are private, its errors name no path, and behind an HTTPS
proxy its cookies are ``Secure`` with HSTS.

Once, ``db.sqlite3`` (sessions, password hashes, hidden labels) was world-readable under umask
022, 400 answers quoted absolute paths of the server's files, and no setting made the
cookies ``Secure``.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from conftest import RunningServer
from server_helpers import png_bytes, result_fields, running_job

from worker.api import API

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def loose_umask() -> Iterator[None]:
    """Start this module's servers under umask 022, the common default."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture(scope="module")
def server(start_server: Callable[..., RunningServer], loose_umask: None) -> RunningServer:
    """A demo server started under umask 022."""
    return start_server(demo=True)


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> API:
    """The worker account."""
    return server.api("backend", "foobar")


def mode(path: Path) -> int:
    """The permission bits of ``path``."""
    return stat.S_IMODE(path.stat().st_mode)


def private_files(data_dir: Path) -> dict[str, int]:
    """Every server file in the data directory (not the tests' log) and its mode."""
    found = {".": mode(data_dir)}
    for path in sorted(data_dir.rglob("*")):
        if path.name != "server.log":
            found[str(path.relative_to(data_dir))] = mode(path)
    return found


def test_data_directory_is_private(server: RunningServer, admin: API, tmp_path: Path) -> None:
    """Database, its WAL files, the secret key, pictures and their folders: 0600 and 0700."""
    iris = next(key for key, info in admin.get_datasets().items() if info["name"] == "iris")
    job_id = running_job(admin, admin, iris)
    picture = tmp_path / "picture.png"
    picture.write_bytes(png_bytes(5))
    admin.update_job_details(job_id, **result_fields(admin, iris), pictures=[picture])
    found = private_files(server.data_dir)
    for name in ("db.sqlite3", "db.sqlite3-wal", "secret_key", f"media/jobs/{job_id}/1.png"):
        assert name in found
    for name, bits in found.items():
        is_dir = name == "." or (server.data_dir / name).is_dir()
        assert bits == (0o700 if is_dir else 0o600), f"{name} is {bits:o}"


def test_an_older_world_readable_directory_is_made_private(server: RunningServer) -> None:
    """A data directory and files left readable by an older version are tightened on start."""
    server.stop()
    server.data_dir.chmod(0o755)
    for path in server.data_dir.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    server.start()
    assert all(bits & 0o077 == 0 for bits in private_files(server.data_dir).values())


@pytest.mark.parametrize(
    "path",
    [
        "static/..%2f..%2f..%2fetc/passwd",
        "static/admin/..%2f..%2f..%2f..%2fsecret_key",
        "static/%2e%2e/%2e%2e/x",
        "media/..%2fsecret_key",
        "media/jobs/1/..%2f..%2f..%2fdb.sqlite3",
        "datasets/1/points/%00",
    ],
)
def test_errors_name_no_absolute_path(server: RunningServer, admin: API, path: str) -> None:
    """Paths leaving their folder are refused (4xx) without a file path in the answer."""
    for session in (requests.Session(), admin._transport.session):
        answer = session.get(server.url + path, timeout=30)
        assert 400 <= answer.status_code < 500, answer.text[:300]
        assert answer.json()["error"]
        for secret in (str(server.data_dir), sys.prefix, sys.base_prefix, "site-packages"):
            assert secret not in answer.text


def test_https_proxy_setting_secures_cookies(
    start_server: Callable[..., RunningServer], server: RunningServer
) -> None:
    """Behind an HTTPS proxy: Secure cookies and HSTS; without the setting, plain HTTP works."""
    proxied = start_server(demo=True, env={"MLWORKER_SERVER_BEHIND_HTTPS_PROXY": "1"})
    origin = proxied.url.rstrip("/").replace("http://", "https://")
    https = {"X-Forwarded-Proto": "https", "Referer": origin + "/login/"}
    page = requests.get(proxied.url + "login/", headers=https, timeout=30)
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "secure" in page.headers["Set-Cookie"].lower()
    token = page.cookies["csrftoken"]
    # Our client speaks plain HTTP to the app, as the proxy does: it sends the Secure cookie.
    login = requests.post(
        proxied.url + "login/",
        data={"username": "student", "password": "student"},
        headers={**https, "X-CSRFToken": token, "Cookie": f"csrftoken={token}"},
        timeout=30,
    )
    assert login.json() == {"success": True}
    assert "sessionid" in login.cookies
    assert all(cookie.secure for cookie in login.cookies)
    plain = requests.get(proxied.url + "login/", timeout=30)
    assert "Strict-Transport-Security" not in plain.headers
    default = requests.get(server.url + "login/", headers=https, timeout=30)
    assert "secure" not in default.headers["Set-Cookie"].lower()
    assert "Strict-Transport-Security" not in default.headers
