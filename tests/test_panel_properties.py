"""Hostile input to the crew panel over real HTTP and WebSocket on 127.0.0.1: properties over
arbitrary input (hypothesis, with the budget of testsupport.FUZZ).

What a user would notice: the server never answers 5xx and never logs an unhandled error;
every bad request gets a 4xx (every answer with the security headers), every bad socket
message gets a ``rejected`` result, or the socket is closed with a close code (oversize
frame 1009, broken UTF-8 1007); nothing bad reaches the action (no output switches); a socket
that saw garbage still runs a valid command; and the van's own browser (the kiosk, unlocked
before the attack) keeps being served throughout.

The rig, the crew PIN and the ``page`` helper are test_panel_api's (a tests/conftest.py
cannot hold them: hil-tests/conftest.py is importable as ``conftest`` and mypy refuses two).
"""

from __future__ import annotations

import json
import logging
import math
import string
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from aiohttp import ClientWebSocketResponse, WSMessage, WSMsgType
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st
from test_command_intake import readable
from test_panel_api import CREW, TECH, Rig, page
from testsupport import FUZZ
from yarl import URL

from drivers.buses import DeviceConfig
from supervisor.core.commands import ActionSpec, ArgSpec
from supervisor.core.history import MAX_POINTS
from supervisor.interfaces.panel import (
    MAX_BRACKETS,
    MAX_REQUEST,
    MAX_WS_MESSAGE,
    SECURITY_HEADERS,
    STATIC,
)

ANSWER_S = 10.0  # deadline for one answer: generous for a loaded CI machine
PANEL_ERRORS = {"bad_request", "wrong_pin", "locked_out", "locked", "forbidden_origin"}
SHIPPED = {p.read_bytes() for p in STATIC.rglob("*") if p.is_file()}


# ---- the scene: a panel, the van's kiosk and an attacker on the same address ------------------


class Scene:
    def __init__(self, rig: Rig, kiosk: TestClient[Any, Any], attacker: TestClient[Any, Any],
                 caplog: pytest.LogCaptureFixture) -> None:
        self.rig = rig
        self.kiosk = kiosk  # the van's own browser: unlocked before any attack
        self.attacker = attacker  # everything hostile comes from here
        self.caplog = caplog
        self.applied = 0  # commands the action has run, as this test counts them
        self.done_ids: set[str] = set()
        self.probes = 0

    def __repr__(self) -> str:  # hypothesis prints it with every failing example: short
        return f"Scene(applied={self.applied})"

    async def begin(self) -> None:
        """Each example starts after the lockout of the last one is over (so the PIN check
        keeps being explored), with the attacker unlocked (so the locked paths are reached),
        and with no server error of an earlier example in the log (hypothesis reruns one)."""
        self.caplog.clear()
        self.rig.mono += self.rig.panel.cfg.lockout_s + 1
        assert (await self.attacker.post("/api/unlock", json={"pin": CREW})).status == 200

    async def probe(self, ws: ClientWebSocketResponse) -> None:
        """A valid command on ``ws`` is run and answered ``done``."""
        self.probes += 1
        cid = f"probe-{self.probes}"
        await ws.send_json({"type": "cmd", "action": "power/circuit", "id": cid,
                            "args": {"circuit": "fridge", "on": self.probes % 2 == 0}})
        result = await next_result(ws)
        assert (result["id"], result["status"]) == (cid, "done"), result
        self.count_done(cid)

    def count_done(self, cid: str) -> None:
        self.applied += 1
        self.done_ids.add(cid)

    async def still_serving(self) -> None:
        """Nothing changed that should not have, and the kiosk still unlocks, reads its
        session and runs a command over its own socket."""
        self.check_state()
        async with page(self.kiosk) as ws:
            assert (await self.kiosk.get("/api/session")).status == 200
            await self.probe(ws)
        self.check_state()

    def check_state(self) -> None:
        assert len(self.rig.applied) == self.applied  # nothing invalid reached the action
        assert all(a.keys() == {"circuit", "on"} and a["circuit"] == "fridge"
                   and isinstance(a["on"], bool) for a in self.rig.applied)
        errors = [r for r in self.caplog.records if r.levelno >= logging.ERROR]
        assert not errors, [r.getMessage() for r in errors]


@pytest.fixture
async def scene(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> AsyncIterator[Scene]:
    r = Rig(tmp_path)
    server = TestServer(r.panel.app)
    # two browsers of one server: the attacker's is closed first, the server with the kiosk's
    async with TestClient(server) as kiosk, TestClient(server) as attacker:
        assert (await kiosk.post("/api/unlock", json={"pin": CREW})).status == 200
        yield Scene(r, kiosk, attacker, caplog)


async def next_message(ws: ClientWebSocketResponse) -> WSMessage:
    """The next message that is not the app-level heartbeat, within the deadline."""
    while True:
        msg = await ws.receive(timeout=ANSWER_S)
        if msg.type == WSMsgType.TEXT and json.loads(msg.data) == {"type": "ping"}:
            continue
        return msg


async def next_result(ws: ClientWebSocketResponse) -> dict[str, Any]:
    msg = await next_message(ws)
    assert msg.type == WSMsgType.TEXT, msg
    result: dict[str, Any] = json.loads(msg.data)
    assert result.keys() == {"type", "id", "status", "code", "message"}, result
    assert result["type"] == "result" and isinstance(result["message"], str)
    assert len(msg.data) < 2048 and "Traceback" not in msg.data  # a short, readable answer
    return result


def check_headers(headers: Any) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, name


# ---- strategies -----------------------------------------------------------------------------

surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
texts = st.text(st.characters() | surrogates, max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts
    | st.integers(min_value=10**30),  # huge ints
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=10)


def encode(doc: object, ascii_only: bool) -> bytes:
    """JSON as a browser or an attacker may send it: NaN and Infinity literals as Python
    writes them, lone surrogates escaped (ASCII) or raw (then the bytes are not UTF-8)."""
    return json.dumps(doc, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def truncated(data: bytes) -> st.SearchStrategy[bytes]:
    return st.integers(0, len(data)).map(lambda n: data[:n])


def deep(n: int) -> bytes:
    return b"[" * n + b"]" * n


# ---- HTTP -----------------------------------------------------------------------------------

pins = (st.sampled_from([CREW, TECH, int(CREW), "", "0000", "1" * 17, True, None])
        | texts | json_values)
unlock_docs = st.fixed_dictionaries({"pin": pins}, optional={"x": json_values}) | json_values
unlock_bodies = st.one_of(
    st.binary(max_size=300),
    st.builds(encode, unlock_docs, st.booleans()),
    st.builds(encode, unlock_docs, st.booleans()).flatmap(truncated),  # malformed JSON
    st.integers(1, 6000).map(lambda n: b'{"pin":' + deep(n) + b"}"),
    st.integers(1, 6000).map(lambda n: b'{"pin":' + b"9" * n + b"}"),  # 4300+ digits: refused
    st.sampled_from([b'{"pin":NaN}', b'{"pin":-Infinity}', b'{"pin":1e999}',
                     b'{"pin":"\\ud800"}', b'{"pin":"\xed\xa0\x80"}', b"\xef\xbb\xbf{}"]),
    st.integers(17, MAX_REQUEST).map(lambda n: b'{"pin":"' + b"1" * n + b'"}'),
    st.integers(MAX_REQUEST - 8, 3 * MAX_REQUEST).map(lambda n: b" " * n),  # around the limit
)


def pin_in(body: bytes) -> str | None:
    """The PIN the panel reads from an unlock body: a UTF-8 JSON object of at most
    MAX_BRACKETS brackets whose ``pin`` is text or a whole number of at most 16 characters."""
    try:
        doc = page_json(body.decode("utf-8"))
    except UnicodeDecodeError:
        return None
    pin = doc.get("pin") if doc is not None else None
    if not isinstance(pin, str | int) or isinstance(pin, bool) or len(str(pin)) > 16:
        return None
    return str(pin)


@FUZZ
@given(body=unlock_bodies, tries=st.integers(1, 4),
       content_type=st.sampled_from(["application/json", "text/plain",
                                     "application/x-www-form-urlencoded", "multipart/form-data"]))
async def test_any_unlock_body_gets_a_4xx_unless_it_carries_a_right_pin(
    scene: Scene, body: bytes, tries: int, content_type: str,
) -> None:
    """Any body to /api/unlock, sent up to 4 times: 413 above MAX_REQUEST bytes; else 400 when
    no PIN can be read from it, 401 for a wrong PIN, 429 once locked out, 200 only for a right
    PIN; a session only with the 200; the kiosk is never locked out."""
    await scene.begin()
    pin = pin_in(body)
    for _ in range(tries):
        sessions = len(scene.rig.panel.sessions)
        resp = await scene.attacker.post("/api/unlock", data=body,
                                         headers={"Content-Type": content_type})
        text = await resp.text()
        check_headers(resp.headers)
        if len(body) > MAX_REQUEST:
            assert resp.status == 413 and "Maximum request body size" in text
        elif resp.status != 429:  # a lockout answers anything with 429, before the body
            assert resp.status == (400 if pin is None else 200 if pin in (CREW, TECH) else 401)
        if resp.status not in (200, 413):
            assert json.loads(text)["error"] in PANEL_ERRORS
        assert len(scene.rig.panel.sessions) == sessions + (resp.status == 200)
    await scene.still_serving()


methods = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
url_chars = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@/%"
junk = st.text(url_chars, max_size=40)
paths = st.one_of(
    st.sampled_from(["/", "/api/session", "/api/unlock", "/api/lock", "/api/ws", "/api/reauth",
                     "/api/history", "/api/events", "/api/registers", "/static/app.js",
                     "/static/index.html"]),
    junk.map(lambda s: "/static/" + s),
    junk.map(lambda s: "/" + s),
    st.sampled_from(["/static/../../../etc/passwd", "/static/%2e%2e/%2e%2e/etc/passwd",
                     "/static/..%2f..%2fpyproject.toml", "//etc/passwd", "/api/../static/app.js"]),
)
origins = st.none() | st.sampled_from(["http://evil.example", "null", ""]) | st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)


@FUZZ
@given(method=methods, path=paths, query=junk, body=st.binary(max_size=200), origin=origins,
       cookie=st.none() | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E)
                                  .filter(lambda c: c not in ";,\"\\"), max_size=40))
async def test_any_request_anywhere_is_answered_without_a_5xx(
    scene: Scene, method: str, path: str, query: str, body: bytes, origin: str | None,
    cookie: str | None,
) -> None:
    """Any method, path (traversals included), query, body, Origin and session cookie: never a
    5xx, the security headers on every answer, a foreign Origin never changes anything, and
    /static serves nothing but the panel's own files."""
    await scene.begin()
    headers = {} if origin is None else {"Origin": origin}
    if cookie is not None:
        headers["Cookie"] = f"mcw_session={cookie}"
    url = URL(f"http://{scene.attacker.host}:{scene.attacker.port}{path}?{query}", encoded=True)
    async with scene.attacker.session.request(method, url, data=body, headers=headers) as resp:
        data = await resp.read()
        assert resp.status < 500, (resp.status, data[:200])
        check_headers(resp.headers)
        host = f"{scene.attacker.host}:{scene.attacker.port}"
        if (method not in ("GET", "HEAD") or path == "/api/ws") \
                and origin not in (None, f"http://{host}", f"https://{host}"):
            assert resp.status == 403
        if resp.status == 200 and method == "GET" and not resp.url.path.startswith("/api/"):
            assert data in SHIPPED  # the panel's own files, nothing from elsewhere
    await scene.still_serving()


@FUZZ
@given(device=st.text(max_size=40) | st.sampled_from(["relays", "relays ", "RELAYS", "../relays"]))
async def test_register_names_only_for_a_device_diag_read_reads(scene: Scene,
                                                                device: str) -> None:
    """/api/registers?device= anything: a technician gets the names exactly for a device
    diag/read accepts (404 otherwise); the crew never gets them (403)."""
    await scene.begin()
    rig = scene.rig
    if "diag/read" not in rig.router.actions:
        rig.van.devices.devices["relays"] = DeviceConfig(
            id="relays", profile="waveshare_relay_8ch", bus="rs485", unit=2)

        async def read(args: dict[str, Any]) -> str:
            return "read"

        rig.router.register(ActionSpec("diag/read", read, frozenset({"technician"}),
                                       {"device": ArgSpec("enum", enum=("relays",))}))
    crew = await scene.attacker.get("/api/registers", params={"device": device})
    assert crew.status == 403
    assert (await scene.attacker.post("/api/unlock", json={"pin": TECH})).status == 200
    resp = await scene.attacker.get("/api/registers", params={"device": device})
    assert resp.status == (200 if device == "relays" else 404)
    if resp.status == 200:
        assert (await resp.json())["device"] == "relays"


numbers = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e400", "-1e400", "0", "-5",
                     "1e-400", "0x10", " 12 ", "1_000", "١٢", "9" * 5000]),
    st.floats().map(repr), st.integers().map(str),
)


@FUZZ
@given(hours=numbers, limit=numbers, point=st.text(max_size=60))
async def test_history_and_events_refuse_what_is_not_a_number(
    scene: Scene, hours: str, limit: str, point: str,
) -> None:
    """/api/history?hours= answers 200 exactly for a finite number of hours (clamped to a
    week), else 400; /api/events?limit= 200 exactly for a whole number; both bounded."""
    await scene.begin()
    resp = await scene.attacker.get("/api/history", params={"point": point, "hours": hours})
    try:
        finite = math.isfinite(float(hours))
    except ValueError:
        finite = False
    assert resp.status == (200 if finite else 400)
    if finite:
        body = await resp.json()
        assert body["point"] == point and len(body["t"]) == len(body["v"]) <= MAX_POINTS
    resp = await scene.attacker.get("/api/events", params={"limit": limit})
    try:
        int(limit)
        whole = True
    except ValueError:
        whole = False
    assert resp.status == (200 if whole else 400)
    if whole:
        assert len(await resp.json()) <= 500
    await scene.still_serving()


# ---- WebSocket ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    kind: Literal["text", "binary"]
    data: bytes  # a text frame's bytes too: an attacker's need not be UTF-8


ids = st.none() | st.sampled_from(["", 0, False, [], "p", "x" * 64, "x" * 65, "a\0b"]) | texts \
    | json_values
valid_args = st.fixed_dictionaries({"circuit": st.just("fridge"), "on": st.booleans()})
commands = st.fixed_dictionaries(  # near-valid: the ones that must (not) run
    {"type": st.just("cmd"), "action": st.just("power/circuit"),
     "args": valid_args | valid_args | json_values},
    optional={"id": ids, "expires": json_values})
other_docs = st.fixed_dictionaries(
    {"type": st.sampled_from(["cmd", "activity", "ping", "hello", "CMD", ""]) | json_values},
    optional={"action": st.sampled_from(["power/circuit", "x" * 121]) | texts | json_values,
              "id": ids, "args": valid_args | json_values, "x": json_values})
page_docs = st.one_of(commands, commands, other_docs, json_values)  # one_of picks evenly
json_bytes = st.builds(encode, page_docs, st.booleans())
VALID = b'{"type":"cmd","action":"power/circuit","args":{"circuit":"fridge","on":true}}'
texts_frames = st.one_of(
    json_bytes,
    json_bytes.flatmap(truncated),  # malformed JSON, maybe cut inside a UTF-8 sequence
    st.text(max_size=200).map(str.encode),
    st.binary(max_size=100),  # as a text frame: mostly not UTF-8
    st.integers(1, MAX_WS_MESSAGE // 2).map(deep),
    st.integers(1, MAX_WS_MESSAGE).map(lambda n: VALID[:-2] + b',"n":' + b"9" * n + b"}}"),
    st.sampled_from([VALID.replace(b"true", b"NaN"), VALID.replace(b"true", b"1e999"),
                     VALID.replace(b'"cmd"', b'"cmd","id":"\\udc00"'), VALID + b"x"]),
    st.integers(MAX_WS_MESSAGE - 8, 3 * MAX_WS_MESSAGE).map(lambda n: b" " * n),
)
json_frames = st.builds(Frame, st.just("text"), json_bytes)
frames = st.one_of(
    json_frames, json_frames, json_frames,  # most of what a page could send is JSON text
    st.builds(Frame, st.just("text"), texts_frames),
    st.builds(Frame, st.just("binary"), st.binary(max_size=200) | json_bytes | st.just(VALID)
              | st.integers(MAX_WS_MESSAGE - 8, 3 * MAX_WS_MESSAGE).map(lambda n: b"\0" * n)),
)


def page_json(text: str) -> dict[str, Any] | None:
    """What the panel reads from a page's text: a JSON object of at most MAX_BRACKETS
    brackets (NaN, Infinity and lone surrogates as Python's json reads them)."""
    if text.count("[") + text.count("{") > MAX_BRACKETS:
        return None
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def runs(doc: dict[str, Any]) -> bool:
    """A command the panel must run: power/circuit with exactly the action's arguments and an
    id that is absent (or null: one is made up) or readable."""
    args = doc.get("args")
    return (doc.get("type") == "cmd" and doc.get("action") == "power/circuit"
            and (doc.get("id") is None or readable(doc["id"]))
            and isinstance(args, dict) and args.keys() == {"circuit", "on"}
            and args["circuit"] == "fridge" and isinstance(args["on"], bool))


Expect = Literal["result", "nothing"] | int  # an int: the socket is closed with that code


def expect(frame: Frame) -> Expect:
    if len(frame.data) >= MAX_WS_MESSAGE:  # uncompressed, aiohttp reads only less than its limit
        return 1009  # message too big
    if frame.kind == "binary":
        return "result"
    try:
        text = frame.data.decode("utf-8")
    except UnicodeDecodeError:
        return 1007  # invalid frame payload data
    doc = page_json(text)
    return "nothing" if doc is not None and doc.get("type") == "activity" else "result"


@FUZZ
@given(sent=st.lists(frames, min_size=1, max_size=4))
async def test_any_socket_message_is_answered_or_closes_the_socket_with_a_code(
    scene: Scene, sent: list[Frame],
) -> None:
    """Any text or binary frames on an unlocked page's socket, one after the other: each gets
    one ``rejected`` result (``done`` only for a valid command, ``duplicate`` for a done id
    again) or nothing for an activity note; a frame above MAX_WS_MESSAGE bytes closes the
    socket with 1009 (from MAX_WS_MESSAGE bytes on, uncompressed), a text frame that is not
    UTF-8 with 1007. Then a valid command runs on
    the same socket (or, once closed, on a new one), and the kiosk is still served."""
    await scene.begin()
    closed = False
    async with page(scene.attacker) as ws:
        for frame in sent:
            await ws.send_frame(frame.data, WSMsgType.TEXT if frame.kind == "text"
                                else WSMsgType.BINARY)
            outcome = expect(frame)
            if isinstance(outcome, int):
                msg = await next_message(ws)
                assert msg.type == WSMsgType.CLOSE and ws.close_code == outcome, msg
                closed = True
                break
            if outcome == "nothing":
                continue  # the next answer read must not be one for this frame
            result = await next_result(ws)
            doc = page_json(frame.data.decode()) if frame.kind == "text" else None
            if doc is not None and runs(doc):
                cid = doc.get("id")
                if cid in scene.done_ids:
                    assert (result["id"], result["status"]) == (cid, "duplicate"), result
                else:
                    assert result["status"] == "done", result
                    assert cid is None or result["id"] == cid
                    scene.count_done(result["id"])
            else:
                assert result["status"] == "rejected", (frame, result)
            scene.check_state()
        if not closed:
            await scene.probe(ws)  # the socket stays usable after the garbage
    if closed:
        async with page(scene.attacker) as ws:
            await scene.probe(ws)
    await scene.still_serving()


# ---- the limits, exactly --------------------------------------------------------------------


async def test_the_limits_are_exact(scene: Scene) -> None:
    """16 KiB of HTTP body and 512 brackets of JSON are read, one byte (bracket) more is
    refused (413, not parsed); a socket message is read below 8 KiB (aiohttp refuses one of
    max_msg_size bytes when uncompressed), closed with 1009 from 8 KiB on."""
    assert (MAX_REQUEST, MAX_WS_MESSAGE, MAX_BRACKETS) == (16 * 1024, 8 * 1024, 512)
    await scene.begin()
    at_limit = b'{"pin":"0000"}'.ljust(MAX_REQUEST)  # JSON allows trailing blanks
    assert (await scene.attacker.post("/api/unlock", data=at_limit)).status == 401
    assert (await scene.attacker.post("/api/unlock", data=at_limit + b" ")).status == 413
    nested = b'{"pin":"1234","x":' + deep(MAX_BRACKETS - 1) + b"}"
    assert (await scene.attacker.post("/api/unlock", data=nested)).status == 200
    nested = b'{"pin":"1234","x":' + deep(MAX_BRACKETS) + b"}"
    assert (await scene.attacker.post("/api/unlock", data=nested)).status == 400
    cmd = b'{"type":"cmd","action":"power/circuit","id":"lim","args":{"circuit":"fridge",' \
          b'"on":true},"x":'
    async with page(scene.attacker) as ws:
        # the page's own keys beyond type, action, id and args are ignored: the command runs
        await ws.send_str((cmd + deep(MAX_BRACKETS - 2) + b"}").decode())
        assert (await next_result(ws))["status"] == "done"
        scene.count_done("lim")
        await ws.send_str((cmd + deep(MAX_BRACKETS - 1) + b"}").decode())
        assert (await next_result(ws))["code"] == "bad_request"
        await ws.send_str("x" * (MAX_WS_MESSAGE - 1))
        assert (await next_result(ws))["code"] == "bad_request"
        await ws.send_str("x" * MAX_WS_MESSAGE)
        msg = await next_message(ws)
        assert msg.type == WSMsgType.CLOSE and ws.close_code == 1009
    await scene.still_serving()


async def test_a_compressed_message_is_limited_by_its_unpacked_size(scene: Scene) -> None:
    """A browser compresses its messages (permessage-deflate): a small frame that unpacks to
    more than MAX_WS_MESSAGE bytes closes the socket with 1009 (no zip bomb), and an unpacked
    message of MAX_WS_MESSAGE bytes is still read."""
    await scene.begin()
    assert (await scene.attacker.post("/api/unlock", json={"pin": CREW})).status == 200
    async with scene.attacker.ws_connect("/api/ws", compress=15) as ws:
        assert ws.compress == 15  # the server agreed to compression
        await next_message(ws)
        await next_message(ws)
        await ws.send_str("x" * MAX_WS_MESSAGE)
        assert (await next_result(ws))["code"] == "bad_request"
        await ws.send_str("x" * (100 * MAX_WS_MESSAGE))  # some 800 bytes on the wire
        msg = await next_message(ws)
        assert msg.type == WSMsgType.CLOSE and ws.close_code == 1009
    await scene.still_serving()
