"""The dashboard in a real headless Chromium, served by a real ``serve`` on a seeded database.

One ``serve`` (SQLite) and one browser for the whole module; the overview,
trend and compare checks also run on Postgres (a second ``serve``). Live
runs are real: a manual run started through the API whose cases sleep.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from tests.browser.board import TOKEN, Board, open_board
from tests.browser.conftest import Chromium
from tests.browser.driving import (
    BLOCKING,
    HEIGHT,
    PHONE,
    WIDTH,
    axe_violations,
    console_errors,
    describe,
    dump,
    load,
    one,
    overflow_x,
    path_of,
    reset_viewport,
    save_screenshot,
    session_cookie,
    set_viewport,
    sign_in,
    sign_out_by_forgetting,
    submit_token,
    texts,
    wait,
    wait_for_path,
)
from tests.conftest import PostgresDatabases

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def board(
    chromium: Chromium, tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[Board]:
    """``serve`` on a seeded SQLite file (after ``chromium``: without a browser, nothing starts)."""
    workdir = tmp_path_factory.mktemp("board-sqlite")
    shutil.copyfile(sqlite_template, workdir / "eval.db")  # migrated by `db upgrade`'s code
    with open_board(workdir, f"sqlite:///{workdir / 'eval.db'}") as running:
        yield running


@pytest.fixture(scope="module")
def postgres_board(
    chromium: Chromium,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_databases: PostgresDatabases,
    postgres_template: str,
) -> Iterator[Board]:
    """``serve`` on a seeded Postgres database, cloned from the session's migrated one."""
    name = postgres_databases.create(template=postgres_template)
    try:
        with open_board(tmp_path_factory.mktemp("board-pg"), postgres_databases.url(name)) as b:
            yield b
    finally:
        postgres_databases.drop(name)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def any_board(request: pytest.FixtureRequest) -> Board:
    """The SQLite board, and the Postgres one."""
    name = "board" if request.param == "sqlite" else "postgres_board"
    found: Board = request.getfixturevalue(name)
    return found


def pages(board: Board) -> dict[str, str]:
    """Every page, by name, at a path that shows it with the seeded data."""
    s = board.seeded
    suite, feature, scorer = s.trend
    return {
        "signin": "/ui/signin",
        "overview": "/",
        "trend": f"/ui/trend?suite={suite}&feature={feature}&scorer={scorer}",
        "run": f"/ui/runs/{s.regressed_run}",
        "compare": f"/ui/compare?run={s.regressed_run}&base={s.base_run}",
        "alerts": "/ui/alerts",
    }


PAGES = ["signin", "overview", "trend", "run", "compare", "alerts"]


def visit(browser: WebDriver, board: Board, page: str) -> None:
    """Open a page as a person would see it: the sign-in page signed out, the others signed in."""
    if page == "signin":
        sign_out_by_forgetting(browser)
    else:
        sign_in(browser, board)
    load(browser, board, pages(board)[page])


# ------------------------------------------------------------------ sign-in


def test_sign_in_refuses_a_wrong_token_and_sign_out_ends_the_session(
    browser: WebDriver, board: Board
) -> None:
    sign_out_by_forgetting(browser)
    browser.get(board.url("/ui/alerts"))
    wait_for_path(browser, "/ui/signin?next=%2Fui%2Falerts")

    submit_token(browser, "not-the-token")
    error = one(browser, ".signin .error[role=alert]")
    assert error.text == "That token is not accepted."
    assert session_cookie(browser) is None

    submit_token(browser, TOKEN)
    wait_for_path(browser, "/ui/alerts")  # back where the visit started
    assert one(browser, "h1").text == "Alerts"
    cookie = session_cookie(browser)
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"

    browser.get(board.url("/"))
    assert one(browser, "h1").text == "Overview"
    browser.find_element(By.CSS_SELECTOR, "form.signout button").click()
    wait_for_path(browser, "/ui/signin")
    assert session_cookie(browser) is None
    assert not browser.find_elements(By.CSS_SELECTOR, "form.signout")

    browser.get(board.url("/"))
    wait_for_path(browser, "/ui/signin?next=%2F")


# ------------------------------------------------------------------ overview


def test_the_overview_lists_the_seeded_suites(browser: WebDriver, any_board: Board) -> None:
    board = any_board
    sign_in(browser, board)
    load(browser, board, "/")

    suites = texts(browser, "section.suite h2")
    assert suites == sorted(suites)
    assert set(board.seeded.suites) <= set(suites)
    rows = {
        section.find_element(By.CSS_SELECTOR, "h2").text: [
            (r.find_element(By.CSS_SELECTOR, "td").text, r.get_attribute("data-state"))
            for r in section.find_elements(By.CSS_SELECTOR, "tr.key")
        ]
        for section in browser.find_elements(By.CSS_SELECTOR, "section.suite")
    }
    assert rows["helpdesk"] == [("refunds · judge", "regressed"), ("tone · judge", "ok")]
    assert rows["billing"] == [("invoices · exact", "ok"), ("disputes", "never_run")]
    # One sparkline per key that has scheduled runs.
    assert len(browser.find_elements(By.CSS_SELECTOR, "section.suite svg.spark polyline")) == 3

    incidents = browser.find_elements(By.CSS_SELECTOR, "table.incidents tbody tr")
    assert len(incidents) == 1
    link = incidents[0].find_element(By.CSS_SELECTOR, "a[href^='/ui/runs/']")
    assert link.text == board.seeded.regressed_run
    assert "next" in one(browser, "section.suite .meta").text


# ------------------------------------------------------------------ trend


def test_the_trend_chart_draws_the_seeded_points_and_the_alert(
    browser: WebDriver, any_board: Board
) -> None:
    board = any_board
    sign_in(browser, board)
    load(browser, board, "/")
    # Reach it as a person does: by the overview's link.
    (helpdesk,) = [
        s for s in browser.find_elements(By.CSS_SELECTOR, "section.suite")
        if s.find_element(By.CSS_SELECTOR, "h2").text == "helpdesk"
    ]  # fmt: skip
    helpdesk.find_element(By.LINK_TEXT, "refunds · judge").click()
    wait_for_path(browser, "/ui/trend?suite=helpdesk&feature=refunds&scorer=judge")
    chart = one(browser, "#chart[data-points]")

    assert chart.get_attribute("data-points") == str(board.seeded.trend_points)
    assert chart.get_attribute("data-manual") == "0"
    assert chart.find_elements(By.CSS_SELECTOR, "canvas"), "uPlot drew no canvas"
    marks = chart.find_elements(By.CSS_SELECTOR, ".u-over a.mark")
    assert [m.get_attribute("class") for m in marks] == ["mark mark-alert"]
    assert marks[0].get_attribute("href") == board.url(f"/ui/runs/{board.seeded.regressed_run}")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.points tr.point-scheduled")
    assert len(rows) == board.seeded.trend_points

    # The alert's mark stands on its run, the newest point: the right edge of the plot.
    over = chart.find_element(By.CSS_SELECTOR, ".u-over")
    left = float(marks[0].value_of_css_property("left").removesuffix("px"))
    width = float(over.get_attribute("clientWidth") or 0)
    assert abs(left - width) <= 1.0, f"the alert mark is at {left}px of a {width}px plot"


# ------------------------------------------------------------------ runs


def _done(browser: WebDriver) -> int:
    return int(browser.find_element(By.ID, "done").text)


def _wait_past(browser: WebDriver, done: int) -> int:
    """Wait until the page counts more than ``done`` cases, without reloading it; the count."""

    def past(d: WebDriver) -> int | Literal[False]:
        now = _done(d)
        return now if now > done else False

    return wait(browser, past, f"more than {done} cases done")


def test_the_run_page_shows_a_live_run_progress_without_reloading(
    browser: WebDriver, board: Board, artifacts: Path
) -> None:
    sign_in(browser, board)
    run_id = board.start_run("slow-progress")
    load(browser, board, f"/ui/runs/{run_id}")
    browser.execute_script("window.__marker = 1")
    origin = browser.execute_script("return performance.timeOrigin")

    seen = [_done(browser)]
    for _ in range(2):
        seen.append(_wait_past(browser, seen[-1]))
    save_screenshot(browser, artifacts / "run-live-desktop.png")
    live = browser.find_element(By.ID, "live")
    wait(browser, lambda _: live.get_attribute("data-status") == "succeeded", "the run's end")
    wait(browser, lambda _: live.get_attribute("data-ended") == "true", "the stream's end")

    assert browser.execute_script("return window.__marker") == 1, "the page was reloaded"
    assert browser.execute_script("return performance.timeOrigin") == origin
    assert _done(browser) == 20
    assert browser.find_element(By.ID, "total").text == "20"
    assert browser.find_element(By.ID, "progress").get_attribute("value") == "20"
    assert live.get_attribute("data-done") == "20"
    assert one(browser, "#status .state").text == "succeeded"
    assert not browser.find_elements(By.ID, "controls"), "a finished run still offers controls"
    assert board.run(run_id)["status"] == "succeeded"


def test_cancel_on_the_run_page_cancels_the_run(browser: WebDriver, board: Board) -> None:
    sign_in(browser, board)
    run_id = board.start_run("slow-cancel")
    load(browser, board, f"/ui/runs/{run_id}")
    wait(browser, lambda d: _done(d) >= 1, "the run to progress")

    browser.find_element(By.ID, "cancel").click()
    wait(
        browser,
        lambda d: d.find_element(By.ID, "live").get_attribute("data-status") == "cancelled",
        "the page to show the run cancelled",
    )
    assert path_of(browser) == f"/ui/runs/{run_id}"
    run = board.run(run_id)
    assert run["status"] == "cancelled"
    assert run["progress"]["cases_done"] < run["progress"]["cases_total"]


def _post(browser: WebDriver, path: str, fields: dict[str, str]) -> dict[str, object]:
    """POST a form from the page with ``fetch``, as a script on the page could: no CSRF token."""
    answer: dict[str, object] = browser.execute_async_script(
        """
        const [path, fields, done] = arguments;
        fetch(path, {method: "POST", body: new URLSearchParams(fields), redirect: "manual"})
          .then(async r => done({status: r.status, body: await r.text()}))
          .catch(e => done({status: -1, body: String(e)}));
        """,
        path,
        fields,
    )
    return answer


def test_form_posts_without_the_csrf_token_are_refused(browser: WebDriver, board: Board) -> None:
    sign_in(browser, board)
    run_id = board.start_run("slow-csrf")
    try:
        load(browser, board, f"/ui/runs/{run_id}")
        wait(browser, lambda d: _done(d) >= 1, "the run to progress")

        refused = _post(browser, f"/ui/runs/{run_id}/control", {"action": "cancel"})
        assert refused["status"] == 403, refused
        assert json.loads(str(refused["body"]))["error"]["code"] == "csrf_failed"
        wrong = _post(
            browser, f"/ui/runs/{run_id}/control", {"action": "cancel", "csrf_token": "x" * 64}
        )
        assert wrong["status"] == 403, wrong
        # The run goes on: still running, still moving, on the page and in the API.
        before = board.run(run_id)["progress"]["cases_done"]
        wait(browser, lambda d: _done(d) > before, "the run to keep moving")
        assert board.run(run_id)["status"] == "running"
        assert browser.find_element(By.ID, "live").get_attribute("data-status") == "running"

        signout = _post(browser, "/ui/signout", {})
        assert signout["status"] == 403, signout
        assert session_cookie(browser) is not None
        load(browser, board, "/")
        assert path_of(browser) == "/", "the refused sign-out ended the session"
    finally:
        board.api("POST", f"/api/runs/{run_id}/cancel")


# ------------------------------------------------------------------ compare


def test_the_compare_page_shows_exactly_the_fallen_cases(
    browser: WebDriver, any_board: Board
) -> None:
    board = any_board
    seeded = board.seeded
    sign_in(browser, board)
    load(browser, board, f"/ui/runs/{seeded.regressed_run}")
    browser.find_element(By.ID, "compare").click()
    wait_for_path(browser, f"/ui/compare?run={seeded.regressed_run}&base={seeded.base_run}")
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr.case")) == 20

    browser.find_element(By.PARTIAL_LINK_TEXT, "fell (").click()
    wait_for_path(
        browser, f"/ui/compare?run={seeded.regressed_run}&base={seeded.base_run}&show=fell"
    )
    rows = browser.find_elements(By.CSS_SELECTOR, "table.compare tbody tr.case")
    assert [r.get_attribute("data-case") for r in rows] == list(seeded.fallen)
    assert {r.get_attribute("class") for r in rows} == {"case case-fell"}
    assert one(browser, "nav.filters a[aria-current=page]").text == f"fell ({len(seeded.fallen)})"
    first = rows[0].text
    assert "Can I get a refund 40 days after delivery?" in first  # the input
    assert "follows the refund policy" in first  # the expected answer
    assert "contradicts the 30-day policy" in first  # the new rationale


# ------------------------------------------------------------------ every page


@pytest.mark.parametrize("page", PAGES)
def test_axe_finds_no_serious_or_critical_violation(
    browser: WebDriver, board: Board, artifacts: Path, page: str
) -> None:
    visit(browser, board, page)
    violations = axe_violations(browser)
    (artifacts / f"axe-{page}.json").write_text(dump(violations))
    blocking = [v for v in violations if v["impact"] in BLOCKING]
    assert not blocking, f"axe-core on {page}:\n{describe(blocking)}"


@pytest.mark.parametrize("page", PAGES)
def test_no_page_logs_an_error(browser: WebDriver, board: Board, page: str) -> None:
    visit(browser, board, "overview" if page != "overview" else "alerts")
    console_errors(browser)  # forget what came before
    visit(browser, board, page)
    errors = console_errors(browser)
    assert not errors, f"the console of {page}:\n{dump(errors)}"


def test_screenshots_of_every_page(browser: WebDriver, board: Board, artifacts: Path) -> None:
    """Every page at 1280x900 and at a phone's 390x844, in ``artifacts``; none scrolls sideways."""
    wide: dict[str, int] = {}
    try:
        for page in PAGES:
            for name, (width, height), mobile in (
                ("desktop", (WIDTH, HEIGHT), False),
                ("phone", PHONE, True),
            ):
                set_viewport(browser, width, height, mobile=mobile)
                visit(browser, board, page)
                save_screenshot(browser, artifacts / f"{page}-{name}.png")
                if overflow_x(browser) > 0:
                    wide[f"{page}-{name}"] = overflow_x(browser)
    finally:
        reset_viewport(browser)
    assert not wide, f"pages wider than the screen (CSS px too wide): {wide}"
