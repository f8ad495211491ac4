"""The crew panel in a real browser: Debian's Chromium, headless, driven by Playwright, against
the real supervisor process running the simulated van."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright
from testsupport import needs_tool

from conftest import Van
from harness import wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]
SCREENS = Path(__file__).parent / "artifacts" / "screens"
SIZES = {"800x480": (800, 480), "1280x800": (1280, 800)}
TIMEOUT_MS = 20_000
# every visible button, link and input a finger must hit: at least 48 x 48 CSS px
SMALL_TARGETS_JS = """() => [...document.querySelectorAll('button, a, input, select')]
  .filter(el => el.offsetParent !== null)
  .map(el => [el.dataset.testid || el.textContent.trim().slice(0, 20),
              el.getBoundingClientRect()])
  .filter(([, r]) => r.width < 47.5 || r.height < 47.5)
  .map(([name, r]) => `${name} ${Math.round(r.width)}x${Math.round(r.height)}`)"""

chromium_installed = needs_tool("chromium")  # skips without it; fails in CI


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


def panel_url(van: Van) -> str:
    return f"http://127.0.0.1:{os.environ['MCW_PANEL_PORT']}/"


async def open_panel(browser: Browser, van: Van, size: str = "1280x800") -> Page:
    width, height = SIZES[size]
    page = await browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(panel_url(van))
    return page


async def enter_pin(page: Page, pin: str) -> None:
    await page.get_by_test_id("screen-pin").wait_for()
    for digit in pin:
        await page.get_by_test_id(f"pin-key-{digit}").click()
    await page.get_by_test_id("pin-ok").click()


async def unlocked(browser: Browser, van: Van, pin: str = "1234",
                   size: str = "1280x800") -> Page:
    page = await open_panel(browser, van, size)
    await enter_pin(page, pin)
    await page.get_by_test_id("screen-home").wait_for()
    return page


def value_id(point: str) -> str:
    return "value-" + point.replace("/", "-")


async def test_unlock_shows_live_battery_values(browser: Browser, van: Van) -> None:
    page = await unlocked(browser, van)
    soc = page.get_by_test_id(value_id("power/battery/soc")).first
    await page.wait_for_function(
        "el => /\\d/.test(el.textContent) && el.dataset.quality === 'good'",
        arg=await soc.element_handle())
    before = await soc.text_content()
    van.sim.plant.battery.soc = 42.4  # the battery changes: the screen follows, no reload
    await page.wait_for_function("([el, old]) => el.textContent !== old",
                                 arg=[await soc.element_handle(), before])
    assert "42" in (await soc.text_content() or "")
    await page.get_by_test_id("nav-power").click()
    volts = page.get_by_test_id(value_id("power/battery/voltage")).first
    await page.wait_for_function("el => el.dataset.quality === 'good'",
                                 arg=await volts.element_handle())
    assert "," in (await volts.text_content() or "")  # Polish decimals: 13,1 V


async def test_circuit_switched_and_confirmed(browser: Browser, van: Van) -> None:
    page = await unlocked(browser, van)
    await page.get_by_test_id("nav-power").click()
    button = page.get_by_test_id("circuit-exterior_lights")
    await button.wait_for()
    assert await button.get_attribute("data-state") == "off"
    await button.click()
    await page.wait_for_function("el => el.dataset.state === 'on'",
                                 arg=await button.element_handle())
    assert van.sim.relay("relays", "relay_1") is True


async def test_alarm_acknowledged(browser: Browser, van: Van) -> None:
    page = await unlocked(browser, van)
    van.sim.plant.battery.soc = 12.0
    await page.get_by_test_id("nav-alarms").click()
    row = page.get_by_test_id("alarm-power-critical_soc")
    await row.wait_for()
    van.sim.plant.battery.soc = 60.0  # cleared, but latched until acknowledged
    await wait_until(lambda: van.monitor.latest.get("alarm/power/critical_soc", {}) and
                     van.monitor.latest["alarm/power/critical_soc"]["active"] is False,
                     what="alarm cleared")
    await page.get_by_test_id("ack-power-critical_soc").click()
    await row.wait_for(state="detached")
    await wait_until(lambda: van.monitor.latest.get("alarm/power/critical_soc", "x") is None,
                     what="alarm gone on MQTT too")


async def test_polish_by_default_english_on_request(browser: Browser, van: Van) -> None:
    page = await unlocked(browser, van)
    assert await page.get_attribute("html", "lang") == "pl"
    polish = await page.get_by_test_id("nav-power").text_content()
    await page.get_by_test_id("lang-toggle").click()
    await page.wait_for_function("document.documentElement.lang === 'en'")
    english = await page.get_by_test_id("nav-power").text_content()
    assert polish != english
    assert "Power" in (english or "")


async def test_wrong_pins_lock_the_keypad_out(browser: Browser, van: Van) -> None:
    page = await open_panel(browser, van)
    for _ in range(4):
        await enter_pin(page, "0000")
        await page.get_by_test_id("pin-error").wait_for()
    await enter_pin(page, "0000")
    await page.get_by_test_id("pin-lockout").wait_for()
    # the keypad takes nothing during the lockout, not even the right PIN
    assert await page.get_by_test_id("pin-key-1").is_disabled()
    assert not await page.get_by_test_id("screen-home").is_visible()


async def test_silent_device_is_shown_greyed(browser: Browser, van: Van) -> None:
    page = await unlocked(browser, van)
    await page.get_by_test_id("nav-climate").click()
    temp = page.get_by_test_id(value_id("climate/room/temperature")).first
    await page.wait_for_function("el => el.dataset.quality === 'good'",
                                 arg=await temp.element_handle())
    van.sim.set_silent("room_climate", True)
    await page.wait_for_function("el => el.dataset.quality === 'stale'",
                                 arg=await temp.element_handle(), timeout=60_000)
    assert "stale" in (await temp.get_attribute("class") or "")


@pytest.mark.parametrize("size", sorted(SIZES))
async def test_screenshots_of_every_screen(browser: Browser, van: Van, size: str) -> None:
    SCREENS.mkdir(parents=True, exist_ok=True)
    page = await open_panel(browser, van, size)
    await page.get_by_test_id("screen-pin").wait_for()
    await page.screenshot(path=str(SCREENS / f"pin-{size}.png"))
    await enter_pin(page, "4321")  # technician: every screen including diagnostics
    await page.get_by_test_id("screen-home").wait_for()
    for screen in ("home", "power", "climate", "lighting", "room", "comms", "alarms",
                   "diagnostics"):
        await page.get_by_test_id(f"nav-{screen}").click()
        await page.get_by_test_id(f"screen-{screen}").wait_for()
        await page.screenshot(path=str(SCREENS / f"{screen}-{size}.png"))
        small = await page.evaluate(SMALL_TARGETS_JS)
        assert small == [], f"tap targets under 48 px on {screen} at {size}: {small}"
    await page.get_by_test_id("night-toggle").click()
    await page.get_by_test_id("nav-home").click()
    await page.screenshot(path=str(SCREENS / f"home-night-{size}.png"))
    assert len(list(SCREENS.glob(f"*-{size}.png"))) >= 10


async def test_panel_keeps_working_while_the_broker_is_down(browser: Browser, van: Van) -> None:
    page = await unlocked(browser, van)
    await van.broker.stop()
    await page.get_by_test_id("nav-power").click()
    button = page.get_by_test_id("circuit-sockets_12v")
    await button.click()
    await page.wait_for_function("el => el.dataset.state === 'on'",
                                 arg=await button.element_handle())
    assert van.sim.relay("relays", "relay_5") is True
