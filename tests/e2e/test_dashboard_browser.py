"""The operator dashboard in a real headless Chromium: rows appear and change colour without a reload."""

import os
import shutil

import httpx
import pytest

from tests.e2e.harness import BASE_DIR, fake_instance, wait_for

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOT_DIR = BASE_DIR / "var" / "e2e"


@pytest.fixture
def browser():
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        reason = "browser test needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        if os.environ.get("SEED_REQUIRE_SERVICES") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _row_status(driver, instance_id: str) -> str | None:
    # Read in one script: the page replaces its rows on every frame, so a found element can go stale.
    script = "const r = document.querySelector(`#instances tr[data-instance-id='${arguments[0]}']`);"
    return driver.execute_script(script + " return r ? r.dataset.status : null;", instance_id)


def test_dashboard_shows_a_new_instance_live_and_turns_it_unhealthy_when_it_dies(embedded_cluster, browser):
    (server,) = embedded_cluster().start(1)
    browser.get(f"{server.url}/dashboard/")
    wait_for(lambda: browser.find_element("id", "live").text == "live", timeout=15, what="the monitor socket")
    page_loads = browser.execute_script("return performance.getEntriesByType('navigation').length")

    with fake_instance() as instance:
        response = httpx.post(
            f"{server.url}/api/v1/multi-instance/instances",
            json={"host": "127.0.0.1", "port": instance.server_address[1]},
        )
        assert response.status_code == 201, response.text
        instance_id = response.json()["instance"]["id"]
        wait_for(lambda: _row_status(browser, instance_id) == "active", timeout=15, what="the new row")
    wait_for(lambda: _row_status(browser, instance_id) == "unhealthy", timeout=30, what="the row to turn unhealthy")

    assert browser.execute_script("return performance.getEntriesByType('navigation').length") == page_loads
    text, colour = browser.execute_script(
        "const b = document.querySelector(`tr[data-instance-id='${arguments[0]}'] .status`);"
        " return [b.textContent, getComputedStyle(b).backgroundColor];",
        instance_id,
    )
    assert text == "unhealthy"
    assert "207, 34, 46" in colour  # --bad: red
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT_DIR / "dashboard.png"))
