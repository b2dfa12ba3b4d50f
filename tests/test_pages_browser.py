"""The pages in a real browser: a student submits through the form, a real worker runs it.

One demo server, one ``mlworker run --burst`` and one headless Chromium serve the whole
module. The student ``student`` submits a job to the demo's open round through the submit
form; a rival submits a weaker one and a failing one through the API; the worker runs
them. Screenshots of every page are saved (see ``pages_browser``) to be looked at.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import RunningServer
from daemon_helpers import WORKER_PASSWORD, WORKER_USER, start_worker, worker_server
from pages_browser import artifacts_dir, screenshot, start_chromium
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait
from server_helpers import dataset_id

from worker.api import API

pytestmark = pytest.mark.slow

STUDENT = ("student", "student")  # the demo's student, a participant of its open round
RIVAL = ("rival", "rival-Pw-1")
WORKER_ID = "pages-test-worker"
PAGE_DEADLINE = 30.0  # seconds for a page to load on a loaded machine


class Site:
    """The module's server, browser, screenshots directory and the two round jobs."""

    def __init__(self, server: RunningServer, driver: Any, shots: Path) -> None:
        self.server = server
        self.driver = driver
        self.shots = shots
        self.mine = 0
        self.rivals = 0
        self.failing = 0

    def open(self, address: str, shot: str | None = None) -> str:
        """Go to ``address`` (relative to the server), screenshot it; the page's text."""
        self.driver.get(self.server.url + address.lstrip("/"))
        if shot:
            screenshot(self.driver, self.shots, shot)
        return str(self.driver.find_element("tag name", "body").text)

    def log_in(self, username: str, password: str) -> None:
        """Log in through the landing page's form, as a person would."""
        self.open("/")
        self.driver.find_element("id", "id_username").send_keys(username)
        self.driver.find_element("id", "id_password").send_keys(password)
        self.driver.find_element("css selector", "form button[type=submit]").click()
        self.wait_for_path("/app/")

    def log_in_by_keyboard(self, username: str, password: str) -> str:
        """Log in with the keyboard alone: type, Tab, type, Enter; the field focused at first."""
        self.open("/")
        first = self.driver.switch_to.active_element
        focused = str(first.get_attribute("id"))
        first.send_keys(username, Keys.TAB)
        self.driver.switch_to.active_element.send_keys(password, Keys.ENTER)
        self.wait_for_path("/app/")
        return focused

    def log_out(self) -> None:
        """The header's log-out button."""
        self.driver.find_element("css selector", "form.logout button").click()
        self.wait_for_path("/")

    def wait_for_path(self, path: str) -> None:
        """Wait until the browser shows a page whose path is ``path`` (a form's answer)."""

        def arrived(driver: Any) -> bool:
            return bool(urlsplit(driver.current_url).path == path)

        WebDriverWait(self.driver, PAGE_DEADLINE).until(arrived, f"never reached {path}")


def _submit_through_the_form(site: Site) -> int:
    site.open("/app/jobs/new/")
    driver = site.driver
    driver.find_element("id", "id_algorithm").send_keys("knn")
    params = driver.find_element("id", "id_params")
    params.clear()
    params.send_keys('{"n_neighbors": 15}')
    Select(driver.find_element("id", "id_dataset")).select_by_visible_text("moons (classification)")
    Select(driver.find_element("id", "id_round")).select_by_index(1)
    screenshot(driver, site.shots, "02-submit-form")
    driver.find_element("css selector", "form.submit button[type=submit]").click()

    def job_page(driver: Any) -> str | None:
        found = re.fullmatch(r"/app/jobs/(\d+)/", urlsplit(driver.current_url).path)
        return found[1] if found else None

    return int(WebDriverWait(driver, PAGE_DEADLINE).until(job_page, "the job was not submitted"))


@pytest.fixture(scope="module")
def site(
    start_server: Callable[..., RunningServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """Both round jobs submitted (the student's through the form) and run by one worker."""
    server = worker_server(start_server)
    server.add_user(*RIVAL)
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    site = Site(server, driver, artifacts_dir(tmp_path_factory))
    try:
        site.log_in(*STUDENT)
        screenshot(driver, site.shots, "01-my-jobs-empty")
        site.mine = _submit_through_the_form(site)
        rival = server.api(*RIVAL)
        round_id = int(next(key for key, info in rival.get_rounds().items() if info["open"]))
        rival.join_round(round_id)
        moons = dataset_id(rival, "moons")
        site.rivals = rival.submit_job("decision_tree", moons, {"max_depth": 1}, round_id=round_id)
        site.failing = rival.submit_job("knn", moons, {"n_neighbors": 0}, round_id=round_id)
        workdir = tmp_path_factory.mktemp("pages-worker")
        with start_worker(workdir, server.url, "--worker-id", WORKER_ID) as worker:
            assert worker.wait() == 0, worker.tail()
        yield site
    finally:
        driver.quit()


def _result(site: Site, job: int) -> dict[str, Any]:
    admin = API(WORKER_USER, WORKER_PASSWORD, site.server.url, retry_for=0)
    return admin.get_job_result(job)


def test_the_job_page_shows_its_pictures_and_scores(site: Site) -> None:
    """After the worker ran it, the student's job page shows loaded pictures and its scores."""
    text = site.open(f"/app/jobs/{site.mine}/", "03-job")
    result = _result(site, site.mine)
    assert result["status"] == "done", result["message"]
    images = site.driver.find_elements("css selector", ".pictures img")
    assert len(images) == len(result["pictures"]) > 0
    for image in images:
        loaded = "return arguments[0].complete && arguments[0].naturalWidth"
        assert site.driver.execute_script(loaded, image) > 0, image.get_attribute("src")
        assert image.get_attribute("alt").startswith("Picture ")
    assert f"{result['score_test']:.3f}" in text
    assert "hidden until the round closes" in text
    assert f"{result['score_validation']:.3f}" not in text


def test_the_leaderboard_ranks_the_round_by_test_score(site: Site) -> None:
    """The open round's leaderboard lists the better test score first, with no validation."""
    site.open("/app/groups/", "04-groups-and-rounds")
    site.driver.find_element("link text", "Moons challenge").click()
    screenshot(site.driver, site.shots, "05-leaderboard")
    rows = site.driver.find_elements("css selector", "table.leaderboard tbody tr")
    names = [row.find_element("css selector", "th").text.split()[0] for row in rows]
    scores = {"student": _result(site, site.mine), "rival": _result(site, site.rivals)}
    assert scores["student"]["score_test"] != scores["rival"]["score_test"]
    best_first = sorted(scores, key=lambda name: -scores[name]["score_test"])
    assert names == best_first
    table = site.driver.find_element("css selector", "table.leaderboard").text
    for result in scores.values():
        assert f"{result['score_validation']:.3f}" not in table


def test_another_students_job_page_is_refused(site: Site) -> None:
    """The rival's job is refused to the student: a 'not yours' page without its scores."""
    text = site.open(f"/app/jobs/{site.rivals}/", "06-refused")
    assert "is not yours" in text
    assert f"{_result(site, site.rivals)['score_test']:.3f}" not in text
    site.open("/app/", "07-my-jobs")
    site.open("/app/datasets/", "08-datasets")


def test_the_teachers_fleet_page_lists_the_worker(site: Site) -> None:
    """A teacher logging in by keyboard sees the worker and the failure's sentence."""
    site.log_out()
    assert site.log_in_by_keyboard(WORKER_USER, WORKER_PASSWORD) == "id_username"
    text = site.open("/app/fleet/", "09-fleet")
    assert WORKER_ID in text
    failure = _result(site, site.failing)
    assert failure["status"] == "failed"
    assert failure["message"].splitlines()[0] in text
    site.open(f"/app/jobs/{site.failing}/", "12-failed-job-as-teacher")
    site.open("/app/", "10-all-jobs")
    site.open(f"/app/jobs/{site.rivals}/", "11-job-as-teacher")
    site.log_out()
    site.open("/", "00-landing")
