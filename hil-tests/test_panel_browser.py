"""The crew panel in a real browser: Debian's Chromium, headless, driven by Playwright, against
the real supervisor process running the simulated van."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Locator, Page, WebSocketRoute, async_playwright
from testsupport import needs_tool

from conftest import Van, start_van
from drivers.profile import load_profile
from harness import wait_until
from supervisor.climate.rest_guard import RestGuard
from vansim.room_node_host import RoomNodeHost

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
                     edit_snapshot: MessageEdit | None = None, touch: bool = False) -> Page:
    """A fresh page on the panel; ``edit_hello`` and ``edit_snapshot`` may change the
    WebSocket's hello and snapshot on their way; ``touch``: a touchscreen (``tap``)."""
    width, height = SIZES[size]
    page = await browser.new_page(viewport={"width": width, "height": height}, has_touch=touch)
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
                   edit_snapshot: MessageEdit | None = None, touch: bool = False) -> Page:
    page = await open_panel(browser, van, size, edit_hello, edit_snapshot, touch)
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


def polish_number(text: str) -> float:
    """A number as the panel shows it in Polish (``3,4``)."""
    return float(text.replace(",", "."))


def polish_minutes(text: str) -> int:
    """A duration as the panel shows it in Polish (``40 min``, ``1 godz. 10 min``)."""
    hours = re.search(r"(\d+) godz\.", text)
    minutes = re.search(r"(\d+) min", text)
    return (int(hours[1]) * 60 if hours else 0) + (int(minutes[1]) if minutes else 0)


async def wait_for_text(page: Page, test_id: str, text: str) -> None:
    """Until the element's text (its value's number part, for a value) is ``text``."""
    await page.wait_for_function(
        "([el, text]) => (el.querySelector('.num') || el).textContent === text",
        arg=[await page.get_by_test_id(test_id).element_handle(), text])


async def press(page: Page, test_id: str) -> Locator:
    """Click the toggle button ``test_id`` (not pressed before) and wait until it is pressed."""
    button = page.get_by_test_id(test_id)
    assert await button.get_attribute("aria-pressed") == "false"
    await button.click()
    await page.wait_for_function("el => el.getAttribute('aria-pressed') === 'true'",
                                 arg=await button.element_handle())
    return button


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
    await press(page, "climate-room-mode-heat")
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
    # why, in Polish: the supervisor's reason with its numbers
    english = await wait_until(lambda: van.monitor.value("climate/ac/reason"),
                               what="the A/C's reason on MQTT")
    numbers = re.fullmatch(r"on battery below (\d+) % SOC \((\d+) %\)", english)
    assert numbers, english
    polish = texts("pl")["reason.battery_low"].format(min=numbers[1], soc=numbers[2])
    await wait_for_text(page, value_id("climate/ac/reason"), polish)
    assert "60 %" in polish
    assert van.sim.relay("climate_relays", "relay_2") is False


async def test_climate_heater_says_why_in_polish_and_english(browser: Browser, van: Van) -> None:
    van.sim.plant.thermal.zones["room"].temperature_c = 12.0
    page = await climate_screen(browser, van)
    await page.get_by_test_id("climate-room-mode-heat").click()
    await wait_until(lambda: van.monitor.value("climate/heater/reason") == "heating room",
                     what="the heater heating the room on MQTT")
    for lang in ("pl", "en"):
        if lang == "en":
            await page.get_by_test_id("lang-toggle").click()
            await page.wait_for_function("() => document.documentElement.lang === 'en'")
        words = texts(lang)
        await wait_for_text(page, value_id("climate/heater/reason"),
                            words["reason.heating"].format(zones=words["zone.room"]))
        await wait_for_text(page, value_id("climate/room/reason"), words["climate.why.heat"])


def rest_reasons() -> list[str]:
    """What the heater's and the compressor's rest guards say (supervisor/climate/rest_guard.py):
    after a restart of the controller, after a stop, after a power loss."""
    heater, compressor = RestGuard(300, 0, now=0, machine="heater"), RestGuard(240, 0, now=0)
    said = [heater.may_start(10), compressor.may_start(110)]
    compressor.started(300)
    compressor.stopped(400)
    said.append(compressor.may_start(400))
    compressor.power_lost(500)
    said.append(compressor.may_start(610))
    return [text for text in said if text is not None]


# What the climate subsystem says why (supervisor/climate/subsystem.py, thermostat.py): one of
# each kind, with the rest guards' (rest_reasons).
CLIMATE_REASONS = (
    "sensor", "off", "frost", "heat", "cool", "fan", "satisfied", "changeover", "min_cycle",
    "pre-heat", "heating room, crew", "cooling room", "ventilation crew", "room too warm",
    "no temperature reading in crew", "power shed: battery below 20 %",
    "the A/C runs in the same zone", "the heater runs in the same zone",
    "CO alarm: combustion stopped", "the CO alarm cannot be read: no combustion",
    "the CO detector reports a fault: no combustion",
    "locked out after a CO alarm: re-enable it on board once the air is checked",
    "no battery reading", "on battery below 60 % SOC (50 %)", "no reading of the inverter's load",
    "the inverter has no headroom (9.5 A + 6.0 A > 12.0 A)", "no AC power (the inverter is off)",
    "waiting for the heater's first answer",
    "the heater stopped by itself (E29): not started again until a climate setting changes or "
    "its alarm is acknowledged",
    "the heater did not react to its start: not started again until a climate setting changes "
    "or its alarm is acknowledged")
REASON_TEXT_JS = """async (reasons) => {
  const { reasonText } = await import('/static/i18n.js');  // the app's module, its dictionary
  return reasons.map((reason) => reasonText(reason)); }"""


async def test_every_climate_reason_has_a_polish_text(browser: Browser, van: Van) -> None:
    page = await climate_screen(browser, van)
    reasons = [*CLIMATE_REASONS, *rest_reasons()]
    shown = dict(zip(reasons, await page.evaluate(REASON_TEXT_JS, reasons), strict=True))
    untranslated = [reason for reason, polish in shown.items() if polish == reason]
    assert untranslated == []
    broken = [polish for polish in shown.values() if "{" in polish or "undefined" in polish]
    assert broken == []
    # the captured parts: zone names, numbers with the Polish decimal sign, causes
    pl = texts("pl")
    room, crew = pl["zone.room"], pl["zone.crew"]
    assert shown["heating room, crew"] == pl["reason.heating"].format(zones=f"{room}, {crew}")
    assert shown["the inverter has no headroom (9.5 A + 6.0 A > 12.0 A)"] == \
        pl["reason.no_headroom"].format(load="9,5", ac="6,0", max="12,0")
    assert shown["compressor rest: 2 min 10 s left (power loss)"] == \
        pl["reason.compressor_rest_after"].format(left="2 min 10 s", why=pl["reason.power_loss"])
    assert shown["compressor rest: 4 min left"] == pl["reason.compressor_rest"].format(left="4 min")
    # a part no row knows, and a reason added to the supervisor later: as they came
    assert shown["power shed: battery below 20 %"] == \
        pl["reason.power_shed"].format(why="battery below 20 %")
    later = ["the heater is having a rest day", "heating"]
    assert await page.evaluate(REASON_TEXT_JS, later) == later


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


PREHEAT_COST = ("climate/preheat/start_ah", "climate/preheat/ah_per_h")


def preheat_cost_on_mqtt(van: Van) -> tuple[float, float] | None:
    """What one heater start and an hour of heating cost the battery (Ah), as published."""
    start_ah, ah_per_h = (van.monitor.value(point) for point in PREHEAT_COST)
    return None if start_ah is None or ah_per_h is None else (start_ah, ah_per_h)


async def preheat_cost_shown(page: Page) -> tuple[int, float]:
    """The pre-heat form's duration (minutes) and the battery cost it shows for it (Ah)."""
    duration = await page.get_by_test_id("preheat-duration").text_content() or ""
    cost = await page.get_by_test_id("preheat-cost").text_content() or ""
    assert cost.startswith(texts("pl")["preheat.cost"].split("{ah}")[0]), cost
    ah = re.search(r"(\d+,\d) Ah", cost)
    assert ah, cost
    return polish_minutes(duration), polish_number(ah[1])


async def test_climate_preheat_cost_follows_the_duration(browser: Browser, van: Van) -> None:
    start_ah, ah_per_h = await wait_until(lambda: preheat_cost_on_mqtt(van),
                                          what="the pre-heat's cost on MQTT")
    page = await climate_screen(browser, van)
    cost = await page.get_by_test_id("preheat-cost").element_handle()
    await page.wait_for_function("el => el.dataset.known === 'true'", arg=cost)
    duration = page.get_by_test_id("preheat-duration")
    shown: list[tuple[int, float]] = [await preheat_cost_shown(page)]
    for button in ("plus", "plus", "minus"):  # the crew changes the duration: the cost follows
        before = await duration.text_content()
        await page.get_by_test_id(f"preheat-duration-{button}").click()
        await page.wait_for_function("([el, old]) => el.textContent !== old",
                                     arg=[await duration.element_handle(), before])
        shown.append(await preheat_cost_shown(page))
    minutes = [m for m, _ in shown]
    assert minutes == [minutes[0], minutes[0] + 10, minutes[0] + 20, minutes[0] + 10]
    for m, ah in shown:  # one decimal shown
        assert ah == pytest.approx(start_ah + ah_per_h * m / 60, abs=0.051), (m, ah)
    assert shown[2][1] > shown[0][1]
    # all of it before anything was sent
    assert await page.get_by_test_id("preheat-answer").is_hidden()
    assert van.monitor.value("climate/room/preheat_start") == 0


async def test_climate_preheat_cost_unknown_without_its_points(browser: Browser,
                                                               van: Van) -> None:
    def without_cost(snapshot: dict[str, Any]) -> None:
        for point in PREHEAT_COST:
            del snapshot["points"][point]

    page = await climate_screen(browser, van, edit_snapshot=without_cost)
    cost = page.get_by_test_id("preheat-cost")
    await page.wait_for_function("el => el.dataset.known === 'false'",
                                 arg=await cost.element_handle())
    assert (await cost.text_content() or "") == texts("pl")["preheat.cost_unknown"]
    assert not re.search(r"\d", await cost.text_content() or "")  # no number for a cost


async def test_climate_preheat_answer_tells_the_battery_cost(browser: Browser, van: Van) -> None:
    page = await climate_screen(browser, van)
    await page.get_by_test_id("preheat-zone-room").click()
    seen = len(van.monitor.messages)
    await page.get_by_test_id("preheat-send").click()
    answer = page.get_by_test_id("preheat-answer")
    await answer.wait_for()
    assert await answer.get_attribute("data-status") == "done"
    # the message is the command's own result, as the supervisor audited it
    result = await wait_until(lambda: next(
        (value for topic, value, _ in van.monitor.messages[seen:] if topic == "event"
         and value.get("kind") == "command" and value.get("action") == "climate/preheat"),
        None), what="the pre-heat's result on MQTT")
    assert result["status"] == "done" and result["source"] == "panel"
    assert "Ah" in result["message"]
    assert await answer.get_by_test_id("preheat-answer-text").text_content() == result["message"]
    assert await page.get_by_test_id("toast").is_hidden()  # a success is no error
    await wait_until(lambda: (van.monitor.value("climate/room/preheat_start") or 0) > 0,
                     what="pre-heat planned on MQTT")
    # planned: it can be cancelled from here
    await page.get_by_test_id("preheat-planned-room").wait_for()
    await page.get_by_test_id("preheat-cancel-room").click()
    await page.get_by_test_id("preheat-planned-room").wait_for(state="hidden")
    await wait_until(lambda: van.monitor.value("climate/room/preheat_start") == 0,
                     what="pre-heat cancelled on MQTT")


# ---- the room screen ----------------------------------------------------------------------------

ROOM_NODE = "room_node"  # config/demo.toml: the room node, served by its real firmware
SOUND_MASKING = ("climate_relays", "relay_5")  # [room.session]
RECORDING_POWER = ("climate_relays", "relay_7")
PANIC_SHORT_DELIVERY_S = "5"  # the shortest delivery timeout the config allows


@pytest.fixture
async def room_van(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Van]:
    """The van whose panic counts as not delivered 5 s after the press without HQ's receipt."""
    async with start_van(monkeypatch, {"MCW_PANIC_DELIVERY_S": PANIC_SHORT_DELIVERY_S}) as whole:
        yield whole


async def go_to(page: Page, screen: str) -> None:
    await page.get_by_test_id(f"nav-{screen}").click()
    await page.get_by_test_id(f"screen-{screen}").wait_for()


async def room_screen(browser: Browser, van: Van, pin: str = "1234") -> Page:
    """Unlocked (the crew PIN by default) on the room screen."""
    page = await unlocked(browser, van, pin)
    await go_to(page, "room")
    return page


def room_node(van: Van) -> RoomNodeHost:
    return van.sim.room_node(ROOM_NODE)


async def wait_attr(page: Page, test_id: str, attr: str, value: str) -> None:
    """Until the element's data-<attr> is ``value``."""
    await page.wait_for_function("([el, attr, v]) => el.dataset[attr] === v",
                                 arg=[await page.get_by_test_id(test_id).element_handle(),
                                      attr, value])


def mqtt_alarm(van: Van, alarm_id: str) -> dict[str, Any]:
    """The retained alarm as HQ has it ({} when none)."""
    value = van.monitor.latest.get(f"alarm/{alarm_id}")
    return value if isinstance(value, dict) else {}


async def enter_pin_again(page: Page, pin: str) -> None:
    """The PIN typed on the dialog that asks for it again."""
    await page.get_by_test_id("reauth-dialog").wait_for()
    for digit in pin:
        await page.get_by_test_id(f"reauth-key-{digit}").click()
    await page.get_by_test_id("reauth-ok").click()


async def test_room_session_started_recorded_and_ended_from_the_panel(browser: Browser,
                                                                      van: Van) -> None:
    page = await room_screen(browser, van)
    pl = texts("pl")
    # what a session does, in plain words, before it is started
    effects = await page.get_by_test_id("session-effects").inner_text()
    for effect in ("door_sign", "doorbell", "masking", "light", "climate", "recording"):
        assert pl[f"session.does_{effect}"] in effects
    await page.get_by_test_id("session-start-recording").click()
    await page.get_by_test_id("confirm-yes").click()  # recording is asked about first
    await wait_attr(page, "session-card", "active", "true")
    await page.get_by_test_id("session-recording").wait_for()
    await wait_until(lambda: van.monitor.value("room/session/active") is True,
                     what="the session on MQTT")
    node = room_node(van)  # the door sign and the recording light are the node's pins
    await wait_until(lambda: node.outputs()["door_sign"] == 1
                     and node.outputs()["recording_light"] == 1, what="door sign and light on")
    await wait_until(lambda: van.sim.relay(*SOUND_MASKING) and van.sim.relay(*RECORDING_POWER),
                     what="sound masking and the recorder switched on")
    # the timer runs from the local start time, which HQ never gets
    timer = page.get_by_test_id("session-timer")
    await timer.wait_for()
    shown = await timer.text_content() or ""
    assert re.fullmatch(r"0:00:\d\d", shown), shown
    await page.wait_for_function("([el, old]) => el.textContent !== old",
                                 arg=[await timer.element_handle(), shown])
    assert not [topic for topic in van.monitor.latest
                if topic in ("state/room/session/since", "state/room/session/recording")]
    # the recording stops, the session goes on
    await page.get_by_test_id("session-recording-stop").click()
    await page.get_by_test_id("session-recording").wait_for(state="hidden")
    await wait_until(lambda: node.outputs()["recording_light"] == 0
                     and not van.sim.relay(*RECORDING_POWER), what="the recording off")
    assert node.outputs()["door_sign"] == 1 and van.monitor.value("room/session/active")
    assert await timer.is_visible()
    # ended: asked first
    await page.get_by_test_id("session-stop").click()
    await page.get_by_test_id("confirm-yes").click()
    await wait_attr(page, "session-card", "active", "false")
    assert await timer.is_hidden()
    await wait_until(lambda: van.monitor.value("room/session/active") is False,
                     what="the session's end on MQTT")
    await wait_until(lambda: node.outputs()["door_sign"] == 0 and not van.sim.relay(
        *SOUND_MASKING), what="door sign and sound masking off")


async def test_panic_shows_its_delivery_and_is_cancelled_only_with_the_pin_again(
    browser: Browser, van: Van,
) -> None:
    page = await room_screen(browser, van)
    pl = texts("pl")
    van.sim.set_input("panic_crew", True)  # the GPIO panic button of the crew area
    await wait_attr(page, "panic-card", "active", "true")
    assert await page.get_by_test_id("panic-card").get_attribute("role") == "alert"
    await page.wait_for_function("([el, button]) => el.textContent.endsWith(button)",
                                 arg=[await page.get_by_test_id("panic-source").element_handle(),
                                      pl["panic_button.crew"]])
    since = await wait_until(lambda: van.monitor.value("room/panic/since"),
                             what="the panic's time on MQTT")
    hhmm = await page.evaluate("s => new Intl.DateTimeFormat('pl-PL', {hour: '2-digit', "
                               "minute: '2-digit', hourCycle: 'h23'}).format(s * 1000)", since)
    assert hhmm in (await page.get_by_test_id("panic-since").text_content() or "")
    # on the van's broker: sent, and said so; not "received" before HQ says it has it
    await wait_attr(page, "panic-card", "delivery", "sent")
    await wait_for_text(page, value_id("room/panic/delivery"), pl["enum.panic_delivery.sent"])
    assert pl["enum.panic_delivery.received"] not in await page.inner_text("main")
    panic = str(mqtt_alarm(van, "room/panic")["detail"]).split()[0]
    result = await van.monitor.command("room/panic_received",
                                       {"id": "hq-receipt-1", "args": {"panic": panic}},
                                       role="hq")
    assert result["status"] == "done"
    await wait_attr(page, "panic-card", "delivery", "received")
    await wait_for_text(page, value_id("room/panic/delivery"),
                        pl["enum.panic_delivery.received"])
    van.sim.set_input("panic_crew", False)
    # cancelling asks for the PIN again: a wrong one cancels nothing
    await page.get_by_test_id("panic-cancel").click()
    await enter_pin_again(page, "0000")
    await page.get_by_test_id("reauth-error").wait_for()
    assert van.monitor.value("room/panic/active") is True
    assert await page.get_by_test_id("panic-card").get_attribute("data-active") == "true"
    for digit in "1234":
        await page.get_by_test_id(f"reauth-key-{digit}").click()
    await page.get_by_test_id("reauth-ok").click()
    await page.get_by_test_id("reauth-dialog").wait_for(state="detached")
    await wait_attr(page, "panic-card", "active", "false")
    await wait_until(lambda: van.monitor.value("room/panic/active") is False
                     and not mqtt_alarm(van, "room/panic"), what="the panic cancelled on MQTT")


async def test_panic_not_delivered_tells_the_crew_to_phone(browser: Browser,
                                                           room_van: Van) -> None:
    van = room_van
    page = await unlocked(browser, van)
    pl = texts("pl")
    van.sim.set_input("panic_crew", True)
    banner = page.get_by_test_id("panic-banner")  # on every other screen
    await banner.wait_for()
    await banner.click()
    await page.get_by_test_id("screen-room").wait_for()
    assert await banner.is_hidden()  # the room screen shows the panic itself
    await wait_attr(page, "panic-card", "delivery", "not_delivered")  # no receipt from HQ
    lost = page.get_by_test_id("panic-not-delivered")
    await lost.wait_for()
    text = await lost.inner_text()
    assert pl["panic.not_delivered"] in text and "112" in text and "997" in text
    await wait_for_text(page, value_id("room/panic/delivery"),
                        pl["enum.panic_delivery.not_delivered"])
    assert van.monitor.value("room/panic/delivery") == "not_delivered"


async def test_walk_test_shows_a_test_banner_on_every_screen(browser: Browser, van: Van) -> None:
    page = await room_screen(browser, van)
    banner = page.get_by_test_id("walk-test-banner")
    assert await banner.is_hidden()
    await page.get_by_test_id("walk-test").click()
    await banner.wait_for()
    assert texts("pl")["walk.banner"] in (await banner.inner_text())
    await wait_until(lambda: van.monitor.value("room/walk_test/active") is True,
                     what="the walk test on MQTT")
    await go_to(page, "home")
    assert await banner.is_visible()
    van.sim.set_input("panic_crew", True)  # a press in the test: a test for HQ, no panic
    await wait_until(lambda: mqtt_alarm(van, "room/panic_test").get("active"),
                     what="the test press on MQTT")
    van.sim.set_input("panic_crew", False)
    assert van.monitor.value("room/panic/active") is False
    assert await page.get_by_test_id("panic-banner").is_hidden()
    await go_to(page, "room")
    await page.get_by_test_id("walk-test-last").wait_for()
    await page.get_by_test_id("walk-test").click()
    await banner.wait_for(state="hidden")
    await wait_until(lambda: van.monitor.value("room/walk_test/active") is False,
                     what="the walk test's end on MQTT")


# ---- the lighting screen ------------------------------------------------------------------------

CREW_CEILING = ("relays", "relay_7")  # [[lighting.light]] of config/demo.toml


async def lighting_screen(browser: Browser, van: Van) -> Page:
    page = await unlocked(browser, van)
    await go_to(page, "lighting")
    return page


def levels(van: Van, **expected: float) -> bool:
    return all(van.monitor.value(f"lighting/{name}/level") == level
               for name, level in expected.items())


async def test_lighting_scene_sets_the_lights(browser: Browser, van: Van) -> None:
    page = await lighting_screen(browser, van)
    work = await press(page, "scene-work")
    await wait_until(lambda: van.monitor.value("lighting/scene") == "work"
                     and levels(van, crew_ceiling=100, night_red=0, room_calm=80),
                     what="the work scene's levels on MQTT")
    await wait_until(lambda: van.monitor.value("lighting/crew_ceiling/on") is True
                     and van.sim.relay(*CREW_CEILING), what="the ceiling light read back on")
    await wait_attr(page, "light-crew_ceiling-toggle", "state", "on")
    await wait_until(lambda: room_node(van).outputs()["calm_light"] == 800,
                     what="the room's dimmer at 80 %")
    await wait_for_text(page, "light-room_calm-level", "80 %")
    # the exterior scene: the work lights switch themselves off in 30 min
    await page.get_by_test_id("scene-exterior").click()
    await wait_until(lambda: levels(van, work_lights=100), what="the work lights on")
    countdown = page.get_by_test_id("light-work_lights-auto-off")
    await countdown.wait_for()
    left = re.search(r"(\d+):(\d\d)", await countdown.text_content() or "")
    assert left and 25 * 60 <= int(left[1]) * 60 + int(left[2]) <= 30 * 60, left
    assert await work.get_attribute("aria-pressed") == "false"  # the last scene is pressed


async def test_lighting_dimmer_slider_sets_a_level(browser: Browser, van: Van) -> None:
    page = await lighting_screen(browser, van)
    assert await page.get_by_test_id("light-room_calm-toggle").count() == 0  # a slider
    assert await page.get_by_test_id("light-crew_ceiling-slider").count() == 0  # a switch
    await page.get_by_test_id("light-room_calm-slider").fill("40")
    await wait_until(lambda: levels(van, room_calm=40), what="40 % on MQTT")
    await wait_for_text(page, "light-room_calm-level", "40 %")
    await wait_until(lambda: room_node(van).outputs()["calm_light"] == 400,
                     what="the node's PWM at 40 % after the fade")
    await page.get_by_test_id("light-room_calm-minus").click()
    await wait_until(lambda: levels(van, room_calm=30), what="30 % on MQTT")
    await wait_for_text(page, "light-room_calm-level", "30 %")


async def test_night_scene_switches_night_mode_on_and_it_is_remembered(browser: Browser,
                                                                       van: Van) -> None:
    page = await lighting_screen(browser, van)
    assert await page.evaluate("() => document.documentElement.className") == "day"
    await page.get_by_test_id("scene-night").click()
    await page.wait_for_function("() => document.documentElement.classList.contains('night')")
    await wait_until(lambda: levels(van, night_red=100, crew_ceiling=0),
                     what="the night scene's levels")
    # red on black
    background, colour = await page.evaluate("""() => [getComputedStyle(document.body)
        .backgroundColor, getComputedStyle(document.body).color]""")
    assert background == "rgb(0, 0, 0)"
    red, green, blue = (int(x) for x in re.findall(r"\d+", colour)[:3])
    assert red > 2 * green and red > 2 * blue, colour
    assert await page.evaluate("() => localStorage.getItem('mcw.night')") == "1"
    await page.reload()  # the session and the night mode outlive a reload
    await page.get_by_test_id("screen-home").wait_for()
    assert await page.evaluate("() => document.documentElement.className") == "night"
    await go_to(page, "lighting")
    toggle = page.get_by_test_id("lighting-night-toggle")  # off again on the screen
    assert await toggle.get_attribute("aria-pressed") == "true"
    await toggle.click()
    await page.wait_for_function("() => document.documentElement.classList.contains('day')")
    assert await page.evaluate("() => localStorage.getItem('mcw.night')") == "0"


async def test_exterior_light_refused_while_driving_says_why(browser: Browser, van: Van) -> None:
    van.sim.set_input("ignition", True)
    page = await lighting_screen(browser, van)
    await wait_until(lambda: van.monitor.value("vehicle/driving") is True, what="driving")
    await page.get_by_test_id("lighting-driving").wait_for()
    await page.get_by_test_id("light-work_lights-interlock").wait_for()
    await page.get_by_test_id("light-work_lights-toggle").click()
    answer = page.get_by_test_id("lighting-answer")
    await answer.wait_for()
    assert await answer.get_attribute("data-status") == "rejected"
    pl = texts("pl")
    assert await page.get_by_test_id("lighting-answer-text").text_content() == \
        pl["reason.exterior_driving"].format(light=pl["light.work_lights"])
    assert van.monitor.value("lighting/work_lights/level") == 0
    assert not van.sim.relay("climate_relays", "relay_4")


# ---- the duress PIN -----------------------------------------------------------------------------

VISIBLE_TEST_IDS_JS = """() => [...document.querySelectorAll('[data-testid]')]
  .filter((el) => el.offsetParent !== null).map((el) => el.dataset.testid).sort()"""


async def test_duress_pin_looks_like_the_crew_pin_and_calls_for_help_silently(
    browser: Browser, van: Van,
) -> None:
    crew = await unlocked(browser, van, "1234")
    duress = await unlocked(browser, van, "1235")  # another tablet, the demo's duress PIN
    await wait_until(lambda: mqtt_alarm(van, "room/panic").get("active")
                     and van.monitor.value("room/panic/source") == "duress",
                     what="the duress panic on MQTT")
    audit = await wait_until(lambda: next(
        (value for topic, value, _ in van.monitor.messages if topic == "event"
         and value.get("kind") == "command" and value.get("action") == "room/duress"), None),
        what="room/duress audited on MQTT")
    assert (audit["role"], audit["source"], audit["status"]) == ("crew", "panel", "done")
    # both tablets show exactly the same: no panic anywhere
    for page in (crew, duress):
        assert await page.get_by_test_id("panic-banner").is_hidden()
    assert await duress.evaluate(VISIBLE_TEST_IDS_JS) == await crew.evaluate(VISIBLE_TEST_IDS_JS)
    assert await duress.get_by_test_id("home-alarms").inner_text() == \
        await crew.get_by_test_id("home-alarms").inner_text()
    # the header's clock may turn a minute between the two reads
    clock = re.compile(r"\b\d{1,2}:\d{2}\b")
    assert clock.sub("HH:MM", await duress.inner_text("header")) == \
        clock.sub("HH:MM", await crew.inner_text("header"))
    await go_to(duress, "room")
    assert await duress.get_by_test_id("panic-card").get_attribute("data-active") == "false"
    await go_to(duress, "alarms")
    await duress.wait_for_function(  # the event log has come
        "text => !document.querySelector('main').innerText.includes(text)",
        arg=texts("pl")["chart.loading"])
    assert await duress.get_by_test_id("alarm-room-panic").count() == 0
    shown = await duress.inner_text("main")
    assert "NAPAD" not in shown and "PANIC" not in shown
    # the event log behind every page (the technician's command list too) has no trace
    logged = await duress.evaluate("fetch('/api/events?limit=500').then(r => r.json())")
    assert not [e for e in logged if e.get("action") == "room/duress"], logged
    # HQ has it; HQ ends it
    assert van.monitor.value("room/panic/active") is True
    result = await van.monitor.command("room/panic_ack", {"id": "hq-ack-1"}, role="hq")
    assert result["status"] == "done"
    await wait_until(lambda: not mqtt_alarm(van, "room/panic"), what="the panic ended")


async def test_comms_screen_shows_the_link_the_position_and_switches_the_watchdog(
        browser: Browser, van: Van) -> None:
    page = await unlocked(browser, van)
    await go_to(page, "comms")
    await wait_for_text(page, "value-comms-lte-network_type", "LTE")
    await wait_for_text(page, "value-comms-lte-operator", "Plus")
    # the exact position is on board (never on MQTT): the crew sees it here
    lat = page.get_by_test_id("value-comms-position-exact_lat").locator(".num")
    await page.wait_for_function("el => /^52,2297/.test(el.textContent)",  # Polish: comma
                                 arg=await lat.element_handle())
    # no echo at HQ in this van: the path is being checked, then down (90 s); never "up"
    state = await page.get_by_test_id("value-comms-hq-state").locator(".num").text_content()
    assert state in ("Sprawdzanie łączności z centralą", "Brak łączności z centralą"), state
    switch = page.get_by_test_id("comms-watchdog")
    await wait_attr(page, "comms-watchdog", "state", "on")
    await switch.click()
    await wait_until(lambda: van.monitor.value("comms/watchdog/enabled") is False,
                     what="the watchdog off on MQTT")
    await wait_attr(page, "comms-watchdog", "state", "off")
    # the link's history on the same screen: the crew's switch is in it (the screen reloads
    # the log when the watchdog's points change, and every 30 s)
    history = page.locator(".events")
    await history.get_by_text("Strażnik routera wyłączony").first.wait_for(timeout=45_000)


# ---- the technician's diagnostics screen ---------------------------------------------------------

async def diagnostics_screen(browser: Browser, van: Van, touch: bool = False) -> Page:
    """Unlocked with the technician PIN on the diagnostics screen, the relay board online;
    ``touch``: on a touchscreen, driven by taps."""
    page = await unlocked(browser, van, "4321", touch=touch)
    await go_to(page, "diagnostics")
    await wait_attr(page, "device-relays", "state", "online")
    return page


async def test_diagnostics_lists_a_silent_board_first_and_shows_its_blocks_and_changes(
        browser: Browser, van: Van) -> None:
    page = await diagnostics_screen(browser, van)
    van.sim.set_silent("relays", True)
    await page.wait_for_function(
        "el => el.dataset.state === 'offline'",
        arg=await page.get_by_test_id("device-relays").element_handle(), timeout=60_000)
    # failing ones first: the silent board heads the list, with its errors and last error
    first = await page.evaluate(
        "() => document.querySelector('[data-testid=device-list]').firstElementChild"
        ".dataset.testid")
    assert first == "device-relays"
    assert await page.get_by_test_id("device-relays-errors").locator(".bad").count() > 0
    assert await page.get_by_test_id("device-relays-last-error").is_visible()
    # its detail: the blocks the worker reads it with (as on MQTT) and the change this page saw
    await page.get_by_test_id("device-relays").click()
    await page.get_by_test_id("device-detail-relays").wait_for()
    status = van.monitor.latest["device/relays/status"]
    assert status["blocks"], status
    for table, start, _count in status["blocks"]:
        await page.get_by_test_id(f"block-{table}-{start}").wait_for()
    history = page.get_by_test_id("device-health-history")
    pl = texts("pl")
    await history.get_by_text(pl["dev.offline"]).first.wait_for()
    assert pl["dev.online"] in await history.inner_text()  # where it came from
    # and the supervisor's event log has it (kept across pages and restarts, also at HQ)
    logged = page.get_by_test_id("device-detail-relays").locator(".event.kind-device")
    await logged.get_by_text(f"relays: {pl['dev.offline']}").first.wait_for()
    await page.get_by_test_id("device-back").click()
    await page.get_by_test_id("device-list").wait_for()


async def test_diagnostics_reads_a_register_typed_by_name_and_shows_words_and_value(
        browser: Browser, van: Van) -> None:
    """Where a keyboard exists (a technician's laptop), a name is typed: what is typed narrows
    the list of the device's registers."""
    page = await diagnostics_screen(browser, van)
    await page.get_by_test_id("device-relays").click()
    names = page.get_by_test_id("diag-read-names")
    await names.get_by_test_id("diag-read-name-relay_1").wait_for()
    await page.get_by_test_id("diag-read-register").fill("soft")
    await page.wait_for_function("el => el.querySelectorAll('button').length === 1",
                                 arg=await names.element_handle())
    await names.get_by_test_id("diag-read-name-software_version").wait_for()
    await page.get_by_test_id("diag-read-register").fill("software_version")
    await page.get_by_test_id("diag-read-go").click()
    await wait_attr(page, "diag-read-result", "status", "done")
    assert (await page.get_by_test_id("diag-read-value").inner_text()).endswith(
        "software_version = 2.0")
    assert "0x00c8" in await page.get_by_test_id("diag-read-words").inner_text()
    assert await page.evaluate(SMALL_TARGETS_JS) == []  # the detail is for fingers too
    SCREENS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENS / "diagnostics-device-1280x800.png"), full_page=True)
    reads = await wait_until(lambda: [
        v for t, v, _ in van.monitor.messages if t == "event" and isinstance(v, dict)
        and v.get("action") == "diag/read" and v.get("source") == "panel"], what="audited")
    assert {r["role"] for r in reads} == {"technician"}


async def tap_number(page: Page, digits: str) -> None:
    """Digits tapped on the open keypad."""
    for digit in digits:
        await page.get_by_test_id(f"numpad-key-{digit}").tap()


async def test_diagnostics_reads_a_register_by_address_with_taps_only(
        browser: Browser, van: Van) -> None:
    """The kiosk has no keyboard: the address and the count are tapped on a keypad."""
    page = await diagnostics_screen(browser, van, touch=True)
    await page.get_by_test_id("device-relays").tap()
    await page.get_by_test_id("diag-read-mode-address").tap()
    await page.get_by_test_id("diag-read-table-holding").tap()
    form = page.get_by_test_id("diag-read-form")
    assert await form.locator("input:visible").count() == 0  # nothing that wants a keyboard
    await page.get_by_test_id("diag-read-address").tap()
    dialog = page.get_by_test_id("numpad-dialog")
    assert await dialog.get_by_role("heading").inner_text() == texts("pl")["diag.read.address"]
    assert await page.get_by_test_id("numpad-range").inner_text() == "Od 0 do 65535"
    await tap_number(page, "32768")
    assert await page.get_by_test_id("numpad-value").inner_text() == "32768"
    assert await page.evaluate(SMALL_TARGETS_JS) == []  # the keypad is for fingers
    await page.get_by_test_id("numpad-ok").tap()
    await dialog.wait_for(state="detached")
    assert await page.get_by_test_id("diag-read-address").get_attribute("data-value") == "32768"
    await page.get_by_test_id("diag-read-count").tap()  # 1 already: deleted and tapped again
    assert await page.get_by_test_id("numpad-value").inner_text() == "1"
    await page.get_by_test_id("numpad-back").tap()
    assert await page.get_by_test_id("numpad-value").inner_text() == ""
    await tap_number(page, "1")
    await page.get_by_test_id("numpad-ok").tap()
    await dialog.wait_for(state="detached")
    await page.get_by_test_id("diag-read-go").tap()
    await page.wait_for_function(
        "el => el.dataset.status === 'done' && !el.querySelector('[data-testid=diag-read-value]')",
        arg=await page.get_by_test_id("diag-read-result").element_handle())
    assert "0x00c8" in await page.get_by_test_id("diag-read-words").inner_text()
    reads = await wait_until(lambda: [
        v for t, v, _ in van.monitor.messages if t == "event" and isinstance(v, dict)
        and v.get("action") == "diag/read" and v.get("source") == "panel"], what="audited")
    assert reads[-1]["args"] == {"device": "relays", "table": "holding", "address": 32768,
                                 "count": 1}


async def test_diagnostics_keypad_refuses_numbers_out_of_range_and_says_why(
        browser: Browser, van: Van) -> None:
    page = await diagnostics_screen(browser, van, touch=True)
    await page.get_by_test_id("device-relays").tap()
    await page.get_by_test_id("diag-read-mode-address").tap()
    out_of_range = texts("pl")["num.out_of_range"]
    shown, error = page.get_by_test_id("numpad-value"), page.get_by_test_id("numpad-error")
    # the address: the digit that would go past 65535 is refused at once, the reason shown
    await page.get_by_test_id("diag-read-address").tap()
    await tap_number(page, "65536")
    assert await shown.inner_text() == "6553"
    assert await error.inner_text() == out_of_range.format(value="65536", min="0", max="65535")
    await page.keyboard.type("99")  # a keyboard, where there is one, is bounded alike
    assert await shown.inner_text() == "6553"
    assert await error.is_visible()
    await page.get_by_test_id("numpad-cancel").tap()
    await page.get_by_test_id("numpad-dialog").wait_for(state="detached")
    assert await page.get_by_test_id("diag-read-address").get_attribute("data-value") == "0"
    # the count: nothing, or 0, is not taken
    await page.get_by_test_id("diag-read-count").tap()
    await page.get_by_test_id("numpad-clear").tap()
    await page.get_by_test_id("numpad-ok").tap()
    assert await error.inner_text() == texts("pl")["num.empty"]
    await tap_number(page, "0")
    await page.get_by_test_id("numpad-ok").tap()
    assert await error.inner_text() == out_of_range.format(value="0", min="1", max="125")
    await page.get_by_test_id("numpad-dialog").wait_for()  # still open: nothing taken
    await tap_number(page, "126")  # the 0 replaced by 1, then 12, then 126 refused
    assert await shown.inner_text() == "12"
    await page.get_by_test_id("numpad-ok").tap()
    await page.get_by_test_id("numpad-dialog").wait_for(state="detached")
    assert await page.get_by_test_id("diag-read-count").get_attribute("data-value") == "12"


async def test_diagnostics_reads_a_register_picked_from_the_list(
        browser: Browser, van: Van) -> None:
    """The device's readable registers (its profile's) are listed to tap: no typing."""
    page = await diagnostics_screen(browser, van, touch=True)
    await page.get_by_test_id("device-relays").tap()
    names = page.get_by_test_id("diag-read-names")
    await names.get_by_test_id("diag-read-name-software_version").wait_for()
    listed = await names.locator("button").evaluate_all(
        "els => els.map(el => el.dataset.testid.replace('diag-read-name-', ''))")
    profile = load_profile("waveshare_relay_8ch")
    assert listed == sorted(r.name for r in profile.registers if r.readable)
    chosen = names.get_by_test_id("diag-read-name-software_version")
    await chosen.tap()
    assert await chosen.get_attribute("aria-pressed") == "true"
    assert await page.get_by_test_id("diag-read-register").input_value() == "software_version"
    await page.get_by_test_id("diag-read-go").tap()
    await wait_attr(page, "diag-read-result", "status", "done")
    assert (await page.get_by_test_id("diag-read-value").inner_text()).endswith(
        "software_version = 2.0")


async def test_diagnostics_self_test_of_the_circuits_shows_progress_and_ends_done(
        browser: Browser, van: Van) -> None:
    page = await diagnostics_screen(browser, van)
    before = {n: van.sim.relay("relays", f"relay_{n}") for n in range(1, 9)}
    await page.get_by_test_id("selftest-preset-power-circuit").click()
    assert await page.get_by_test_id("selftest-only").input_value() == "power/circuit/*"
    await page.get_by_test_id("selftest-start").click()
    await page.get_by_test_id("confirm-no").click()  # the confirmation step: nothing runs
    assert await page.get_by_test_id("selftest-progress").is_hidden()
    await page.get_by_test_id("selftest-start").click()
    dialog = await page.locator(".dialog").inner_text()
    assert texts("pl")["confirm.self_test.body"] in dialog
    await page.get_by_test_id("confirm-yes").click()
    await page.wait_for_function(
        "el => el.dataset.status === 'done'",
        arg=await page.get_by_test_id("selftest-result").element_handle(), timeout=60_000)
    steps = [v for t, v, _ in van.monitor.messages if t == "event" and isinstance(v, dict)
             and v.get("kind") == "self_test" and "output" in v]  # outcomes, not the start
    progress = page.get_by_test_id("selftest-progress")
    await page.wait_for_function(  # the last outcomes come with the final look at the log
        "([el, n]) => el.dataset.done === String(n)",
        arg=[await progress.element_handle(), len(steps)])
    circuits = [p["id"] for p in van.monitor.latest["meta"]["points"]
                if re.fullmatch(r"power/circuit/[^/]+", p["id"])]
    assert await progress.get_attribute("data-total") == str(len(circuits)) == str(len(steps))
    assert await progress.inner_text() == f"Sprawdzono {len(steps)} z {len(steps)}"
    for step in steps:
        row = page.get_by_test_id("selftest-out-" + step["output"].replace("/", "-"))
        assert await row.get_attribute("data-result") == step["result"]
    assert (await page.get_by_test_id("selftest-result").inner_text()).startswith(
        "Test zakończony")
    assert {n: van.sim.relay("relays", f"relay_{n}") for n in range(1, 9)} == before
    assert await page.evaluate(SMALL_TARGETS_JS) == []
    await page.get_by_test_id("selftest-result").scroll_into_view_if_needed()
    SCREENS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENS / "diagnostics-self-test-1280x800.png"))


PROGRESS_WHILE_RUNNING_JS = """([progress, list]) => progress.dataset.running === 'true'
  && Number(progress.dataset.done) >= 1 && {
    done: Number(progress.dataset.done), total: progress.dataset.total, text: progress.textContent,
    pending: list.querySelectorAll('[data-result=pending]').length }"""


async def test_diagnostics_self_test_of_every_output_counts_n_of_total_from_the_first(
        browser: Browser, van: Van) -> None:
    """All outputs (not only the circuits, which the page knows): the total comes from the
    run's start, so the progress says "n of N" as soon as an output is done, and the outputs
    still to test are listed."""
    page = await diagnostics_screen(browser, van)
    await page.get_by_test_id("selftest-preset-all").click()
    assert await page.get_by_test_id("selftest-only").input_value() == ""
    await page.get_by_test_id("selftest-start").click()
    await page.get_by_test_id("confirm-yes").click()
    progress = page.get_by_test_id("selftest-progress")
    seen = await page.wait_for_function(  # one look at the page, while the run goes on
        PROGRESS_WHILE_RUNNING_JS, arg=[await progress.element_handle(),
                                        await page.get_by_test_id("selftest-outputs")
                                        .element_handle()], timeout=60_000)
    first = await seen.json_value()
    start = next(v for t, v, _ in van.monitor.messages if t == "event" and isinstance(v, dict)
                 and v.get("kind") == "self_test" and v.get("what") == "started")
    total = start["total"]
    assert {o.split("/")[0] for o in start["outputs"]} > {"power"}, "not only the circuits"
    assert first["total"] == str(total)
    assert first["text"] == f"Sprawdzono {first['done']} z {total}"
    assert first["pending"] == total - first["done"]  # every other output: still to test
    await page.wait_for_function(
        "el => el.dataset.status === 'done' || el.dataset.status === 'failed'",
        arg=await page.get_by_test_id("selftest-result").element_handle(), timeout=60_000)
    await page.wait_for_function("([el, n]) => el.dataset.done === String(n)",
                                 arg=[await progress.element_handle(), total])
    assert await progress.inner_text() == f"Sprawdzono {total} z {total}"
    assert await page.get_by_test_id("selftest-outputs").locator(
        "[data-result=pending]").count() == 0


async def test_diagnostics_self_test_refused_while_driving_says_why(
        browser: Browser, van: Van) -> None:
    van.sim.set_input("ignition", True)
    page = await diagnostics_screen(browser, van)
    await wait_until(lambda: van.monitor.value("vehicle/driving") is True, what="driving")
    await page.get_by_test_id("selftest-start").click()
    await page.get_by_test_id("confirm-yes").click()
    result = page.get_by_test_id("selftest-result")
    await wait_attr(page, "selftest-result", "code", "driving")
    assert await result.get_attribute("data-status") == "rejected"
    assert await result.inner_text() == texts("pl")["diag.st.code.driving"]
    await page.get_by_test_id("lang-toggle").click()
    await go_to(page, "diagnostics")  # the outcome stays with the page, in English now
    assert await page.get_by_test_id("selftest-result").inner_text() == \
        texts("en")["diag.st.code.driving"]


SEND_AS_PAGE_JS = """async (commands) => {
  const ws = new WebSocket(new URL('/api/ws', location.href).href.replace('http', 'ws'));
  const results = {};
  await new Promise((resolve, reject) => {
    ws.onerror = reject;
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.type === 'snapshot') for (const [id, action, args] of commands)
        ws.send(JSON.stringify({ type: 'cmd', action, id, args }));
      if (m.type === 'result') results[m.id] = m;
      if (Object.keys(results).length === commands.length) resolve();
    };
  });
  ws.close();
  return results;
}"""


async def test_a_crew_session_cannot_see_or_use_the_diagnostics(
        browser: Browser, van: Van) -> None:
    page = await unlocked(browser, van, "1234")
    assert await page.get_by_test_id("nav-diagnostics").count() == 0
    assert await page.get_by_test_id("screen-diagnostics").count() == 0
    # even a script on its own socket: the server refuses the crew's diagnostics
    results = await page.evaluate(SEND_AS_PAGE_JS, [
        ["c-read", "diag/read", {"device": "relays", "register": "software_version"}],
        ["c-test", "diag/self_test", {"only": "power/circuit/*"}]])
    assert {(r["status"], r["code"]) for r in results.values()} == {("rejected", "forbidden")}
    assert not [v for t, v, _ in van.monitor.messages if t == "event" and isinstance(v, dict)
                and v.get("kind") == "self_test"]
