"""Fixtures of the browser tests: a headless Chromium driven by Selenium, and where screenshots go.

The browser is the machine's own Chromium and chromedriver (Debian's
``chromium`` and ``chromium-driver``), named by path, so Selenium Manager is
never asked to find or download one. Other paths can be given with
``CONTINUOUS_EVAL_CHROMIUM`` and ``CONTINUOUS_EVAL_CHROMEDRIVER``.

Without them the tests skip, except under ``CI=true``, where they fail: CI
must never pass by skipping them (``.ci/run`` installs both packages).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver

from tests.browser.driving import HEIGHT, WIDTH, set_viewport

CHROMIUM_ENV = "CONTINUOUS_EVAL_CHROMIUM"
CHROMEDRIVER_ENV = "CONTINUOUS_EVAL_CHROMEDRIVER"
ARTIFACTS_ENV = "CONTINUOUS_EVAL_BROWSER_ARTIFACTS"
DEFAULT_ARTIFACTS = Path(__file__).parent / "artifacts"
BROWSER_TZ = "Pacific/Auckland"


@dataclass(frozen=True)
class Chromium:
    """Where the browser and its driver are."""

    browser: str
    driver: str


def _find(env: str, defaults: tuple[str, ...], names: tuple[str, ...]) -> str | None:
    given = os.environ.get(env, "").strip()
    if given:
        return given if os.access(given, os.X_OK) else None
    for path in defaults:
        if os.access(path, os.X_OK):
            return path
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def chromium() -> Chromium:
    """The local Chromium and chromedriver; skip without them (fail under CI)."""
    browser = _find(CHROMIUM_ENV, ("/usr/bin/chromium",), ("chromium", "chromium-browser"))
    driver = _find(CHROMEDRIVER_ENV, ("/usr/bin/chromedriver",), ("chromedriver",))
    if browser and driver:
        return Chromium(browser, driver)
    missing = ", ".join(
        what
        for what, path in (
            (f"Chromium (or {CHROMIUM_ENV})", browser),
            (f"chromedriver (or {CHROMEDRIVER_ENV})", driver),
        )
        if path is None
    )
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(
            f"no {missing}. Under CI the browser tests must run, never skip: install Debian's "
            "chromium and chromium-driver (.ci/run does).",
            pytrace=False,
        )
    pytest.skip(f"no {missing}: install chromium and chromium-driver to run the browser tests")


def chrome_options(chromium: Chromium) -> Options:
    """Headless Chromium as root in a container: no sandbox, no /dev/shm, no GPU."""
    options = Options()
    options.binary_location = chromium.browser
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WIDTH},{HEIGHT}",
        "--lang=en-GB",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
    ):
        options.add_argument(flag)
    # The browser's console, to fail on script errors and refused resources.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return options


@pytest.fixture(scope="module")
def browser(chromium: Chromium) -> Iterator[WebDriver]:
    """One headless Chromium per test module, at 1280x900."""
    with pytest.MonkeyPatch.context() as patch:
        # Both paths are explicit, so Selenium Manager is skipped; offline in any case.
        patch.setenv("SE_OFFLINE", "true")
        # Far from UTC: a page that drew local time where it says UTC would show
        # another day (the trend's axis is UTC, as the page's tables are).
        env = {**os.environ, "TZ": BROWSER_TZ}
        service = Service(executable_path=chromium.driver, env=env)
        driver = webdriver.Chrome(options=chrome_options(chromium), service=service)
    try:
        set_viewport(driver, WIDTH, HEIGHT, mobile=False)
        driver.set_page_load_timeout(30)
        driver.set_script_timeout(30)
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go: ``CONTINUOUS_EVAL_BROWSER_ARTIFACTS``, else tests/browser/artifacts."""
    given = os.environ.get(ARTIFACTS_ENV, "").strip()
    path = Path(given) if given else DEFAULT_ARTIFACTS
    path.mkdir(parents=True, exist_ok=True)
    return path
