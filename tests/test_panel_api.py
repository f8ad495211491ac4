"""Panel HTTP/WebSocket API over real HTTP on 127.0.0.1 (aiohttp's test server)."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse
from aiohttp.test_utils import TestClient, TestServer
from testsupport import wait_until

from drivers.buses import DeviceConfig
from drivers.profile import load_profile
from supervisor.core.alarms import AlarmDef, AlarmManager
from supervisor.core.commands import ActionSpec, ArgSpec, CommandRouter
from supervisor.core.config import PanelConfig, SupervisorConfig, VehicleConfig
from supervisor.core.device_points import DevicePoints
from supervisor.core.history import History
from supervisor.core.points import PointDef, PointStore
from supervisor.core.storage import Storage
from supervisor.core.van_state import VanState
from supervisor.interfaces.panel import Panel
from supervisor.interfaces.pin import hash_pin

CREW, TECH, DURESS = "1234", "4321", "1235"
PANIC_POINTS = {"room/panic/active": "bool", "room/panic/delivery": "string",
                "room/panic/source": "string", "room/panic/since": "number"}


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.now = 1_800_000_000.0
        self.mono = 1000.0
        self.storage = Storage(tmp_path / "db.sqlite")
        self.store = PointStore()
        self.store.define(PointDef("power/battery/soc", "number", "%"))
        self.router = CommandRouter(self.storage, wall=lambda: self.now)
        vehicle = SupervisorConfig(vehicle=VehicleConfig(id="demo", name="Demo"))
        van = VanState(vehicle, self.storage, self.store, AlarmManager(),
                       DevicePoints(self.store), self.router, lambda: self.now)
        self.van = van
        self.applied: list[dict[str, Any]] = []
        self.room: list[str] = []  # the room's actions as they ran
        self._room_actions()

        async def switch(args: dict[str, Any]) -> str:
            self.applied.append(args)
            return "ok"

        self.router.register(ActionSpec("power/circuit", switch, frozenset({"crew"}), {
            "circuit": ArgSpec("enum", enum=("fridge",)), "on": ArgSpec("bool")}))
        cfg = PanelConfig(crew_pin_hash=hash_pin(CREW, 1000),
                          technician_pin_hash=hash_pin(TECH, 1000),
                          duress_pin_hash=hash_pin(DURESS, 1000), max_attempts=3,
                          lockout_s=60, session_s=3600)
        self.history = History(self.storage, self.store, 86400, lambda: self.now)
        self.panel = Panel(cfg, van, self.history, monotonic=lambda: self.mono)

    def _room_actions(self) -> None:
        """The room's panic as supervisor/room raises and cancels it (its points, alarm and
        events), without its rules."""
        for pid, kind in PANIC_POINTS.items():
            self.store.define(PointDef(pid, kind, ""))  # type: ignore[arg-type]
        self.van.alarms.define(AlarmDef("room/panic", "critical", "NAPAD", "PANIC",
                                        latching=True))
        self.show_panic(None)

        async def duress(args: dict[str, Any]) -> str:
            self.room.append("duress")
            self.raise_panic("duress")
            return "ok"

        async def ack(args: dict[str, Any]) -> str:
            self.room.append("panic_ack")
            self.van.alarms.set("room/panic", False, self.now)
            self.van.alarms.ack("room/panic")
            self.show_panic(None)
            return "acknowledged"

        self.router.register(ActionSpec("room/duress", duress, frozenset({"crew"})))
        self.router.register(ActionSpec("room/panic_ack", ack,
                                        frozenset({"crew", "technician", "hq"})))
        async def alarm_ack(args: dict[str, Any]) -> str:
            self.room.append(f"alarm_ack {args['alarm']}")
            return "acknowledged"

        self.router.register(ActionSpec("alarm/ack", alarm_ack, frozenset({"crew", "hq"}),
                                        {"alarm": ArgSpec("string")}))

    def raise_panic(self, source: str) -> str:
        panic = f"panic-{int(self.now)}-{len(self.room)}"
        where = "" if source == "duress" else f" ({source})"
        self.van.alarms.set("room/panic", True, self.now, panic + where)
        self.van.event({"kind": "room", "what": "panic", "panic": panic, "button": source})
        self.show_panic(source)
        return panic

    def show_panic(self, source: str | None) -> None:
        values = {"room/panic/active": source is not None,
                  "room/panic/delivery": "stored" if source else "none",
                  "room/panic/source": source or "", "room/panic/since": self.now if source else 0}
        for pid, value in values.items():
            self.store.update(pid, value, self.now)


@asynccontextmanager
async def page(client: TestClient[Any, Any]) -> AsyncIterator[ClientWebSocketResponse]:
    """A page unlocked with the crew PIN, its live socket open past the hello and snapshot."""
    await client.post("/api/unlock", json={"pin": CREW})
    async with client.ws_connect("/api/ws") as ws:
        await ws.receive_json()
        await ws.receive_json()
        yield ws


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[tuple[Rig, TestClient[Any, Any]]]:
    r = Rig(tmp_path)
    async with TestClient(TestServer(r.panel.app)) as client:
        yield r, client


async def test_locked_until_a_pin_is_given(rig: tuple[Rig, TestClient[Any, Any]]) -> None:
    _, client = rig
    assert (await client.get("/api/session")).status == 401
    assert (await client.get("/api/history?point=power/battery/soc")).status == 401
    assert (await client.get("/api/ws")).status == 401
    resp = await client.post("/api/unlock", json={"pin": CREW})
    assert resp.status == 200 and (await resp.json())["role"] == "crew"
    assert "HttpOnly" in resp.headers["Set-Cookie"]
    assert (await (await client.get("/api/session")).json())["role"] == "crew"


async def test_technician_pin_gives_the_technician_role(
    rig: tuple[Rig, TestClient[Any, Any]],
) -> None:
    _, client = rig
    assert (await (await client.post("/api/unlock", json={"pin": TECH})).json())["role"] == \
        "technician"


async def test_wrong_pins_are_rate_limited(rig: tuple[Rig, TestClient[Any, Any]]) -> None:
    r, client = rig
    first = await client.post("/api/unlock", json={"pin": "0000"})
    assert first.status == 401 and (await first.json())["attempts_left"] == 2
    await client.post("/api/unlock", json={"pin": "0000"})
    locked = await client.post("/api/unlock", json={"pin": "0000"})
    assert locked.status == 429 and (await locked.json())["retry_after_s"] == 60
    assert (await client.post("/api/unlock", json={"pin": CREW})).status == 429
    r.mono += 61  # the lockout is over
    assert (await client.post("/api/unlock", json={"pin": CREW})).status == 200


async def test_sessions_expire_and_lock_ends_them(rig: tuple[Rig, TestClient[Any, Any]]) -> None:
    r, client = rig
    await client.post("/api/unlock", json={"pin": CREW})
    assert (await client.post("/api/lock")).status == 204
    assert (await client.get("/api/session")).status == 401
    await client.post("/api/unlock", json={"pin": CREW})
    r.mono += 3601
    assert (await client.get("/api/session")).status == 401


async def test_websocket_pushes_and_routes_commands_with_the_session_role(
    rig: tuple[Rig, TestClient[Any, Any]],
) -> None:
    r, client = rig
    await client.post("/api/unlock", json={"pin": CREW})
    async with client.ws_connect("/api/ws") as ws:
        assert (await ws.receive_json())["type"] == "hello"
        assert (await ws.receive_json())["type"] == "snapshot"
        r.panel.broadcast({"type": "point", "id": "power/battery/soc", "v": 55.0})
        assert (await ws.receive_json())["v"] == 55.0
        await ws.send_json({"type": "cmd", "action": "power/circuit", "id": "p1",
                            "args": {"circuit": "fridge", "on": True}})
        assert (await ws.receive_json()) == {"type": "result", "id": "p1", "status": "done",
                                             "code": "ok", "message": "ok"}
        await ws.send_json({"type": "cmd", "action": "power/circuit", "id": "p2",
                            "args": {"circuit": "oven", "on": True}})
        assert (await ws.receive_json())["code"] == "out_of_range"
        await ws.send_str("garbage")
        assert (await ws.receive_json())["code"] == "bad_request"
    assert r.applied == [{"circuit": "fridge", "on": True}]
    audit = r.storage.db.execute("SELECT source, role FROM command WHERE id = 'p1'").fetchone()
    assert audit == ("panel", "crew")


async def test_locking_closes_open_pages(rig: tuple[Rig, TestClient[Any, Any]]) -> None:
    _, client = rig
    async with page(client) as ws:
        await client.post("/api/lock")
        assert (await ws.receive_json()) == {"type": "locked"}


async def test_history_is_downsampled_from_sqlite(rig: tuple[Rig, TestClient[Any, Any]]) -> None:
    r, client = rig
    for minute in range(0, 600):
        r.now = 1_800_000_000.0 + minute * 60
        r.store.update("power/battery/soc", 80 - minute / 20, r.now)
        r.history.sample()
    assert r.storage.flush()  # the writer thread has committed the samples
    await client.post("/api/unlock", json={"pin": CREW})
    body = await (await client.get("/api/history?point=power/battery/soc&hours=24")).json()
    assert 100 < len(body["t"]) <= 288
    assert body["v"][0] > body["v"][-1]
    assert (await client.get("/api/history?point=x&hours=abc")).status == 400


async def test_a_page_from_elsewhere_cannot_open_the_socket_or_unlock(
    rig: tuple[Rig, TestClient[Any, Any]],
) -> None:
    _, client = rig
    await client.post("/api/unlock", json={"pin": CREW})
    evil = {"Origin": "http://evil.example"}
    assert (await client.get("/api/ws", headers=evil)).status == 403
    assert (await client.post("/api/unlock", json={"pin": CREW}, headers=evil)).status == 403
    assert (await client.post("/api/lock", headers=evil)).status == 403
    own = {"Origin": f"http://{client.host}:{client.port}"}
    async with client.ws_connect("/api/ws", headers=own) as ws:
        assert (await ws.receive_json())["type"] == "hello"


async def test_every_answer_carries_a_strict_content_security_policy(
    rig: tuple[Rig, TestClient[Any, Any]],
) -> None:
    _, client = rig
    for path in ("/", "/api/session", "/static/app.js"):
        csp = (await client.get(path)).headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "script-src 'self';" in csp  # no inline scripts, no eval


@pytest.mark.parametrize("body", [
    b'{"pin":' + b"[" * 3000 + b"]" * 3000 + b"}",
    b"\xed\xa0\x80",
    b'{"pin": true}',
    b'{"pin": "' + b"1" * 100 + b'"}',
    b"x" * 20_000,
])
async def test_bad_unlock_bodies_are_4xx_never_5xx(
    rig: tuple[Rig, TestClient[Any, Any]], body: bytes,
) -> None:
    _, client = rig
    resp = await client.post("/api/unlock", data=body,
                             headers={"Content-Type": "application/json"})
    assert 400 <= resp.status < 500


async def test_deep_json_on_the_socket_is_refused_and_the_page_stays_connected(
    rig: tuple[Rig, TestClient[Any, Any]],
) -> None:
    r, client = rig
    async with page(client) as ws:
        await ws.send_str("[" * 3000 + "]" * 3000)
        assert (await ws.receive_json())["code"] == "bad_request"
        await ws.send_json({"type": "cmd", "action": "power/circuit", "id": "d1",
                            "args": {"circuit": "fridge", "on": True}})
        assert (await ws.receive_json())["status"] == "done"
    assert r.applied == [{"circuit": "fridge", "on": True}]


async def test_the_server_locks_an_idle_session_whatever_the_page_does(
    rig: tuple[Rig, TestClient[Any, Any]],
) -> None:
    r, client = rig
    async with page(client) as ws:
        r.mono += 200
        await ws.send_json({"type": "activity"})  # the crew touched the screen
        await ws.send_json({"type": "cmd", "action": "power/circuit", "id": "i1",
                            "args": {"circuit": "fridge", "on": True}})
        assert (await ws.receive_json())["status"] == "done"
        r.mono += 200  # 200 s since the last touch: still within the 300 s idle lock
        assert (await client.get("/api/session")).status == 200
        r.mono += 101  # idle longer than the idle lock: a copied cookie is worth nothing now
        assert (await client.get("/api/session")).status == 401
        assert (await ws.receive_json()) == {"type": "locked"}


async def test_wrong_pins_from_a_stranger_never_lock_out_a_browser_that_unlocked(
    rig: tuple[Rig, TestClient[Any, Any]],
) -> None:
    _, kiosk = rig
    assert (await kiosk.post("/api/unlock", json={"pin": CREW})).status == 200
    assert "mcw_device" in kiosk.session.cookie_jar.filter_cookies(kiosk.make_url("/"))
    stranger_cookies = {"mcw_device": "made-up"}
    for _ in range(4):  # the same address as the kiosk, without its device cookie
        await kiosk.post("/api/unlock", json={"pin": "0000"}, cookies=stranger_cookies)
    locked = await kiosk.post("/api/unlock", json={"pin": CREW}, cookies=stranger_cookies)
    assert locked.status == 429
    assert (await kiosk.post("/api/unlock", json={"pin": CREW})).status == 200  # the kiosk


def spy_on_pin_checks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every PIN check the panel makes from now on: (the PIN entered, the checking thread)."""
    from supervisor.interfaces import panel, pin

    checks: list[tuple[str, str]] = []
    real = pin.verify_pin

    def spy(entered: str, stored: str) -> bool:
        checks.append((entered, threading.current_thread().name))
        return real(entered, stored)

    monkeypatch.setattr(panel, "verify_pin", spy)
    return checks


async def test_pin_checks_run_off_the_event_loop(
    rig: tuple[Rig, TestClient[Any, Any]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, client = rig
    checks = spy_on_pin_checks(monkeypatch)
    await client.post("/api/unlock", json={"pin": "9999"})
    threads = [thread for _, thread in checks]
    assert threads and threading.main_thread().name not in threads


# Found by tests/test_panel_properties.py: each failed before the fix in panel.py.


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("GET", "/nope", b"", 404),
    ("PUT", "/api/unlock", b"", 405),
    ("POST", "/api/unlock", b" " * (16 * 1024 + 1), 413),
    ("GET", "/static/", b"", 403),
])
async def test_aiohttp_own_error_answers_carry_the_security_headers_too(
    rig: tuple[Rig, TestClient[Any, Any]], method: str, path: str, body: bytes, status: int,
) -> None:
    _, client = rig
    resp = await client.request(method, path, data=body)
    assert resp.status == status
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("hours", ["nan", "inf", "-inf", "1e400"])
async def test_history_refuses_hours_that_are_no_number(
    rig: tuple[Rig, TestClient[Any, Any]], hours: str,
) -> None:
    _, client = rig
    await client.post("/api/unlock", json={"pin": CREW})
    assert (await client.get(f"/api/history?point=power/battery/soc&hours={hours}")).status == 400


async def test_a_binary_frame_is_answered_not_run_and_the_page_stays_connected(
    rig: tuple[Rig, TestClient[Any, Any]],
) -> None:
    r, client = rig
    command = {"type": "cmd", "action": "power/circuit", "id": "b1",
               "args": {"circuit": "fridge", "on": True}}
    async with page(client) as ws:
        await ws.send_bytes(json.dumps(command).encode())  # was: no answer at all
        assert (await ws.receive_json())["code"] == "bad_request"
        await ws.send_json(command)
        assert (await ws.receive_json())["status"] == "done"
    assert r.applied == [{"circuit": "fridge", "on": True}]


@pytest.mark.parametrize("cid", ["", 0, False, []])
async def test_a_command_id_of_no_use_is_refused_not_replaced(
    rig: tuple[Rig, TestClient[Any, Any]], cid: object,
) -> None:
    """Only a missing (or null) id is made up by the panel; any other goes to the router,
    which refuses it as it would over MQTT (it was replaced and the command ran)."""
    r, client = rig
    args = {"circuit": "fridge", "on": True}
    async with page(client) as ws:
        await ws.send_json({"type": "cmd", "action": "power/circuit", "id": cid, "args": args})
        assert (await ws.receive_json())["status"] == "rejected"
        assert r.applied == []
        await ws.send_json({"type": "cmd", "action": "power/circuit", "args": args})
        result = await ws.receive_json()
        assert result["status"] == "done" and result["id"]
    assert r.applied == [args]


# ---- the panic: cancelled with the PIN entered again; the duress PIN ---------------------------


async def command(ws: ClientWebSocketResponse, action: str, cid: str,
                  args: dict[str, Any] | None = None) -> dict[str, Any]:
    """Send a command on the page's socket; its result (pushes before it are skipped)."""
    await ws.send_json({"type": "cmd", "action": action, "id": cid, "args": args or {}})
    while True:
        msg = await ws.receive_json()
        if msg["type"] == "result":
            return dict(msg)


async def test_a_panic_is_cancelled_only_with_the_pin_entered_again(
    rig: tuple[Rig, TestClient[Any, Any]],
) -> None:
    r, client = rig
    assert (await client.post("/api/reauth", json={"pin": CREW})).status == 401  # locked
    r.raise_panic("desk")
    async with page(client) as ws:
        for action, args in (("room/panic_ack", {}), ("alarm/ack", {"alarm": "room/panic"})):
            refused = await command(ws, action, f"no-pin-{action}", args)
            assert (refused["status"], refused["code"]) == ("rejected", "reauth_required")
        assert r.room == []
        wrong = await client.post("/api/reauth", json={"pin": "0000"})
        assert wrong.status == 401 and (await wrong.json())["attempts_left"] == 2
        assert (await client.post("/api/reauth", json={"pin": [CREW]})).status == 400
        assert (await client.post("/api/reauth", json={"pin": CREW})).status == 200
        assert (await command(ws, "room/panic_ack", "with-pin"))["status"] == "done"
        assert r.room == ["panic_ack"]
        # once: the next cancel asks again, and so does one after the minute
        again = await command(ws, "room/panic_ack", "pin-used")
        assert again["code"] == "reauth_required"
        assert (await client.post("/api/reauth", json={"pin": TECH})).status == 200
        r.mono += 61
        assert (await command(ws, "room/panic_ack", "too-late"))["code"] == "reauth_required"
        # another alarm's acknowledgement needs no PIN
        assert (await command(ws, "alarm/ack", "other", {"alarm": "x"}))["status"] == "done"
    assert r.room == ["panic_ack", "alarm_ack x"]
    audit = r.storage.db.execute(
        "SELECT status, code FROM command WHERE id = 'with-pin'").fetchone()
    assert audit == ("done", "ok")


async def test_wrong_pins_entered_again_lock_out_as_at_unlock(
    rig: tuple[Rig, TestClient[Any, Any]],
) -> None:
    r, client = rig
    await client.post("/api/unlock", json={"pin": CREW})
    await client.post("/api/reauth", json={"pin": "0000"})
    await client.post("/api/reauth", json={"pin": "0000"})
    locked = await client.post("/api/reauth", json={"pin": "0000"})
    assert locked.status == 429 and (await locked.json())["retry_after_s"] == 60
    assert (await client.post("/api/reauth", json={"pin": CREW})).status == 429
    assert (await client.post("/api/unlock", json={"pin": CREW})).status == 429  # one count
    r.mono += 61
    assert (await client.post("/api/reauth", json={"pin": CREW})).status == 200


async def test_the_duress_pin_unlocks_exactly_as_the_crew_pin_and_calls_for_help(
    rig: tuple[Rig, TestClient[Any, Any]],
) -> None:
    r, client = rig
    crew = await client.post("/api/unlock", json={"pin": CREW})
    crew_body = await crew.json()
    await client.post("/api/lock")
    duress = await client.post("/api/unlock", json={"pin": DURESS})
    assert duress.status == crew.status == 200
    assert await duress.json() == crew_body == {**crew_body, "role": "crew"}
    assert "mcw_session=" in duress.headers["Set-Cookie"]
    audit = await wait_until(lambda: r.storage.flush() and r.storage.db.execute(
        "SELECT role, source, status FROM command WHERE action = 'room/duress'").fetchone(),
        what="room/duress submitted and audited")
    assert audit == ("crew", "panel", "done")
    assert r.room == ["duress"]
    assert r.van.alarms.states["room/panic"].active  # on MQTT: the van's own state


async def test_the_duress_panic_is_kept_off_every_page(
    rig: tuple[Rig, TestClient[Any, Any]],
) -> None:
    r, client = rig
    async with page(client) as ws:  # a page of the crew, unlocked before
        other = client  # another unlock from this browser: its cookie, not the open page's
        assert (await other.post("/api/unlock", json={"pin": DURESS})).status == 200
        await wait_until(lambda: r.room == ["duress"], what="room/duress submitted")
        seen: dict[str, Any] = {}
        while "room/panic/since" not in seen:  # the room's points come after its alarm
            msg = await ws.receive_json()
            if msg["type"] in ("point", "alarm"):
                seen[msg["id"]] = msg.get("alarm") if msg["type"] == "alarm" else msg["v"]
        assert seen == {"room/panic": None, "room/panic/active": False,
                        "room/panic/delivery": "none", "room/panic/source": "",
                        "room/panic/since": 0}
        async with other.ws_connect("/api/ws") as fresh:  # a page opened afterwards
            await fresh.receive_json()
            snapshot = await fresh.receive_json()
        assert "room/panic" not in snapshot["alarms"]
        assert snapshot["points"]["room/panic/active"]["v"] is False
        assert snapshot["points"]["room/panic/source"]["v"] == ""
        assert r.storage.flush()
        events = await (await client.get("/api/events")).json()
        assert [e for e in events if "panic" in json.dumps(e)] == []
        assert r.van.snapshot()["points"]["room/panic/source"]["v"] == "duress"  # MQTT's
        # HQ cancels it; a button's panic afterwards is shown whole
        assert (await r.router.submit("room/panic_ack", json.dumps({"id": "hq-1"}), "hq",
                                      "mqtt")).status == "done"
        r.raise_panic("desk")
        shown: dict[str, Any] = {}
        while shown.get("room/panic/source") != "desk":
            msg = await ws.receive_json()
            if msg["type"] in ("point", "alarm"):
                shown[msg["id"]] = msg.get("alarm") if msg["type"] == "alarm" else msg["v"]
        assert shown["room/panic"]["active"] is True and shown["room/panic/active"] is True
    assert r.storage.flush()
    events = await (await client.get("/api/events")).json()
    panic_events = [e for e in events if "panic" in json.dumps(e)]
    assert panic_events and all("(desk)" in e.get("detail", "(desk)") for e in panic_events)
    assert not any(e.get("button") == "duress" for e in panic_events)


async def test_the_duress_pin_entered_again_cancels_and_calls_for_help_silently(
    rig: tuple[Rig, TestClient[Any, Any]],
) -> None:
    r, client = rig
    r.raise_panic("desk")
    async with page(client) as ws:
        assert (await client.post("/api/reauth", json={"pin": DURESS})).status == 200
        assert (await command(ws, "room/panic_ack", "forced"))["status"] == "done"
        await wait_until(lambda: r.room == ["panic_ack", "duress"], what="a silent panic")
        assert r.van.alarms.states["room/panic"].active
        assert r.panel._snapshot()["points"]["room/panic/active"]["v"] is False


async def test_every_pin_costs_the_same_checks(
    rig: tuple[Rig, TestClient[Any, Any]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The duress PIN answers in the time any other PIN does: every hash is checked."""
    _, client = rig
    checks = spy_on_pin_checks(monkeypatch)
    for entered in (CREW, TECH, DURESS, "9999"):
        await client.post("/api/unlock", json={"pin": entered})
    calls = [entered for entered, _ in checks]
    assert [calls.count(entered) for entered in (CREW, TECH, DURESS, "9999")] == [3, 3, 3, 3]


async def test_what_the_diagnostics_screen_reads_reaches_a_technician_page(
    rig: tuple[Rig, TestClient[Any, Any]],
) -> None:
    """The diagnostics screen builds on these: every device's status (its blocks and a wrong
    identity included) in the snapshot and pushed as it changes, and the self-test's events
    in ``/api/events`` (its progress) after the event that was newest before it started."""
    r, client = rig
    status: dict[str, object] = {"state": "online", "errors": {"timeout": 0},
                                 "blocks": [["coil", 0, 8]], "wrong_identity": []}
    r.van.devices.health("relays", status)
    await client.post("/api/unlock", json={"pin": TECH})
    async with client.ws_connect("/api/ws") as ws:
        assert (await ws.receive_json())["role"] == "technician"
        snapshot = await ws.receive_json()
        assert snapshot["devices"]["relays"]["blocks"] == [["coil", 0, 8]]
        r.van.devices.health("relays", {**status, "state": "degraded",
                                        "wrong_identity": ["software_version 0.5"]})
        pushed = await ws.receive_json()
        while pushed["type"] != "device":  # the supervisor's state (degraded) may come first
            pushed = await ws.receive_json()
        assert pushed["id"] == "relays"
        assert pushed["status"]["state"] == "degraded"
        assert pushed["status"]["wrong_identity"] == ["software_version 0.5"]
    r.van.event({"kind": "power", "what": "shed", "circuits": []})
    assert r.storage.flush()
    newest = (await (await client.get("/api/events?limit=1")).json())[0]["id"]
    for output, result in (("power/circuit/a", "ok"), ("power/circuit/b", "skipped")):
        r.van.event({"kind": "self_test", "output": output, "result": result, "detail": ""})
    assert r.storage.flush()
    events = await (await client.get("/api/events?limit=200")).json()
    steps = [(e["output"], e["result"]) for e in reversed(events)
             if e["kind"] == "self_test" and e["id"] > newest]
    assert steps == [("power/circuit/a", "ok"), ("power/circuit/b", "skipped")]


async def test_a_technician_page_gets_a_devices_readable_register_names(
    rig: tuple[Rig, TestClient[Any, Any]],
) -> None:
    """``/api/registers``: the names the diagnostics screen offers to tap for a read by name
    (the device's profile's readable registers), only for a role that may run diag/read and
    only for a device diag/read reads."""
    r, client = rig
    r.van.devices.devices["relays"] = DeviceConfig(id="relays", profile="waveshare_relay_8ch",
                                                   bus="rs485", unit=2)

    async def read(args: dict[str, Any]) -> str:
        return "read"

    r.router.register(ActionSpec("diag/read", read, frozenset({"technician"}),
                                 {"device": ArgSpec("enum", enum=("relays",))}))
    assert (await client.get("/api/registers?device=relays")).status == 401
    await client.post("/api/unlock", json={"pin": CREW})
    assert (await client.get("/api/registers?device=relays")).status == 403
    await client.post("/api/unlock", json={"pin": TECH})
    answer = await (await client.get("/api/registers?device=relays")).json()
    profile = load_profile("waveshare_relay_8ch")
    assert [g["name"] for g in answer["registers"]] == \
        sorted(g.name for g in profile.registers if g.readable)
    version = next(g for g in answer["registers"] if g["name"] == "software_version")
    assert (version["table"], version["address"]) == ("holding", 0x8000)
    for unknown in ("toaster", "", "relays&device=x"):
        refused = await client.get("/api/registers", params={"device": unknown})
        assert refused.status == 404
