"""HQ's side for HIL tests and benchmarks: the van and HQ as two brokers joined by the bridge
of systemd/mosquitto-mcw.conf as shipped.

HQ is a second Mosquitto with HQ's echo and alarm desk (``mcw-hq-echo --db``) and a monitor on
its internal listener, and a TLS listener for the vans that wants a client certificate of
HQ's CA (the van logs in as the certificate's name). Between the van's bridge and that
listener a TCP relay stands in for LTE (``TcpRelay.down``: out of coverage, every connection
cut). The van's broker runs the bridge section as shipped, TLS lines included (enable_bridge:
uncommented, the certificate files made here in place of /etc/mosquitto/certs). openssl makes
a CA, HQ's server certificate for 127.0.0.1 (the bridge checks the name: bridge_insecure
false) and the van's client certificate.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from testsupport import TcpRelay, enable_bridge, require_tool

from conftest import Van, start_van
from harness import Broker, HqEcho, Monitor, free_port, hq_echo
from supervisor.interfaces.hq_desk import AlarmDesk

MOSQUITTO_CONF = Path(__file__).parents[1] / "systemd" / "mosquitto-mcw.conf"
HEARTBEAT_S, DOWN_S = 1.0, 4.0  # the van's ping period, HQ's echo's down_after


@dataclass
class Hq:
    broker: Broker
    relay: TcpRelay
    monitor: Monitor
    echo: HqEcho  # with HQ's alarm desk, logging to ``desk``
    desk: Path

    def desk_log(self, vehicle: str = "demo") -> list[int]:
        """The ids of the van's events in HQ's desk's log, in the van's order."""
        desk = AlarmDesk(self.desk)
        try:
            return [e["id"] for e in desk.events(vehicle)]
        finally:
            desk.close()


def make_certificates(folder: Path) -> dict[str, Path]:
    """A CA, HQ's certificate for 127.0.0.1 and the van's client certificate (EC P-256)."""
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True,
                       timeout=60)

    openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=MCW test HQ CA")
    (folder / "hq.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, subject, ext in (("hq", "/CN=127.0.0.1", ["-extfile", "hq.ext"]),
                               ("van", "/CN=mcw-demo", [])):
        openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", *ext)
    return {n: folder / n for n in ("ca.crt", "hq.crt", "hq.key", "van.crt", "van.key")}


@asynccontextmanager
async def bridged_van(monkeypatch: pytest.MonkeyPatch, coverage: bool = True,
                      broker_extra: Sequence[str] = ()) -> AsyncIterator[tuple[Van, Hq]]:
    """HQ's broker, echo and monitor; the relay (``coverage`` False: down from the start);
    the van whose broker bridges to HQ and keeps its queues on disk (as shipped: persistence
    true) across a restart; ``broker_extra``: more lines for the van's broker."""
    hq_dir = Path(tempfile.mkdtemp(prefix="mcw-hq-"))
    async with AsyncExitStack() as stack:
        stack.callback(shutil.rmtree, hq_dir, ignore_errors=True)
        require_tool("openssl")
        certs = await asyncio.to_thread(make_certificates, hq_dir)
        tls_port = free_port()
        broker = Broker(hq_dir, extra=[
            f"listener {tls_port} 127.0.0.1", f"cafile {certs['ca.crt']}",
            f"certfile {certs['hq.crt']}", f"keyfile {certs['hq.key']}",
            "require_certificate true", "use_identity_as_username true"])
        stack.push_async_callback(broker.stop)
        await broker.start()
        relay = TcpRelay(tls_port)
        relay.down = not coverage
        stack.push_async_callback(relay.close)
        await relay.start()
        shipped = enable_bridge(MOSQUITTO_CONF.read_text(encoding="utf-8"), "demo", relay.port,
                                tls={"bridge_cafile": certs["ca.crt"],
                                     "bridge_certfile": certs["van.crt"],
                                     "bridge_keyfile": certs["van.key"]})
        section = "connection hq" + shipped.partition("connection hq")[2]
        monitor = Monitor(broker.port)
        stack.push_async_callback(monitor.stop)
        await monitor.start()
        desk = hq_dir / "hq-desk.db"
        echo = await stack.enter_async_context(hq_echo(broker.port, DOWN_S, desk))
        env = {"MCW_HQ_HEARTBEAT_S": f"{HEARTBEAT_S:g}", "MCW_HQ_DOWN_S": f"{DOWN_S:g}"}
        van_store = hq_dir / "van-broker"
        van_store.mkdir()
        disk = ["persistence true", f"persistence_location {van_store}/"]
        van = await stack.enter_async_context(
            start_van(monkeypatch, env,
                      broker_extra=[*disk, *broker_extra, *section.splitlines()]))
        yield van, Hq(broker, relay, monitor, echo, desk)


def event_ids(mon: Monitor) -> list[int]:
    """The ids of the events ``mon`` received, each once, in the order of first arrival."""
    seen: dict[int, None] = {}
    for topic, value, _ in mon.messages:
        if topic == "event" and isinstance(value, dict) and isinstance(value.get("id"), int):
            seen.setdefault(value["id"], None)
    return list(seen)
