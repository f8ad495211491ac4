"""Consultation room: privacy at a touch, help at a press.

* **Session** (``room/session``, from the panel or the room's own button): the door sign
  "occupied - do not enter" lit, doorbell and intercom to visual only, sound masking outside
  the room, the recording equipment and its "recording" light only with a recording. The
  climate zone of the room takes its session preset and the lighting its calm scene by reading
  ``room/session/active`` (an overlay: when the session ends each returns to what it was,
  also after a restart in between). The crew sees how long it runs; HQ sees only whether one
  runs (the start time and the recording flag are local points, never on MQTT). Nothing
  personal is asked, stored or logged.
* **Panic** (supervised buttons on the room node, or GPIO inputs): a press raises the critical,
  latched ``room/panic`` alarm at once, silent in the room unless configured otherwise, the
  exterior beacon on where there is one. The panic is written to disk before it is raised (so
  a restart raises it again), the node's latch is acknowledged only after that, and the MQTT
  bridge keeps it queued until the broker has it. Delivery, as the crew sees it:
  ``stored`` -> ``sent`` (the local broker has it) -> ``received`` (HQ answered
  ``room/panic_received``), or ``not_delivered`` when no receipt came within
  ``delivery_timeout_s``; never "sent" for what nobody received. It stays until acknowledged
  (``room/panic_ack``: the crew, PIN-authenticated on the panel, or HQ), recorded and told to
  HQ. A walk test (``room/walk_test``) turns presses into ``room/panic_test`` for HQ.
  ``room/duress`` (the panel's duress PIN) raises a silent panic. A cut or shorted panic wire
  raises ``room/panic_tamper_<button>``.
* **The node's lease**: the lease register is written every third of the lease, so the node
  keeps its outputs while this supervisor lives and falls to its safe states by itself when
  it does not (a restart is far shorter than the lease: the room sees no change).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import asdict, dataclass
from typing import Any

from drivers.errors import WriteError
from supervisor.comms.config import CommsConfig
from supervisor.comms.subsystem import EXACT as POSITION
from supervisor.core.alarms import AlarmDef
from supervisor.core.commands import ON_BOARD, ActionSpec, ArgSpec, CommandFailed
from supervisor.core.outputs import OutputDef
from supervisor.core.points import PointDef, PointValue
from supervisor.core.subsystem import Context
from supervisor.room.config import NODE_BUTTONS, PanicButton, RoomConfig

LOOP_S = 0.5
DELIVERY = ("none", "stored", "sent", "received", "not_delivered")
ZONE_STATES = ("normal", "alarm", "tamper_open", "tamper_short")
CREW_OR_HQ = frozenset({"crew", "technician", "hq"})

PANIC = AlarmDef("room/panic", "critical", "NAPAD / PRZYMUS: wezwanie pomocy z pokoju",
                 "PANIC / DURESS: help called from the room", latching=True)
# raised while a button is held in a walk test, cleared when released: each press reaches HQ
PANIC_TEST = AlarmDef("room/panic_test", "info", "Test przycisku napadowego (próba)",
                      "Panic button walk test (TEST ONLY)")


def _tamper_alarm(button: PanicButton) -> AlarmDef:
    label = button.label or button.name
    return AlarmDef(f"room/panic_tamper_{button.name}", "warning",
                    f"Sabotaż przycisku napadowego: {label} (przecięty lub zwarty przewód)",
                    f"Panic button tamper: {label} (wire cut or shorted)", latching=True)


@dataclass
class Panic:
    """One panic, as persisted: what the crew and HQ are told about it."""

    id: str
    since: float  # wall time of the press
    source: str  # the button, or "duress"
    session: bool  # a session was running
    delivery: str = "stored"
    # where the van was: {"lat", "lon", "age_s", "fix"} (fix false: the last known position,
    # age_s old), None without a GPS or when the config keeps it out of panics
    position: dict[str, object] | None = None


class RoomSubsystem:
    def __init__(self, ctx: Context, cfg: RoomConfig) -> None:
        self.ctx, self.cfg = ctx, cfg
        self.store = ctx.points
        self._mono, self._wall = ctx.clock.monotonic, ctx.clock.wall
        self.actuator = ctx.actuator()
        self.wake = self.actuator.wake
        # presses have their own loop: a panic is never held up behind the main turn's writes
        # on the RS-485 bus (the lease, the node's acknowledgement: tens of ms at 9600 Bd)
        self.press_wake = asyncio.Event()
        self._press_heartbeat = ctx.loop_heartbeat("presses")
        self._press_lock = asyncio.Lock()
        saved = ctx.settings.get("session", None)
        self.session_since: float | None = saved.get("since") if isinstance(saved, dict) \
            else None
        self.recording = bool(saved.get("recording")) if isinstance(saved, dict) else False
        self.panic = _restore_panic(ctx.settings.get("panic", None))
        self._panic_counter = int(ctx.settings.get("panic_counter", 0))
        self.walk_test_until = 0.0  # wall time; a walk test is not kept across a restart
        self._pending: list[str] = []  # presses seen, not yet raised (by source)
        self._counts: dict[str, int] = {}  # the node's press counters at the last turn
        # its latched panic bits at the last turn, kept across a restart: a button still held
        # (latched) after its panic was handled is no new press for the next supervisor
        self._latched_seen = int(ctx.settings.get("node_latched", 0) or 0)
        self._lease_at = -math.inf
        self._gpio_pressed_at: dict[str, float] = {}
        self._gpio_released: set[str] = set()  # GPIO buttons seen released since the start
        self.walk_test_last: tuple[str, float] | None = None  # (button, wall time)
        self._define()
        ctx.alarms.define(PANIC)
        ctx.alarms.define(PANIC_TEST)
        for button in cfg.panic:
            ctx.alarms.define(_tamper_alarm(button))
        if self.panic is not None:
            self._raise(self.panic)  # persisted before a restart or a power cut: raised again
        self.store.changed.add(self._point_changed)
        ctx.alarms.published.add(self._published)
        self._publish(False)  # the session as persisted, before any other loop's first turn

    # ---- declarations ------------------------------------------------------------------

    def _define(self) -> None:
        ctx, cfg, define = self.ctx, self.cfg, self.store.define
        node = cfg.node
        if node is not None:
            bind = ctx.devices.bind
            bind(node, "panic_latched", "room/node/panic_latched")
            bind(node, "panic_presses", "room/node/panic_presses")
            bind(node, "session_presses", "room/node/session_presses")
            bind(node, "fw_version", "room/node/fw_version",
                 description="Room node firmware (major * 256 + minor)")
            bind(node, "door", "room/door", description="Consultation room door")
            bind(node, "occupancy", "room/occupancy", description="Someone in the room")
            for button in cfg.panic:
                if button.source == "node":
                    bind(node, f"panic_{button.name}", f"room/panic/{button.name}/zone",
                         description=f"Panic button {button.label or button.name}: wiring")
            declare = ctx.outputs.declare
            # the door sign is held through a restart of ours (the node's lease is its safe
            # state: off once we stay away); the recording light goes off with the recording
            # equipment's power, so the light never says less than the truth
            declare(OutputDef("room/door_sign", None, device=node, register="door_sign"))
            declare(OutputDef("room/recording_light", 0, device=node,
                              register="recording_light"))
            declare(OutputDef("room/buzzer", 0, device=node, register="buzzer"))
            # the node's handshakes, not outputs a technician can check by switching them
            declare(OutputDef("room/node_lease", None, device=node, register="lease",
                              self_test=False))
            declare(OutputDef("room/panic_ack", None, device=node, register="panic_ack",
                              self_test=False))
        for oid, relay in self._relays().items():
            # masking and the doorbell's visual mode are held through a restart (a session
            # goes on); the recording and the beacon stop with us
            held = oid in ("room/sound_masking", "room/doorbell_visual")
            ctx.outputs.declare(OutputDef(oid, None if held else False, device=relay[0],
                                          register=relay[1]))
        define(PointDef("room/session/active", "bool", "", "A session runs in the room"))
        # local only: HQ is told whether a session runs, not since when or what it records
        define(PointDef("room/session/since", "number", "s",
                        "Session start (epoch s, 0: none)", local=True))
        define(PointDef("room/session/recording", "bool", "", "The session is recorded",
                        local=True))
        define(PointDef("room/panic/active", "bool", "", "A panic is raised"))
        define(PointDef("room/panic/delivery", "enum", "", "Where the panic has got to",
                        enum=DELIVERY, enum_set="panic_delivery"))
        define(PointDef("room/panic/source", "string", "", "Which button (or duress)"))
        define(PointDef("room/panic/since", "number", "s", "Panic time (epoch s, 0: none)"))
        define(PointDef("room/walk_test/active", "bool", "", "Panic buttons in walk test"))
        define(PointDef("room/walk_test/last_button", "string", "",
                        "The button last pressed in a walk test"))
        define(PointDef("room/walk_test/last_at", "number", "s",
                        "When (epoch s, 0: none since the start)"))
        for button in cfg.panic:
            if button.source == "gpio":
                define(PointDef(f"room/panic/{button.name}/zone", "enum", "",
                                f"Panic button {button.label or button.name}",
                                enum=ZONE_STATES, enum_set="panic_zone"))
        reg = ctx.actions.register
        reg(ActionSpec("room/session", self._session_action, ON_BOARD,
                       {"on": ArgSpec("bool"), "recording": ArgSpec("bool", required=False)},
                       "Start or end a session in the consultation room"))
        reg(ActionSpec("room/panic_ack", self._ack_action, CREW_OR_HQ, {},
                       "Acknowledge (cancel) the panic: recorded and told to HQ"))
        reg(ActionSpec("room/panic_received", self._received_action, frozenset({"hq"}),
                       {"panic": ArgSpec("string")},
                       "HQ has received the panic with this id"))
        reg(ActionSpec("room/walk_test", self._walk_test_action, ON_BOARD,
                       {"on": ArgSpec("bool")},
                       "Walk test of the panic buttons: presses reach HQ marked as a test"))
        reg(ActionSpec("room/duress", self._duress_action, frozenset({"crew"}), {},
                       "A silent panic (the panel's duress PIN)"))

    def _relays(self) -> dict[str, tuple[str, str]]:
        """Output id -> (device, register) of the configured relays."""
        session = self.cfg.session
        named = {"room/beacon": self.cfg.beacon, "room/sound_masking": session.sound_masking,
                 "room/doorbell_visual": session.doorbell_visual,
                 "room/recording_power": session.recording_power}
        return {oid: (r.device, r.output) for oid, r in named.items() if r is not None}

    # ---- inputs --------------------------------------------------------------------------

    def _point_changed(self, pdef: PointDef, pv: PointValue) -> None:
        """A press on the node or a GPIO panic line wakes both loops at once."""
        if pdef.id in ("room/node/panic_latched", "room/node/panic_presses",
                       "room/node/session_presses") or pdef.id in self._panic_lines():
            self.press_wake.set()
            self.wake.set()

    def _panic_lines(self) -> dict[str, PanicButton]:
        return {f"io/{b.line}": b for b in self.cfg.panic if b.line is not None}

    def _int(self, pid: str) -> int | None:
        value = self.store.good(pid)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def _presses(self) -> list[str]:
        """The buttons newly pressed since the last turn: a bit newly latched in the node, its
        press counter moved (a press latched and acknowledged between two polls), a GPIO
        button held for its ``hold_s``. A button held down counts once."""
        latched = self._int("room/node/panic_latched")
        node_buttons = [b.name for b in self.cfg.panic if b.source == "node"]
        pressed: list[str] = []
        if latched is not None:  # unknown (not read yet, node away) is no change
            pressed = [name for name in node_buttons
                       if latched & (1 << NODE_BUTTONS[name]) and not self._latched_seen
                       & (1 << NODE_BUTTONS[name])]
            if latched != self._latched_seen:
                self.ctx.settings.put("node_latched", latched)
            self._latched_seen = latched
        if self._moved("room/node/panic_presses") and not pressed:
            pressed.append(node_buttons[0] if node_buttons else "node")
        now = self._mono()
        for pid, button in self._panic_lines().items():
            level = self.store.good(pid)
            if level is False:
                self._gpio_released.add(button.name)
            if level is not True:
                self._gpio_pressed_at.pop(button.name, None)
                continue
            if button.name not in self._gpio_released:
                # active since we started (a line read before its real level, a button held
                # through a restart after its panic was handled): a press is an edge
                continue
            first = self._gpio_pressed_at.setdefault(button.name, now)
            if first != -math.inf and now - first >= button.hold_s:
                pressed.append(button.name)
                self._gpio_pressed_at[button.name] = -math.inf  # counted until released
        return pressed

    def _held(self) -> bool:
        """Whether a panic button is still latched in the node or held down on GPIO."""
        return bool(self._latched_seen & sum(1 << bit for bit in NODE_BUTTONS.values())) \
            or bool(self._gpio_pressed_at)

    def _moved(self, pid: str) -> bool:
        """Whether the node's counter ``pid`` changed since the last turn (not at the first
        reading: the node's count since its boot is no press of ours)."""
        count = self._int(pid)
        if count is None:
            return False
        last = self._counts.get(pid)
        self._counts[pid] = count
        return last is not None and count != last

    # ---- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Evaluate every half second, at once on a press; presses in a loop of their own."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.ctx.turns(self.press_wake, self._press_turn,
                                          self._press_heartbeat), name="room presses")
            await self.ctx.turns(self.wake, self._turn)

    async def _press_turn(self) -> float:
        await self.check_presses()
        return LOOP_S

    async def _turn(self) -> float:
        await self.step()
        return LOOP_S

    async def check_presses(self) -> None:
        """A new press raises the panic (or, in a walk test, the test alarm): nothing on the
        bus is awaited on the way, only the panic's write to disk."""
        async with self._press_lock:  # one press, one panic, whichever loop sees it first
            wall = self._wall()
            pressed = self._presses()
            testing = wall < self.walk_test_until
            if pressed and testing:
                self.walk_test_last = (pressed[0], wall)
                self.ctx.alarms.set(PANIC_TEST.id, True, wall, f"walk test: {pressed[0]}")
                self.ctx.event({"kind": "room", "what": "panic_test", "button": pressed[0]})
            elif pressed and self.panic is None:
                await self._new_panic(pressed[0], wall)
            if not self._held():
                self.ctx.alarms.set(PANIC_TEST.id, False, wall)
            if pressed:  # the crew's panel shows it now, not after the main turn's writes
                self._publish(testing)

    async def step(self) -> None:
        """One turn: presses, the session's outputs, the lease, then the writer."""
        await self.check_presses()
        wall = self._wall()
        if self._moved("room/node/session_presses"):
            self._set_session(self.session_since is None, False)
        testing = wall < self.walk_test_until
        await self._ack_node()
        self._tamper(wall)
        self._delivery(wall)
        self._outputs()
        await self._renew_lease()
        await self.actuator.step()
        self._publish(testing)

    async def _new_panic(self, source: str, wall: float) -> None:
        """Persist, then raise: a power cut after the press raises it again at start."""
        self._panic_counter += 1
        self.ctx.settings.put("panic_counter", self._panic_counter)
        panic = Panic(f"panic-{int(wall)}-{self._panic_counter}", wall, source,
                      self.session_since is not None, position=self._position(wall))
        self.ctx.settings.put("panic", asdict(panic))
        await self.ctx.settings.durable()
        self.panic = panic
        self._raise(panic)
        self.ctx.event({"kind": "room", "what": "panic", "panic": panic.id, "button": source,
                        "session": panic.session})

    def _position(self, wall: float) -> dict[str, object] | None:
        """The van's exact position for HQ (the comms subsystem's on-board points)."""
        comms = self.ctx.config.section("comms")
        if not isinstance(comms, CommsConfig) or not comms.position.in_panic:
            return None
        lat, lon = self.store.get(POSITION[0]), self.store.get(POSITION[1])
        if lat is None or lon is None or lat.value is None or lon.value is None:
            return None
        return {"lat": lat.value, "lon": lon.value, "age_s": round(max(0.0, wall - lat.ts)),
                "fix": lat.quality == "good" and lon.quality == "good"}

    def _raise(self, panic: Panic) -> None:
        where = "" if panic.source == "duress" else f" ({panic.source})"
        session = "; a session was running" if panic.session else ""
        self.ctx.alarms.set(PANIC.id, True, panic.since, f"{panic.id}{where}{session}",
                            {"panic": panic.id, "session": panic.session,
                             "position": panic.position})

    async def _ack_node(self) -> None:
        """Tell the node its latched presses are on record (each is on disk by now: a panic,
        or a walk-test event); it clears each once its button is released."""
        bits = self._latched_seen & sum(1 << bit for bit in NODE_BUTTONS.values())
        if bits and self.cfg.node is not None:
            try:
                await self.ctx.outputs.write("room/panic_ack", bits)
            except WriteError as exc:  # retried at the next turn: the node still latches it
                self.ctx.log.warning("panic_ack_failed", error=str(exc))

    def _tamper(self, wall: float) -> None:
        for button in self.cfg.panic:
            zone = self.store.good(f"room/panic/{button.name}/zone")
            self.ctx.alarms.set(f"room/panic_tamper_{button.name}",
                                zone in ("tamper_open", "tamper_short"), wall,
                                str(zone) if zone else "")

    def _delivery(self, wall: float) -> None:
        panic = self.panic
        if panic is None or panic.delivery in ("received", "not_delivered"):
            return
        if wall - panic.since >= self.cfg.delivery_timeout_s:
            self._set_delivery("not_delivered")

    def _published(self, alarm_id: str) -> None:
        """The alarm's message is on the local broker (the MQTT bridge says so)."""
        if alarm_id == PANIC.id and self.panic is not None and self.panic.delivery == "stored":
            self._set_delivery("sent")

    def _set_delivery(self, delivery: str) -> None:
        assert self.panic is not None
        self.panic.delivery = delivery
        self.ctx.settings.put("panic", asdict(self.panic))
        self.ctx.event({"kind": "room", "what": "panic_delivery", "panic": self.panic.id,
                        "delivery": delivery})
        self.wake.set()

    def _outputs(self) -> None:
        want = self.actuator.want
        session = self.session_since is not None
        if self.cfg.node is not None:
            want("room/door_sign", 1 if session else 0)
            want("room/recording_light", 1 if session and self.recording else 0)
            want("room/buzzer", 1 if self._audible() and not self.cfg.silent else 0)
        relays = self._relays()
        for oid, on in (("room/sound_masking", session), ("room/doorbell_visual", session),
                        ("room/recording_power", session and self.recording),
                        ("room/beacon", self._audible())):
            if oid in relays:
                want(oid, on)

    def _audible(self) -> bool:
        """A panic the outside may see or hear (beacon, buzzer): not a duress panic, which
        stays silent for whoever is watching the one who raised it."""
        return self.panic is not None and self.panic.source != "duress"

    async def _renew_lease(self) -> None:
        """Write the lease every third of it: the node keeps its outputs while we live."""
        if self.cfg.node is None or self._mono() - self._lease_at < self.cfg.lease_s / 3:
            return
        self._lease_at = self._mono()
        try:
            await self.ctx.outputs.write("room/node_lease", self.cfg.lease_s)
        except WriteError as exc:  # the node may be away: tried again next time
            self.ctx.log.warning("room_node_lease_failed", error=str(exc))

    def _publish(self, testing: bool) -> None:
        wall, put = self._wall(), self.store.update
        put("room/session/active", self.session_since is not None, wall)
        put("room/session/since", round(self.session_since or 0), wall)
        put("room/session/recording", self.session_since is not None and self.recording, wall)
        panic = self.panic
        put("room/panic/active", panic is not None, wall)
        put("room/panic/delivery", panic.delivery if panic else "none", wall)
        put("room/panic/source", panic.source if panic else "", wall)
        put("room/panic/since", round(panic.since) if panic else 0, wall)
        put("room/walk_test/active", testing, wall)
        last = self.walk_test_last
        put("room/walk_test/last_button", last[0] if last else "", wall)
        put("room/walk_test/last_at", round(last[1]) if last else 0, wall)
        for button in self.cfg.panic:
            if button.line is not None:
                pressed = self.store.good(f"io/{button.line}")
                put(f"room/panic/{button.name}/zone",
                    None if pressed is None else ("alarm" if pressed else "normal"), wall)

    def stop(self) -> None:
        """Shutdown: nothing to switch on; the node's lease runs out by itself if we stay
        away (a restart is shorter)."""

    # ---- actions -------------------------------------------------------------------------

    async def _session_action(self, args: dict[str, Any]) -> str:
        on, recording = bool(args["on"]), bool(args.get("recording", False))
        if on == (self.session_since is not None) and (not on or recording == self.recording):
            return "the session already runs" if on else "no session runs"
        self._set_session(on, recording)
        await self._confirm_outputs()
        return "session started" + (" (recorded)" if recording else "") if on \
            else "session ended"

    def _set_session(self, on: bool, recording: bool) -> None:
        if on and self.session_since is None:
            self.session_since = self._wall()
        elif not on:
            self.session_since = None
        self.recording = on and recording
        self.ctx.settings.put("session", {"since": self.session_since,
                                          "recording": self.recording} if on else None)
        # no personal data: only that a session started or ended
        self.ctx.event({"kind": "room", "what": "session", "on": on})
        self._outputs()
        self.wake.set()

    async def _confirm_outputs(self) -> None:
        """The door sign (and the recording light) confirmed by read-back."""
        if self.cfg.node is None:
            return
        outputs = [("room/door_sign", self.actuator.target("room/door_sign")),
                   ("room/recording_light", self.actuator.target("room/recording_light"))]
        try:
            await asyncio.gather(*(self.actuator.confirm(oid, value, 5.0)
                                   for oid, value in outputs if value is not None))
        except WriteError as exc:  # answered as failed, the rules go on
            raise CommandFailed("not_confirmed", f"the room node did not confirm: {exc}",
                                "failed") from exc

    async def _ack_action(self, args: dict[str, Any]) -> str:
        panic = self.panic
        if panic is None:
            raise CommandFailed("no_panic", "no panic is raised", "rejected")
        self.panic = None
        self.ctx.settings.put("panic", None)
        self.ctx.alarms.set(PANIC.id, False, self._wall())
        self.ctx.alarms.ack(PANIC.id)
        self.ctx.event({"kind": "room", "what": "panic_cancelled", "panic": panic.id})
        self.wake.set()
        return f"panic {panic.id} acknowledged"

    async def _received_action(self, args: dict[str, Any]) -> str:
        panic = self.panic
        if panic is None or str(args["panic"]) != panic.id:
            raise CommandFailed("unknown_panic", "no such panic is raised", "rejected")
        if panic.delivery != "received":
            self._set_delivery("received")
        return f"panic {panic.id} received by HQ"

    async def _walk_test_action(self, args: dict[str, Any]) -> str:
        on = bool(args["on"])
        self.walk_test_until = self._wall() + self.cfg.walk_test_s if on else 0.0
        self.ctx.event({"kind": "room", "what": "walk_test", "on": on})
        self.wake.set()
        return (f"walk test for {self.cfg.walk_test_s / 60:.0f} min: presses reach HQ as "
                "tests" if on else "walk test ended")

    async def _duress_action(self, args: dict[str, Any]) -> str:
        if self.panic is None:
            await self._new_panic("duress", self._wall())
        else:  # a panic is raised already: HQ is told that duress came on top of it
            self.ctx.event({"kind": "room", "what": "duress", "panic": self.panic.id})
        return "ok"  # says nothing: whoever watches the screen must not learn of it


def _restore_panic(saved: Any) -> Panic | None:
    """A persisted panic, or None when there is none or it is unreadable (logged by caller)."""
    if not isinstance(saved, dict):
        return None
    try:
        panic = Panic(id=str(saved["id"]), since=float(saved["since"]),
                      source=str(saved["source"]), session=bool(saved["session"]),
                      delivery=str(saved.get("delivery", "stored")),
                      position=saved.get("position") if isinstance(saved.get("position"), dict)
                      else None)
    except (KeyError, TypeError, ValueError):
        return None
    if panic.delivery not in DELIVERY or not math.isfinite(panic.since):
        panic.delivery = "stored"
    return panic


def build(ctx: Context, cfg: RoomConfig) -> RoomSubsystem:
    """The room subsystem on its context."""
    return RoomSubsystem(ctx, cfg)
