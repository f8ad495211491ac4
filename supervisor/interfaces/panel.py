"""The crew's touch panel, served by the supervisor itself (aiohttp; no separate process).

Static page + a WebSocket that pushes every change (no polling); commands from the page go
through the same command router as MQTT (same validation, results and audit), with the role
of the PIN that unlocked the session. It keeps working while the MQTT broker is down.

Access: a crew PIN and a technician PIN (stored hashed); wrong PINs are counted per client and
lock the keypad out after ``max_attempts``; sessions expire; the page locks itself when idle.
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
        van.devices.health_changed.add(
            lambda device, status: self.broadcast({"type": "device", "id": device,
                                                   "status": status}))
        van.status_changed.add(lambda state: self.broadcast({"type": "status", "state": state}))
        self.sessions: dict[str, Session] = {}
        self.clients: set[Client] = set()
        self._attempts: dict[str, _Attempts] = {}
        self._trusted: set[str] = set()  # device cookies of browsers that unlocked
        self._pin_check = asyncio.Semaphore(1)  # PBKDF2 runs in a thread, one at a time
        self.app = web.Application(client_max_size=MAX_REQUEST,
                                   middlewares=[self._guard])
        self.app.add_routes([
            web.get("/", self._index),
            web.get("/api/session", self._session),
            web.post("/api/unlock", self._unlock),
            web.post("/api/lock", self._lock),
            web.get("/api/ws", self._ws),
            web.get("/api/history", self._history),
            web.get("/api/events", self._events),
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
        self.broadcast({"type": "point", "id": pdef.id, **pv.as_dict()})

    def _alarm(self, adef: AlarmDef, state: AlarmState | None, what: str) -> None:
        self.broadcast({"type": "alarm", "id": adef.id,
                        "alarm": None if state is None else state.as_dict(adef)})

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

    async def _unlock(self, request: web.Request) -> web.Response:
        peer = request.remote or "?"
        attempts = self._attempts.setdefault(self._client_key(request), _Attempts())
        now = self._mono()
        if attempts.locked_until > now:
            return web.json_response(
                {"error": "locked_out", "retry_after_s": round(attempts.locked_until - now)},
                status=429)
        try:
            body = _json_object((await request.read()).decode("utf-8"))
        except UnicodeDecodeError:
            body = None
        pin = body.get("pin") if body is not None else None
        if not isinstance(pin, str | int) or isinstance(pin, bool) or len(str(pin)) > 16:
            return web.json_response({"error": "bad_request"}, status=400)
        role = await self._check_pin(str(pin))
        if role is None:
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
        attempts.failures = 0
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
        return response

    async def _check_pin(self, pin: str) -> str | None:
        """The role the PIN unlocks (None: wrong). PBKDF2 is slow on purpose: it runs in a
        thread, one check at a time, so a burst of guesses never stalls the event loop."""
        async with self._pin_check:
            for role, stored in (("technician", self.cfg.technician_pin_hash),
                                 ("crew", self.cfg.crew_pin_hash)):
                if await asyncio.to_thread(verify_pin, pin, stored):
                    return role
        return None

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
        return web.json_response(self.storage.events(limit))

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
            await ws.send_json({"type": "snapshot", **self.van.snapshot()})
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
                text = await asyncio.wait_for(client.queue.get(), HEARTBEAT_S)
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
        client.session.last_active = self._mono()
        # only a missing id is made up; any other id (0, "", a list) is the router's to judge
        cid = msg.get("id")
        payload = json.dumps({"id": str(uuid.uuid4()) if cid is None else cid,
                              "args": msg.get("args", {})})
        result = await self.router.submit(action, payload, client.session.role, "panel")
        await client.ws.send_json({"type": "result", **result.as_dict()})

    async def _not_a_command(self, client: Client) -> None:
        await client.ws.send_json({"type": "result", "id": None, "status": "rejected",
                                   "code": "bad_request", "message": "not a command"})


def _json_object(text: str) -> dict[str, Any] | None:
    """A JSON object from a page; None for anything else (deep nesting included)."""
    if text.count("[") + text.count("{") > MAX_BRACKETS:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
