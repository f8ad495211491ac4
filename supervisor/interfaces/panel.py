"""The crew's touch panel, served by the supervisor itself (aiohttp; no separate process).

Static page + a WebSocket that pushes every change (no polling); commands from the page go
through the same command router as MQTT (same validation, results and audit), with the role
of the PIN that unlocked the session. It keeps working while the MQTT broker is down.

Access: a crew PIN and a technician PIN (stored hashed); wrong PINs are counted per client and
lock the keypad out after ``max_attempts``; sessions expire; the page locks itself when idle.
Cancelling a panic asks for a PIN again (``/api/reauth``, the same check and lockout): the
server runs it only within a minute of that, once.

The duress PIN (optional) unlocks exactly as the crew PIN does (same role, same answer, the
same PIN checks in the same time) and submits ``room/duress`` behind the page's back. The
silent panic it raises is kept off every page (points, alarm, event log) for as long as it
lasts, so that whoever forces the crew to unlock sees nothing of it; HQ sees it on MQTT.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import structlog
from aiohttp import WSMsgType, web

from supervisor.core.alarms import AlarmDef, AlarmState
from supervisor.core.config import PanelConfig
from supervisor.core.history import History
from supervisor.core.points import PointDef, PointValue
from supervisor.core.van_state import VanState
from supervisor.interfaces.pin import verify_pin

log = structlog.get_logger("supervisor.panel")

COOKIE = "mcw_session"
QUEUE_LIMIT = 2000  # a client that cannot keep up is dropped, not allowed to grow memory
HEARTBEAT_S = 10.0  # an app-level ping, so a page notices a silently dead Wi-Fi link
PING = json.dumps({"type": "ping"})
STATIC = Path(str(resources.files("supervisor.interfaces").joinpath("panel_static")))
LOCKED = json.dumps({"type": "locked"})
DEVICE_COOKIE = "mcw_device"  # a browser that unlocked once; its wrong PINs are its own
MAX_REQUEST = 16 * 1024  # bytes of an HTTP body
MAX_WS_MESSAGE = 8 * 1024  # bytes of a WebSocket message from a page
MAX_BRACKETS = 512  # no message of ours has more; deeper JSON is not even parsed
SWEEP_S = 5.0  # how often idle and old sessions are ended
REAUTH_S = 60.0  # a PIN entered again is good for one such command within this time
DURESS_ACTION = "room/duress"
DIAG_READ = "diag/read"  # its technicians get the devices' register names (/api/registers)
PANIC_ALARM = "room/panic"
# the panic as a page sees it while there is none: what it is shown during a silent panic
NO_PANIC: dict[str, object] = {"room/panic/active": False, "room/panic/delivery": "none",
                               "room/panic/source": "", "room/panic/since": 0}
# The page loads only its own files and talks only to this server.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; connect-src 'self'; "
                               "img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                               "object-src 'none'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


@dataclass
class Session:
    role: str
    created: float
    last_active: float  # the crew's last touch (command, unlock, or the page's "activity")
    clients: set[Client] = field(default_factory=set)
    reauth_until: float = 0.0  # a PIN entered again: one command that needs it until then
    reauth_duress: bool = False  # ... and it was the duress PIN


@dataclass(eq=False)
class Client:
    ws: web.WebSocketResponse
    session: Session
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))


@dataclass
class _Attempts:
    failures: int = 0
    locked_until: float = 0.0


class Panel:
    def __init__(self, cfg: PanelConfig, van: VanState, history: History,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.van = van
        self.router = van.router
        self.storage = van.storage
        self.history = history
        self._mono = monotonic
        van.points.changed.add(self._point)
        van.alarms.changed.add(self._alarm)
        van.event_added.add(self._event)
        van.devices.health_changed.add(
            lambda device, status: self.broadcast({"type": "device", "id": device,
                                                   "status": status}))
        van.status_changed.add(lambda state: self.broadcast({"type": "status", "state": state}))
        self.sessions: dict[str, Session] = {}
        self.clients: set[Client] = set()
        self._attempts: dict[str, _Attempts] = {}
        self._trusted: set[str] = set()  # device cookies of browsers that unlocked
        self._pin_check = asyncio.Semaphore(1)  # PBKDF2 runs in a thread, one at a time
        self._duress_pending = False  # a duress panic asked for, not yet seen to end
        self._duress_ids: set[str] = set()  # the panics the duress PIN raised (event log)
        self._tasks: set[asyncio.Task[None]] = set()
        self.app = web.Application(client_max_size=MAX_REQUEST,
                                   middlewares=[self._guard])
        self.app.add_routes([
            web.get("/", self._index),
            web.get("/api/session", self._session),
            web.post("/api/unlock", self._unlock),
            web.post("/api/lock", self._lock),
            web.post("/api/reauth", self._reauth),
            web.get("/api/ws", self._ws),
            web.get("/api/history", self._history),
            web.get("/api/events", self._events),
            web.get("/api/registers", self._registers),
            web.static("/static", STATIC),
        ])

    # ---- running --------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until cancelled; also samples the history and expires sessions."""
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.cfg.host, self.cfg.port)
        await site.start()
        log.info("panel_listening", url=f"http://{self.cfg.host}:{self.cfg.port}/")
        try:
            next_sample = self._mono()
            while True:
                if self._mono() >= next_sample:
                    self.history.sample()
                    next_sample += self.cfg.history_interval_s
                self._expire_sessions()
                await asyncio.sleep(SWEEP_S)  # the sweep period
        finally:
            for client in list(self.clients):
                await client.ws.close()
            await runner.cleanup()

    def _point(self, pdef: PointDef, pv: PointValue) -> None:
        if pdef.id == "room/panic/source" and self._duress_pending \
                and isinstance(pv.value, str) and pv.value not in ("", "duress"):
            # a button's panic after all (it came first): nothing to hide, show it whole
            self._duress_pending = False
            self._reveal()
            return
        self.broadcast({"type": "point", "id": pdef.id, **self._shown(pdef.id, pv)})

    def _alarm(self, adef: AlarmDef, state: AlarmState | None, what: str) -> None:
        if adef.id == PANIC_ALARM and state is None:
            self._duress_pending = False  # the panic is over (cancelled and acknowledged)
        hidden = adef.id == PANIC_ALARM and self._silent_panic()
        self.broadcast({"type": "alarm", "id": adef.id,
                        "alarm": None if state is None or hidden else state.as_dict(adef)})

    def _event(self, event: dict[str, Any]) -> None:
        if event.get("kind") == "room" and event.get("what") == "panic" \
                and event.get("button") == "duress":
            self._duress_ids.add(str(event.get("panic")))

    # ---- the silent panic ---------------------------------------------------------------

    def _silent_panic(self) -> bool:
        """Whether the panic now raised is the duress PIN's (asked for by this panel, or
        persisted and raised again after a restart): no page may show it."""
        return self._duress_pending or self.van.points.good("room/panic/source") == "duress"

    def _shown(self, pid: str, pv: PointValue) -> dict[str, object]:
        """A point as the pages see it: during a silent panic, the panic's points as if
        there were none."""
        if pid in NO_PANIC and self._silent_panic():
            return {**pv.as_dict(), "v": NO_PANIC[pid]}
        return pv.as_dict()

    def _reveal(self) -> None:
        """The panic's points and alarm as they are, to every page."""
        points, alarms = self.van.points, self.van.alarms
        for pid in NO_PANIC:
            pv = points.get(pid)
            if pv is not None:
                self.broadcast({"type": "point", "id": pid, **pv.as_dict()})
        state = alarms.states.get(PANIC_ALARM)
        if PANIC_ALARM in alarms.defs:
            self.broadcast({"type": "alarm", "id": PANIC_ALARM, "alarm": None if state is None
                            else state.as_dict(alarms.defs[PANIC_ALARM])})

    def _snapshot(self) -> dict[str, Any]:
        snap = self.van.snapshot()
        for pid in NO_PANIC:
            pv = self.van.points.get(pid)
            if pv is not None:
                snap["points"][pid] = self._shown(pid, pv)
        if self._silent_panic():
            snap["alarms"].pop(PANIC_ALARM, None)
        return snap

    def _duress(self) -> None:
        """The duress PIN was entered: a silent panic, submitted as the crew from the panel
        after the page has had its answer (nothing of it reaches the page)."""
        if DURESS_ACTION not in self.router.actions:
            log.error("panel_duress_without_room", action=DURESS_ACTION)
            return
        raised = self.van.alarms.states.get(PANIC_ALARM)
        if raised is None or not raised.active:  # a panic already shown stays shown
            self._duress_pending = True
        task = asyncio.get_running_loop().create_task(self._submit_duress())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _submit_duress(self) -> None:
        payload = json.dumps({"id": f"panel-duress-{uuid.uuid4()}", "args": {}})
        result = await self.router.submit(DURESS_ACTION, payload, "crew", "panel")
        log.warning("panel_duress", status=result.status, code=result.code)
        if result.status != "done" and self._duress_pending:
            self._duress_pending = False
            self._reveal()

    def _hello(self) -> dict[str, Any]:
        vehicle = self.van.cfg.vehicle
        return {"vehicle": {"id": vehicle.id, "name": vehicle.name}, "meta": self.van.meta()}

    def broadcast(self, message: dict[str, Any]) -> None:
        """Push one message to every connected page (called from point/alarm listeners)."""
        if not self.clients:
            return
        text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
        for client in list(self.clients):
            try:
                client.queue.put_nowait(text)
            except asyncio.QueueFull:
                log.warning("panel_client_too_slow")
                self.clients.discard(client)
                asyncio.get_running_loop().create_task(client.ws.close())

    # ---- sessions -----------------------------------------------------------------------------

    def _current(self, request: web.Request) -> Session | None:
        token = request.cookies.get(COOKIE, "")
        session = self.sessions.get(token)
        if session is None:
            return None
        if self._expired(session):
            self._end(token)
            return None
        return session

    def _expired(self, session: Session) -> bool:
        """Too old, or idle longer than the idle lock: the server locks, not only the page
        (a copied cookie is worth no more than the idle time)."""
        now = self._mono()
        return now - session.created > self.cfg.session_s \
            or now - session.last_active > self.cfg.idle_lock_s

    def _end(self, token: str) -> None:
        session = self.sessions.pop(token, None)
        if session is None:
            return
        for client in list(session.clients):
            with contextlib.suppress(asyncio.QueueFull):
                client.queue.put_nowait(LOCKED)

    def _expire_sessions(self) -> None:
        for token, session in list(self.sessions.items()):
            if self._expired(session):
                self._end(token)

    def _session_body(self, session: Session) -> dict[str, Any]:
        hello = self._hello()
        return {"role": session.role, "idle_lock_s": self.cfg.idle_lock_s,
                "vehicle": hello["vehicle"]}

    # ---- handlers -------------------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                     ) -> web.StreamResponse:
        """Same-origin only for anything that changes state or opens the live socket (a page
        from elsewhere must not drive the van through a crew browser), and the security
        headers on every answer."""
        origin = request.headers.get("Origin")
        changes = request.method not in ("GET", "HEAD") or request.path == "/api/ws"
        if changes and origin is not None and origin not in (
                f"http://{request.host}", f"https://{request.host}"):
            log.warning("panel_foreign_origin", origin=origin[:100], path=request.path)
            response: web.StreamResponse = web.json_response({"error": "forbidden_origin"},
                                                             status=403)
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                # aiohttp's own answers (no such path, wrong method, body too large) too
                exc.headers.update(SECURITY_HEADERS)
                raise
        if not response.prepared:
            response.headers.update(SECURITY_HEADERS)
        return response

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def _session(self, request: web.Request) -> web.Response:
        session = self._current(request)
        if session is None:
            return web.json_response({"error": "locked"}, status=401)
        return web.json_response(self._session_body(session))

    def _client_key(self, request: web.Request) -> str:
        """Whose wrong PINs these are: a browser that unlocked before counts its own; any
        other request counts against its address (so a stranger, even on the kiosk's own
        address, never locks the kiosk out)."""
        device = request.cookies.get(DEVICE_COOKIE, "")
        return f"device:{device}" if device in self._trusted else f"peer:{request.remote}"

    async def _pin_of(self, request: web.Request, peer: str,
                      now: float) -> str | web.Response:
        """The role whose PIN the request carries (unlock and re-entry alike), or the answer
        to give: locked out, a bad request, a wrong PIN (counted towards the lockout)."""
        attempts = self._attempts.setdefault(self._client_key(request), _Attempts())
        if attempts.locked_until > now:
            return web.json_response(
                {"error": "locked_out", "retry_after_s": round(attempts.locked_until - now)},
                status=429)
        pin = await self._read_pin(request)
        if pin is None:
            return web.json_response({"error": "bad_request"}, status=400)
        matched = await self._check_pin(pin)
        if matched is None:
            return self._wrong_pin(attempts, peer, now)
        attempts.failures = 0
        return matched

    async def _unlock(self, request: web.Request) -> web.Response:
        peer = request.remote or "?"
        now = self._mono()
        matched = await self._pin_of(request, peer, now)
        if isinstance(matched, web.Response):
            return matched
        role = "crew" if matched == "duress" else matched  # the same session as the crew's
        token = secrets.token_urlsafe(32)
        session = Session(role, now, now)
        self.sessions[token] = session
        log.info("panel_unlocked", peer=peer, role=role)
        response = web.json_response(self._session_body(session))
        response.set_cookie(COOKIE, token, httponly=True, samesite="Strict",
                            max_age=int(self.cfg.session_s))
        device = request.cookies.get(DEVICE_COOKIE, "")
        if device not in self._trusted:
            device = secrets.token_urlsafe(24)
            self._trusted.add(device)
        response.set_cookie(DEVICE_COOKIE, device, httponly=True, samesite="Strict",
                            max_age=400 * 86400)
        if matched == "duress":
            self._duress()
        return response

    def _wrong_pin(self, attempts: _Attempts, peer: str, now: float) -> web.Response:
        """A wrong PIN counted against its client: a lockout after ``max_attempts``."""
        attempts.failures += 1
        left = self.cfg.max_attempts - attempts.failures
        log.warning("panel_wrong_pin", peer=peer, attempts_left=max(left, 0))
        if left <= 0:
            attempts.failures = 0
            attempts.locked_until = now + self.cfg.lockout_s
            return web.json_response(
                {"error": "locked_out", "retry_after_s": round(self.cfg.lockout_s)},
                status=429)
        return web.json_response({"error": "wrong_pin", "attempts_left": left}, status=401)

    async def _read_pin(self, request: web.Request) -> str | None:
        """The PIN of an unlock or re-authentication body; None for a malformed body."""
        try:
            body = _json_object((await request.read()).decode("utf-8"))
        except UnicodeDecodeError:
            body = None
        pin = body.get("pin") if body is not None else None
        if not isinstance(pin, str | int) or isinstance(pin, bool) or len(str(pin)) > 16:
            return None
        return str(pin)

    async def _check_pin(self, pin: str) -> str | None:
        """What the PIN is: ``technician``, ``crew`` or ``duress`` (None: wrong). PBKDF2 is
        slow on purpose: it runs in a thread, one check at a time, so a burst of guesses never
        stalls the event loop. Every stored hash is checked whatever matched first, so that no
        PIN answers sooner or later than another (the duress PIN least of all)."""
        stored = [("technician", self.cfg.technician_pin_hash),
                  ("crew", self.cfg.crew_pin_hash)]
        if self.cfg.duress_pin_hash is not None:
            stored.append(("duress", self.cfg.duress_pin_hash))
        async with self._pin_check:
            matched = [role for role, hashed in stored
                       if await asyncio.to_thread(verify_pin, pin, hashed)]
        if "duress" in matched and len(matched) > 1:
            # the duress PIN is also a real one: every unlock would call for help
            log.error("panel_duress_pin_is_another_pin", also=matched[0])
            matched.remove("duress")
        return matched[0] if matched else None

    async def _reauth(self, request: web.Request) -> web.Response:
        """A PIN entered again on an unlocked page, for a command that needs it (cancelling
        a panic): checked as at unlock, wrong ones counted towards the same lockout. Any
        on-board PIN will do; the duress PIN does what the crew PIN does, and afterwards
        raises its silent panic."""
        session = self._current(request)
        if session is None:
            return web.json_response({"error": "locked"}, status=401)
        peer = request.remote or "?"
        now = self._mono()
        matched = await self._pin_of(request, peer, now)
        if isinstance(matched, web.Response):
            return matched
        session.last_active = now
        session.reauth_until = now + REAUTH_S
        session.reauth_duress = matched == "duress"
        log.info("panel_reauthenticated", peer=peer, role=session.role)
        return web.json_response({"ok": True, "valid_s": REAUTH_S})

    async def _lock(self, request: web.Request) -> web.Response:
        self._end(request.cookies.get(COOKIE, ""))
        response = web.Response(status=204)
        response.del_cookie(COOKIE)
        return response

    async def _history(self, request: web.Request) -> web.Response:
        if self._current(request) is None:
            return web.json_response({"error": "locked"}, status=401)
        point = request.query.get("point", "")
        try:
            hours = float(request.query.get("hours", "24"))
        except ValueError:
            hours = math.nan
        if not math.isfinite(hours):  # "nan" and "inf" parse, but are no number of hours
            return web.json_response({"error": "bad_request"}, status=400)
        hours = min(max(hours, 0.1), 24 * 7)
        times, values = self.history.query(point, hours)
        return web.json_response({"point": point, "t": times, "v": values})

    async def _events(self, request: web.Request) -> web.Response:
        if self._current(request) is None:
            return web.json_response({"error": "locked"}, status=401)
        try:
            limit = min(max(int(request.query.get("limit", "50")), 1), 500)
        except ValueError:
            return web.json_response({"error": "bad_request"}, status=400)
        return web.json_response(self._events_shown(limit))

    async def _registers(self, request: web.Request) -> web.Response:
        """A device's registers that ``diag/read`` reads by name: its profile's readable ones,
        for the diagnostics page to offer to tap (no keyboard on the van's panel; the meta
        names only the registers behind points). Only for a role that may run ``diag/read``."""
        session = self._current(request)
        if session is None:
            return web.json_response({"error": "locked"}, status=401)
        spec = self.router.actions.get(DIAG_READ)
        if spec is None or session.role not in self.router.roles(spec):
            return web.json_response({"error": "forbidden"}, status=403)
        device = request.query.get("device", "")
        if device not in spec.args["device"].enum:
            return web.json_response({"error": "unknown_device"}, status=404)
        registers = sorted(self.van.devices.profile(device).registers, key=lambda r: r.name)
        return web.json_response({"device": device, "registers": [
            {"name": r.name, "table": r.table, "address": r.address, "unit": r.unit}
            for r in registers if r.readable]})

    def _events_shown(self, limit: int) -> list[dict[str, Any]]:
        """The newest events, without those of a duress PIN's panic: its room events, the
        panic alarm's events from its raising until the next panic's, and the duress command's
        record."""
        events = [e for e in self.storage.events(min(limit * 2 + 50, 1000))
                  if not (e.get("kind") == "command" and e.get("action") == DURESS_ACTION)]
        ids = self._duress_ids | {str(e.get("panic")) for e in events if e.get("kind") == "room"
                                  and e.get("what") == "panic" and e.get("button") == "duress"}
        if not ids:
            return events[:limit]
        shown: list[dict[str, Any]] = []
        silent = False  # the panic alarm's events (oldest first) are a duress panic's
        for e in reversed(events):
            if e.get("kind") == "alarm" and e.get("alarm") == PANIC_ALARM:
                if e.get("what") == "raised":
                    silent = _panic_id(e.get("detail")) in ids
                if silent:
                    continue
            elif e.get("kind") == "room" and str(e.get("panic")) in ids:
                continue
            shown.append(e)
        return shown[::-1][:limit]

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        session = self._current(request)
        if session is None:
            return web.json_response({"error": "locked"}, status=401)
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=MAX_WS_MESSAGE)
        await ws.prepare(request)
        client = Client(ws, session)
        # registered before the snapshot is taken: changes from here on queue up behind it
        self.clients.add(client)
        session.clients.add(client)
        writer: asyncio.Task[None] | None = None
        try:
            await ws.send_json({"type": "hello", "role": session.role,
                                "idle_lock_s": self.cfg.idle_lock_s,
                                "heartbeat_s": HEARTBEAT_S, "server_time": time.time(),
                                **self._hello()})
            await ws.send_json({"type": "snapshot", **self._snapshot()})
            writer = asyncio.create_task(self._writer(client))
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._from_page(client, msg.data)
                elif msg.type == WSMsgType.BINARY:  # pages send JSON text: say so, not silence
                    await self._not_a_command(client)
        finally:
            self.clients.discard(client)
            session.clients.discard(client)
            if writer is not None:
                writer.cancel()
        return ws

    async def _writer(self, client: Client) -> None:
        while True:
            try:
                async with asyncio.timeout(HEARTBEAT_S):
                    text = await client.queue.get()
            except TimeoutError:
                text = PING
            await client.ws.send_str(text)
            if text == LOCKED:
                await client.ws.close()
                return

    async def _from_page(self, client: Client, data: str) -> None:
        if client.session not in self.sessions.values():
            client.queue.put_nowait(LOCKED)
            return
        msg = _json_object(data)
        if msg is not None and msg.get("type") == "activity":
            client.session.last_active = self._mono()  # the crew touched the screen
            return
        action = msg.get("action") if msg is not None and msg.get("type") == "cmd" else None
        if not isinstance(action, str) or len(action) > 120:
            await self._not_a_command(client)
            return
        assert msg is not None
        session = client.session
        session.last_active = self._mono()
        # only a missing id is made up; any other id (0, "", a list) is the router's to judge
        cid = msg.get("id")
        payload = json.dumps({"id": str(uuid.uuid4()) if cid is None else cid,
                              "args": msg.get("args", {})})
        duress = False
        if _needs_reauth(action, msg.get("args")):
            if session.reauth_until <= self._mono():
                result = self.router.refuse(action, payload, session.role, "panel",
                                            "reauth_required", "enter the PIN again first")
                await client.ws.send_json({"type": "result", **result.as_dict()})
                return
            duress = session.reauth_duress  # one command per PIN entered again
            session.reauth_until, session.reauth_duress = 0.0, False
        result = await self.router.submit(action, payload, session.role, "panel")
        await client.ws.send_json({"type": "result", **result.as_dict()})
        if duress and result.status == "done":
            self._duress()  # the panic is cancelled on screen; HQ gets a silent one

    async def _not_a_command(self, client: Client) -> None:
        await client.ws.send_json({"type": "result", "id": None, "status": "rejected",
                                   "code": "bad_request", "message": "not a command"})


def _panic_id(detail: object) -> str:
    """The panic's id in the panic alarm's detail (``panic-… (desk); a session was running``;
    nothing after the id for a duress panic)."""
    return str(detail or "").split(";")[0].split(" (")[0]


def _needs_reauth(action: str, args: object) -> bool:
    """Cancelling a panic (or acknowledging its alarm) needs the PIN entered again."""
    return action == "room/panic_ack" or (
        action == "alarm/ack" and isinstance(args, dict) and args.get("alarm") == PANIC_ALARM)


def _json_object(text: str) -> dict[str, Any] | None:
    """A JSON object from a page; None for anything else (deep nesting included)."""
    if text.count("[") + text.count("{") > MAX_BRACKETS:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
