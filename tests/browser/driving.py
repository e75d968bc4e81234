"""Driving the dashboard in Chromium: waiting, signing in, axe-core, the console, screenshots.

Every wait is on a condition (``WebDriverWait``), never a sleep: a page is
ready when what the test looks for is there, however slow the machine.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.board import TOKEN, Board

TIMEOUT_S = 30.0
WIDTH, HEIGHT = 1280, 900
"""The window of every test, unless a test asks for a phone's."""
PHONE = (390, 844)
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
BLOCKING = ("serious", "critical")
"""axe-core impacts that fail a test; minor and moderate ones are reported only."""

_T = TypeVar("_T")


def wait(driver: WebDriver, condition: Callable[[WebDriver], _T], what: str) -> _T:
    """Wait until ``condition`` returns something truthy and return it; fail saying ``what``."""
    # A page being replaced (after a click on a link or a button) may take an
    # element away between finding it and reading it: look again.
    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(driver, TIMEOUT_S, poll_frequency=0.05, ignored_exceptions=ignored).until(
        condition, message=f"timed out after {TIMEOUT_S:.0f}s waiting for {what}"
    )


def path_of(driver: WebDriver) -> str:
    """The current page's path and query, e.g. ``/ui/signin?next=%2F``."""
    url = urlsplit(driver.current_url)
    return url.path + (f"?{url.query}" if url.query else "")


def _loaded(driver: WebDriver) -> bool:
    return bool(driver.execute_script("return document.readyState") == "complete")


def wait_for_path(driver: WebDriver, path: str) -> None:
    """Wait until the browser is at ``path`` and that page is loaded."""
    wait(driver, lambda d: path_of(d) == path and _loaded(d), f"the page {path}")


def one(driver: WebDriver, css: str) -> WebElement:
    """The one element matching ``css``, waiting for it to exist."""
    found: WebElement = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, css)[:1], css)[0]
    return found


def texts(driver: WebDriver, css: str) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]


def session_cookie(driver: WebDriver) -> dict[str, Any] | None:
    cookie: dict[str, Any] | None = driver.get_cookie("ce_session")
    return cookie


def sign_out_by_forgetting(driver: WebDriver) -> None:
    """Drop every cookie: the next page load has no session."""
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})


def submit_token(driver: WebDriver, token: str) -> None:
    """Type ``token`` into the sign-in form on screen and press its button."""
    field = one(driver, "#token")
    field.clear()
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form.signin button[type=submit]").click()


def sign_in(driver: WebDriver, board: Board) -> None:
    """Be signed in: through the sign-in form, unless the browser already has a session."""
    if urlsplit(driver.current_url).netloc == urlsplit(board.base).netloc and session_cookie(
        driver
    ):
        return
    driver.get(board.url("/ui/signin"))
    submit_token(driver, TOKEN)
    wait_for_path(driver, "/")


def load(driver: WebDriver, board: Board, path: str) -> None:
    """Open a page and wait until it is drawn (the trend page: until its chart is)."""
    driver.get(board.url(path))
    wait(driver, _loaded, f"{path} to load")
    if path.startswith("/ui/trend"):
        one(driver, "#chart[data-points]")


# ------------------------------------------------------------------ axe-core


def axe_violations(driver: WebDriver) -> list[dict[str, Any]]:
    """Run axe-core on the page on screen and return its violations (all impacts)."""
    if not driver.execute_script("return typeof window.axe === 'object'"):
        driver.execute_script(AXE.read_text(encoding="utf-8"))
    result: dict[str, Any] = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        axe.run(document, {resultTypes: ["violations"]})
          .then(r => done({violations: r.violations}))
          .catch(e => done({error: String(e)}));
        """
    )
    assert "error" not in result, f"axe-core failed: {result['error']}"
    violations: list[dict[str, Any]] = result["violations"]
    return violations


def describe(violations: list[dict[str, Any]]) -> str:
    """One line per violation and one per offending node: what a person fixes."""
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']} [{v['helpUrl']}]")
        for node in v["nodes"]:
            lines.append(f"    {' '.join(node['target'])}: {node['failureSummary']!r}")
            lines.append(f"      {node['html'][:200]}")
    return "\n".join(lines)


# ------------------------------------------------------------------ console


def console_errors(driver: WebDriver) -> list[dict[str, Any]]:
    """The browser console's errors since the last call (script errors, refused loads, CSP)."""
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [e for e in entries if e.get("level") == "SEVERE"]


# --------------------------------------------------------------- screenshots


def set_viewport(driver: WebDriver, width: int, height: int, *, mobile: bool) -> None:
    """Make the viewport ``width`` x ``height`` CSS pixels, a phone's when ``mobile``."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )


def reset_viewport(driver: WebDriver) -> None:
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    set_viewport(driver, WIDTH, HEIGHT, mobile=False)


def save_screenshot(driver: WebDriver, path: Path) -> None:
    """The viewport as a PNG at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(path)), f"no screenshot written to {path}"


def overflow_x(driver: WebDriver) -> int:
    """How many CSS pixels the page is wider than its viewport (0: no sideways scrolling)."""
    extra: int = driver.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return extra


def dump(obj: object) -> str:
    return json.dumps(obj, indent=1, default=str)
