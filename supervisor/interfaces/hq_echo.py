"""HQ's end of the path supervision: ``mcw-hq-echo``, run beside HQ's broker.

Every van publishes a numbered ping as its point ``comms/hq/ping`` (retained state, over
its bridge); this echo answers each with the van's ``comms/pong`` action in the ``hq`` role,
so the van knows the whole path works, both ways. It also keeps, per van, when the last
ping came: a van silent for ``--down-after`` seconds is reported down (printed as a JSON
line, and published retained on ``hq/v1/{vehicle}/link`` for HQ's own dashboards), and up
again at its next ping.

With ``--db PATH`` it is HQ's alarm desk as well (hq_desk.py): every van's events logged once
each in SQLite, printed as JSON lines, each panic answered with its receipt; the session on
HQ's broker is then persistent, so nothing sent while the desk restarts is lost.

Usage: ``mcw-hq-echo --host H --port P [--username U --password-file F] [--down-after 90]
[--db PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import sys
import time
from pathlib import Path

import aiomqtt

from supervisor.interfaces.hq_desk import (
    EVENT_FILTER,
    LAST_FILTER,
    PANIC_FILTER,
    AlarmDesk,
    read_arrival,
    receipt_command,
    resend_command,
)

PING_FILTER = "mcw/v1/+/state/comms/hq/ping"
MAX_PAYLOAD = 1024
CHECK_S = 1.0
RECONNECT_S = 2.0


def ping_number(payload: bytes) -> int | None:
    """The ping number of a ping's state payload ({"v": n, ...}); None for anything else."""
    if len(payload) > MAX_PAYLOAD:
        return None
    try:
        value = json.loads(payload).get("v")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) \
        and 0 < value < 2**53 else None


class Echo:
    def __init__(self, client: aiomqtt.Client, down_after_s: float,
                 desk: AlarmDesk | None = None) -> None:
        self.client, self.down_after_s, self.desk = client, down_after_s, desk
        self.last_ping: dict[str, float] = {}
        self.down: set[str] = set()

    async def on_message(self, message: aiomqtt.Message) -> None:
        parts = message.topic.value.split("/")
        payload = message.payload if isinstance(message.payload, bytes) else b""
        if parts[-1] != "ping":
            await self._to_desk(message.topic.value, payload)
            return
        seq = ping_number(payload)
        if len(parts) < 3 or seq is None:
            return
        vehicle = parts[2]
        self.last_ping[vehicle] = time.monotonic()
        if vehicle in self.down:
            self.down.discard(vehicle)
            await self._tell(vehicle, "up")
        body = json.dumps({"id": f"pong-{seq}", "args": {"seq": seq}})
        await self.client.publish(f"mcw/v1/{vehicle}/cmd/hq/comms/pong", body, qos=1)

    async def _to_desk(self, topic: str, payload: bytes) -> None:
        arrival = None if self.desk is None else read_arrival(topic, payload)
        if self.desk is None or arrival is None:
            return
        try:
            outcome = self.desk.take(arrival)
        except sqlite3.Error as exc:  # HQ's disk: this one is not logged, the rest goes on
            print(json.dumps({"vehicle": arrival.vehicle, "not_logged": str(exc)}),
                  file=sys.stderr, flush=True)
            return
        commands = f"mcw/v1/{arrival.vehicle}/cmd/hq"
        if outcome.new and arrival.event is not None:
            print(json.dumps({"vehicle": arrival.vehicle, "event": arrival.event}), flush=True)
        if outcome.receipt is not None:
            await self.client.publish(f"{commands}/room/panic_received",
                                      receipt_command(outcome.receipt), qos=1)
            self.desk.receipt_sent(arrival.vehicle, outcome.receipt)
        if outcome.resend is not None:
            await self._ask(arrival.vehicle, outcome.resend)

    async def _ask(self, vehicle: str, missing: tuple[int, int]) -> None:
        """Ask ``vehicle`` for its events ``missing`` (first, last) again."""
        print(json.dumps({"vehicle": vehicle, "missing": missing}), flush=True)
        await self.client.publish(f"mcw/v1/{vehicle}/cmd/hq/system/events_resend",
                                  resend_command(*missing), qos=1)

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(CHECK_S)  # the check's period, not a wait for something
            if self.desk is not None:
                due = self.desk.overdue()
                for vehicle, missing in due.ask:
                    if vehicle not in self.down:  # asked when it is back (its next event)
                        await self._ask(vehicle, missing)
                for vehicle, prev in due.lost:
                    print(json.dumps({"vehicle": vehicle, "lost_before": prev}), flush=True)
            now = time.monotonic()
            for vehicle, at in self.last_ping.items():
                if now - at > self.down_after_s and vehicle not in self.down:
                    self.down.add(vehicle)
                    await self._tell(vehicle, "down")

    async def _tell(self, vehicle: str, state: str) -> None:
        print(json.dumps({"vehicle": vehicle, "link": state, "at": time.time()}), flush=True)
        await self.client.publish(f"hq/v1/{vehicle}/link", json.dumps({"state": state}),
                                  qos=1, retain=True)


async def run(args: argparse.Namespace, password: str | None) -> None:
    """Serve until stopped; a lost broker (an HQ node failing over) is reconnected to, with
    the echo's and the desk's state kept."""
    desk = None if args.db is None else AlarmDesk(Path(args.db))
    echo: Echo | None = None
    try:
        while True:
            try:
                async with aiomqtt.Client(args.host, args.port, username=args.username,
                                          password=password, identifier=args.client_id,
                                          clean_session=desk is None) as client:
                    if echo is None:
                        echo = Echo(client, args.down_after, desk)
                    echo.client = client
                    await client.subscribe(PING_FILTER, qos=1)
                    if desk is not None:
                        await client.subscribe(EVENT_FILTER, qos=1)
                        await client.subscribe(PANIC_FILTER, qos=1)
                        await client.subscribe(LAST_FILTER, qos=1)
                    print(json.dumps({"echo": "ready", "broker": f"{args.host}:{args.port}"}),
                          flush=True)
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(echo.watch())
                        async for message in client.messages:
                            await echo.on_message(message)
            except* aiomqtt.MqttError as group:
                print(json.dumps({"echo": "reconnecting", "reason": str(group.exceptions[0])}),
                      file=sys.stderr, flush=True)
            await asyncio.sleep(RECONNECT_S)  # the pause between attempts
    finally:
        if desk is not None:
            desk.close()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="mcw-hq-echo", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--username")
    p.add_argument("--password-file")
    p.add_argument("--client-id", default="mcw-hq-echo")
    p.add_argument("--down-after", type=float, default=90.0,
                   help="seconds without a ping before a van is reported down")
    p.add_argument("--db", help="HQ's alarm desk: log every van's events once each here")
    args = p.parse_args(argv)
    password = None
    if args.password_file is not None:
        password = Path(args.password_file).read_text().strip()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args, password))
    sys.exit(0)


if __name__ == "__main__":
    main()
