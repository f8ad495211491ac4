"""The crew panel in a real browser: Debian's Chromium, headless, driven by Playwright, against
the real supervisor process running the simulated van."""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, WebSocketRoute, async_playwright
from testsupport import needs_tool

from conftest import Van
from harness import wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]
SCREENS = Path(__file__).parent / "artifacts" / "screens"
SIZES = {"800x480": (800, 480), "1280x800": (1280, 800)}
NAV = ("home", "power", "climate", "lighting", "room", "comms", "alarms", "diagnostics")
I18N = Path(__file__).parents[1] / "supervisor" / "interfaces" / "panel_static" / "i18n"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BROKEN_TEXT = ("[object", "undefined", "NaN")  # what a script bug puts on a screen
MIN_SCREENSHOT_BYTES = 10_000  # a blank page compresses to a few kB; every screen is over 30 kB
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


MessageEdit = Callable[[dict[str, Any]], None]


async def open_panel(browser: Browser, van: Van, size: str = "1280x800",
                     edit_hello: MessageEdit | None = None,
                     edit_snapshot: MessageEdit | None = None) -> Page:
    """A fresh page on the panel; ``edit_hello`` and ``edit_snapshot`` may change the
    WebSocket's hello and snapshot on their way."""
    width, height = SIZES[size]
    page = await browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(TIMEOUT_MS)
    edits = {kind: edit for kind, edit in (("hello", edit_hello), ("snapshot", edit_snapshot))
             if edit is not None}
    if edits:
        await page.route_web_socket("**/api/ws", lambda ws: relay(ws, edits))
    await page.goto(panel_url(van))
    return page


def relay(ws: WebSocketRoute, edits: dict[str, MessageEdit]) -> None:
    """Pass the page's WebSocket through to the supervisor, editing the messages of the
    types in ``edits``."""
    server = ws.connect_to_server()

    def to_page(message: str | bytes) -> None:
        msg = json.loads(message)
        edit = edits.get(msg.get("type"))
        if edit is not None:
            edit(msg)
            message = json.dumps(msg)
        ws.send(message)

    server.on_message(to_page)
    ws.on_message(server.send)


async def enter_pin(page: Page, pin: str) -> None:
    await page.get_by_test_id("screen-pin").wait_for()
    for digit in pin:
        await page.get_by_test_id(f"pin-key-{digit}").click()
    await page.get_by_test_id("pin-ok").click()


async def unlocked(browser: Browser, van: Van, pin: str = "1234",
                   size: str = "1280x800", edit_hello: MessageEdit | None = None,
                   edit_snapshot: MessageEdit | None = None) -> Page:
    page = await open_panel(browser, van, size, edit_hello, edit_snapshot)
    await enter_pin(page, pin)
    await page.get_by_test_id("screen-home").wait_for()
    return page


def value_id(point: str) -> str:
    return "value-" + point.replace("/", "-")


def texts(lang: str) -> dict[str, str]:
    return dict(json.loads((I18N / f"{lang}.json").read_text(encoding="utf-8")))


def enum_key(dictionary: dict[str, str], point: dict[str, Any], value: str) -> str | None:
    """The i18n key the panel shows an enum value with (as i18n.js enumText), if any."""
    keys = [f"enum.{value}"]
    if point.get("enum_set"):
        keys.insert(0, f"enum.{point['enum_set']}.{value}")
    return next((key for key in keys if key in dictionary), None)


def assert_screenshot(path: Path, size: tuple[int, int]) -> None:
    """A PNG of the whole viewport with something drawn on it."""
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    assert (width, height) == size, f"{path.name} is {width}x{height}"
    assert len(data) > MIN_SCREENSHOT_BYTES, f"{path.name} looks blank ({len(data)} bytes)"


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
    await page.wait_for_function("() => document.documentElement.lang === 'en'")
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
    shots = [SCREENS / f"{name}-{size}.png" for name in ("pin", *NAV, "home-night")]
    for path in shots:  # a leftover from an earlier run must not pass for this run's
        path.unlink(missing_ok=True)
    page = await open_panel(browser, van, size)
    problems: list[str] = []  # script errors, and texts missing from the dictionary
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda msg: problems.append(msg.text) if "i18n" in msg.text else None)
    await page.get_by_test_id("screen-pin").wait_for()
    await page.screenshot(path=str(SCREENS / f"pin-{size}.png"))
    await enter_pin(page, "4321")  # technician: every screen including diagnostics
    await page.get_by_test_id("screen-home").wait_for()
    for screen in NAV:
        await page.get_by_test_id(f"nav-{screen}").click()
        await page.get_by_test_id(f"screen-{screen}").wait_for()
        await page.screenshot(path=str(SCREENS / f"{screen}-{size}.png"))
        small = await page.evaluate(SMALL_TARGETS_JS)
        assert small == [], f"tap targets under 48 px on {screen} at {size}: {small}"
        shown = await page.inner_text("main")
        assert [bad for bad in BROKEN_TEXT if bad in shown] == [], f"{screen}: {shown}"
    await page.get_by_test_id("night-toggle").click()
    await page.get_by_test_id("nav-home").click()
    await page.screenshot(path=str(SCREENS / f"home-night-{size}.png"))
    for path in shots:
        assert_screenshot(path, SIZES[size])
    assert problems == []


async def test_panel_keeps_working_while_the_broker_is_down(browser: Browser, van: Van) -> None:
    page = await unlocked(browser, van)
    await van.broker.stop()
    await page.get_by_test_id("nav-power").click()
    button = page.get_by_test_id("circuit-sockets_12v")
    await button.click()
    await page.wait_for_function("el => el.dataset.state === 'on'",
                                 arg=await button.element_handle())
    assert van.sim.relay("relays", "relay_5") is True


async def test_every_enum_value_has_a_text_in_both_languages(van: Van) -> None:
    meta = await wait_until(lambda: van.monitor.latest.get("meta"), what="meta on MQTT")
    polish, english = texts("pl"), texts("en")
    assert polish.keys() == english.keys()  # so what Polish has, English has too
    untranslated = [f"{point['id']}: {value}" for point in meta["points"]
                    for value in point.get("enum", []) if enum_key(polish, point, value) is None]
    assert untranslated == []


async def test_panel_follows_the_meta(browser: Browser, van: Van) -> None:
    """Decimals, enum texts and the buttons a role gets come from the supervisor's meta."""
    def edit(hello: dict[str, Any]) -> None:
        for point in hello["meta"]["points"]:
            if point["id"] == "power/battery/voltage":
                point["precision"] = 3
        for action in hello["meta"]["actions"]:
            if action["id"] == "power/generator":
                action["roles"] = ["technician"]

    page = await unlocked(browser, van, edit_hello=edit)  # the crew PIN
    await page.get_by_test_id("nav-power").click()
    volts = page.get_by_test_id(value_id("power/battery/voltage")).first
    await page.wait_for_function("el => /\\d,\\d{3}(?!\\d)/.test(el.textContent)",
                                 arg=await volts.element_handle())
    # the crew may no longer start or stop the generator, but may still switch auto start
    await page.get_by_test_id("gen-auto").wait_for()
    assert await page.get_by_test_id("gen-start").count() == 0
    assert await page.get_by_test_id("gen-stop").count() == 0
    polish = texts("pl")
    meta = van.monitor.latest["meta"]
    for point in meta["points"]:
        shown = page.get_by_test_id(value_id(point["id"]))
        if not point.get("enum") or await shown.count() == 0:
            continue
        text = await shown.first.locator(".num").text_content()
        assert text in {polish[key] for value in point["enum"]
                        if (key := enum_key(polish, point, value))}, f"{point['id']}: {text}"


# ---- the climate screen -------------------------------------------------------------------------

async def climate_screen(browser: Browser, van: Van, size: str = "1280x800",
                         edit_snapshot: MessageEdit | None = None) -> Page:
    """The crew (PIN 1234) on the climate screen."""
    page = await unlocked(browser, van, size=size, edit_snapshot=edit_snapshot)
    await page.get_by_test_id("nav-climate").click()
    await page.get_by_test_id("screen-climate").wait_for()
    return page


def polish_decimal(value: float) -> str:
    return f"{value:.1f}".replace(".", ",")


async def test_climate_screen_shows_the_room_temperature(browser: Browser, van: Van) -> None:
    van.sim.plant.thermal.zones["room"].temperature_c = 26.7
    page = await climate_screen(browser, van)
    temp = page.get_by_test_id(value_id("climate/room/temperature"))
    # what the simulated sensor reads (the room drifts slowly towards the outside): 26.x °C
    await page.wait_for_function(
        """el => el.dataset.quality === 'good' &&
                 Math.abs(parseFloat(el.querySelector('.num').textContent.replace(',', '.'))
                          - 26.7) < 0.5""", arg=await temp.element_handle())
    assert "°C" in (await temp.text_content() or "")
    # the placeholder of the first version is gone
    shown = await page.inner_text("main")
    assert "kolejnej wersji" not in shown
    assert await page.get_by_test_id("climate-zone-crew").is_visible()  # both demo zones


async def test_climate_mode_heat_in_polish_and_english(browser: Browser, van: Van) -> None:
    page = await climate_screen(browser, van)
    heat = page.get_by_test_id("climate-room-mode-heat")
    assert await heat.get_attribute("aria-pressed") == "false"
    await heat.click()
    await page.wait_for_function("el => el.getAttribute('aria-pressed') === 'true'",
                                 arg=await heat.element_handle())
    await wait_until(lambda: van.monitor.value("climate/room/mode") == "heat",
                     what="mode heat on MQTT")
    pressed = page.get_by_test_id("climate-room-mode").locator("[aria-pressed='true']")
    assert (await pressed.text_content() or "").strip() == "Grzanie"
    await page.get_by_test_id("lang-toggle").click()
    await page.wait_for_function("() => document.documentElement.lang === 'en'")
    pressed = page.get_by_test_id("climate-room-mode").locator("[aria-pressed='true']")
    await pressed.wait_for()
    assert (await pressed.text_content() or "").strip() == "Heat"


async def test_climate_setpoint_plus_half_a_kelvin(browser: Browser, van: Van) -> None:
    before = await wait_until(lambda: van.monitor.value("climate/room/setpoint"),
                              what="set point on MQTT")
    expected = (int(before * 2 + 1e-6) + 1) / 2  # the next half kelvin up
    page = await climate_screen(browser, van)
    shown = page.get_by_test_id(value_id("climate/room/setpoint"))
    await page.wait_for_function("([el, v]) => el.querySelector('.num').textContent === v",
                                 arg=[await shown.element_handle(), polish_decimal(before)])
    await page.get_by_test_id("climate-room-setpoint-plus").click()
    await page.wait_for_function("([el, v]) => el.querySelector('.num').textContent === v",
                                 arg=[await shown.element_handle(), polish_decimal(expected)])
    await wait_until(lambda: van.monitor.value("climate/room/setpoint") == expected,
                     what=f"set point {expected} on MQTT")
    # a set point of the crew's own: the preset is manual now
    await page.wait_for_function(
        "el => el.getAttribute('aria-pressed') === 'true'",
        arg=await page.get_by_test_id("climate-room-preset-manual").element_handle())


async def test_climate_ac_refused_on_a_low_battery_says_why(browser: Browser, van: Van) -> None:
    van.sim.plant.battery.soc = 50
    van.sim.plant.thermal.zones["room"].temperature_c = 30.0  # warm enough to ask for cooling
    page = await climate_screen(browser, van)
    await page.get_by_test_id("climate-room-mode-cool").click()
    card = page.get_by_test_id("ac-card")
    await page.wait_for_function("el => el.dataset.state === 'refused'",
                                 arg=await card.element_handle(), timeout=60_000)
    state = await card.get_by_test_id(value_id("climate/ac/state")).locator(".num").text_content()
    assert state == texts("pl")["enum.ac_state.refused"]
    reason = card.get_by_test_id("ac-reason")
    await reason.wait_for()
    assert "loud" in (await reason.get_attribute("class") or "")  # shown prominently
    assert "60 %" in (await reason.text_content() or "")
    assert van.sim.relay("climate_relays", "relay_2") is False


async def test_climate_co_alarm_turns_the_co_card_red(browser: Browser, van: Van) -> None:
    page = await climate_screen(browser, van)
    card = page.get_by_test_id("co-card")
    assert await card.get_attribute("data-alarm") == "false"
    van.sim.set_input("co_alarm", True)
    await page.wait_for_function("el => el.dataset.alarm === 'true'",
                                 arg=await card.element_handle())
    assert await card.get_attribute("role") == "alert"
    assert texts("pl")["enum.co_state.alarm"] in (await card.text_content() or "")
    assert await card.get_by_test_id("co-alarm-text").is_visible()
    # the whole card in the alarm colour of the theme
    colours = await page.evaluate("""el => {
        const probe = document.createElement('div');
        probe.style.background = 'var(--crit)';
        document.body.append(probe);
        const crit = getComputedStyle(probe).backgroundColor;
        probe.remove();
        return [getComputedStyle(el).backgroundColor, crit]; }""", await card.element_handle())
    assert colours[0] == colours[1], colours


async def test_climate_preheat_answer_tells_the_battery_cost(browser: Browser, van: Van) -> None:
    page = await climate_screen(browser, van)
    await page.get_by_test_id("preheat-zone-room").click()
    await page.get_by_test_id("preheat-send").click()
    answer = page.get_by_test_id("preheat-answer")
    await answer.wait_for()
    assert await answer.get_attribute("data-status") == "done"
    assert "Ah" in (await answer.text_content() or "")
    await wait_until(lambda: (van.monitor.value("climate/room/preheat_start") or 0) > 0,
                     what="pre-heat planned on MQTT")
    # planned: it can be cancelled from here
    await page.get_by_test_id("preheat-planned-room").wait_for()
    await page.get_by_test_id("preheat-cancel-room").click()
    await page.get_by_test_id("preheat-planned-room").wait_for(state="hidden")
    await wait_until(lambda: van.monitor.value("climate/room/preheat_start") == 0,
                     what="pre-heat cancelled on MQTT")
