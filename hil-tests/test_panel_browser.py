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
from playwright.async_api import Browser, Page, WebSocketRoute, async_playwright
from testsupport import needs_tool

from conftest import Van
from harness import wait_until
from supervisor.climate.rest_guard import RestGuard

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
    "the inverter has no headroom (9.5 A + 6.0 A > 12.0 A)")
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
