"""Headless Chromium for the pages' browser tests, and screenshots to look at afterwards.

Debian's ``chromium`` and ``chromium-driver`` packages (``.ci/run`` installs them): the
driver is passed by path and Selenium Manager is told to stay offline, so nothing is
downloaded. Without them the tests skip on a developer's machine and fail under ``CI``.
Screenshots go to ``$MLWORKER_TEST_ARTIFACTS/pages/`` when that is set (CI keeps it),
else to the test run's temporary directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from postgres_helpers import in_ci
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)
WIDTH = 1280


def _found(*names: str) -> str | None:
    """The first of ``names`` on ``PATH`` or in /usr/bin (Debian's packages put them there)."""
    search = os.pathsep.join(filter(None, [os.environ.get("PATH"), "/usr/bin"]))
    return next(filter(None, (shutil.which(name, path=search) for name in names)), None)


def start_chromium(profile: Path) -> Any:
    """A headless Chromium driven by Selenium with a fresh profile in ``profile``."""
    browser, driver = _found("chromium", "chromium-browser"), _found("chromedriver")
    if browser is None or driver is None:
        reason = "Chromium or its driver is missing: apt-get install chromium chromium-driver"
        if in_ci():
            pytest.fail(f"{reason}; CI is set, so the browser tests must run")
        pytest.skip(reason)
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never download
    options = Options()
    options.binary_location = browser
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def artifacts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``$MLWORKER_TEST_ARTIFACTS/pages`` or a temporary directory."""
    configured = os.environ.get("MLWORKER_TEST_ARTIFACTS", "").strip()
    if not configured:
        return tmp_path_factory.mktemp("pages-screenshots")
    directory = Path(configured) / "pages"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def screenshot(driver: Any, directory: Path, name: str) -> Path:
    """The whole page as ``<name>.png``: the window grows to the page's height first."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WIDTH, max(600, min(int(height) + 120, 6000)))
    path = directory / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
