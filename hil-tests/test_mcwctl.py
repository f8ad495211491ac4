"""``mcwctl`` against the broker as shipped: systemd/mosquitto-mcw.conf and its ACL.

A real Mosquitto runs the shipped fragment (laid out by tests/test_systemd_units.py's
``build_broker``: listeners on free ports, a temporary password file with one password per
login, the shipped ACL). The real supervisor logs in as ``supervisor`` and serves the simulated
van; ``mcwctl`` runs as its own process and logs in as ``technician``, the default: ``status``,
and the technician's views (``devices``, ``points``, ``watch``, ``version`` from the broker,
``events`` and ``alarms`` from the supervisor's SQLite).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from testsupport import needs_tool, running_mosquitto

from harness import (
    BIN,
    DEADLINE_S,
    DEMO_CONFIG,
    SupervisorProcess,
    free_port,
    van_env,
    wait_until,
)
from supervisor.interfaces.mcwctl import PASSWORD_ENV
from supervisor.registry import load_config
from vansim.van import SimulatedVan

# The shipped broker's test layout lives with the broker's own tests (tests/ is not on the
# HIL tests' path when they run alone).
TESTS_DIR = str(Path(__file__).resolve().parents[1] / "tests")
if TESTS_DIR not in sys.path:
    sys.path.append(TESTS_DIR)
from test_systemd_units import USERS, build_broker  # noqa: E402

MOSQUITTO_CONF = Path(__file__).resolve().parents[1] / "systemd" / "mosquitto-mcw.conf"
PREFIX = "mcw/v1/demo"
RUN_TIMEOUT_S = 60.0
LOG_TAIL_CHARS = 4000
mosquitto_installed = needs_tool("mosquitto")
mosquitto_passwd_installed = needs_tool("mosquitto_passwd")


@dataclass(frozen=True)
class ShippedBroker:
    port: int  # the 127.0.0.1 listener of the fragment, moved to a free port
    workdir: Path


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[ShippedBroker]:
    """The shipped fragment on a real Mosquitto, stopped by its pid afterwards."""
    built = build_broker(tmp_path, MOSQUITTO_CONF.read_text(encoding="utf-8"))
    with running_mosquitto(built.config, [built.local_port, built.lan_port], built.log):
        yield ShippedBroker(built.local_port, tmp_path)


def mcwctl_status(broker: ShippedBroker, *args: str,
                  password: str | None = None) -> subprocess.CompletedProcess[str]:
    """``mcwctl status`` on the demo van's config, pointed at ``broker``.

    ``password`` goes in ``MCW_MQTT_PASSWORD``; otherwise that variable is unset, whatever the
    environment of the test run.
    """
    return mcwctl(broker, "status", *args, password=password)


def mcwctl(broker: ShippedBroker, command: str, *args: str,
           password: str | None = None) -> subprocess.CompletedProcess[str]:
    """``mcwctl COMMAND`` on the demo van's config (its storage path from the test's
    MCW_RUN_DIR), pointed at ``broker``, the password as ``mcwctl_status`` gives it."""
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    if password is not None:
        env[PASSWORD_ENV] = password
    # "modbus read": a command with its subcommand, the options after both
    cmd = [str(BIN / "mcwctl"), *command.split(), "--config", str(DEMO_CONFIG), *args]
    if command not in ("events", "alarms", "bundle"):  # those read the config's broker or none
        cmd += ["--host", "127.0.0.1", "--port", str(broker.port)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


async def technician_until(broker: ShippedBroker, args: tuple[str, ...],
                           check: Callable[[subprocess.CompletedProcess[str]], bool],
                           what: str) -> subprocess.CompletedProcess[str]:
    """Run ``mcwctl ARGS`` as the technician (in a thread: the simulated van runs on this
    event loop) until ``check`` holds; each run takes the broker's retained burst, so this
    polls at that pace. Fails with the last output at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while True:
        proc = await asyncio.to_thread(mcwctl, broker, *args, password=USERS["technician"])
        if check(proc):
            return proc
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}: exit {proc.returncode}\n"
                                 f"{proc.stdout}\n{proc.stderr}")


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mcwctl: ") and text in lines[0], proc.stderr


def password_file(broker: ShippedBroker, login: str, password: str) -> Path:
    path = broker.workdir / f"{login}.password"
    path.write_text(password + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


# ---- the van's status, with the technician's login --------------------------------------------


@pytest.fixture
async def van_on_shipped_broker(broker: ShippedBroker,
                                monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[dict[str, Any]]:
    """Simulated van + real supervisor (logged in as ``supervisor``), ready.

    Yields the latest payload of every topic of the van, as the ``hq`` login reads them.
    """
    # short path: Unix socket paths are limited to 107 bytes
    run_dir = Path(tempfile.mkdtemp(prefix="mcw-ctl-"))
    async with AsyncExitStack() as stack:
        stack.callback(shutil.rmtree, run_dir, ignore_errors=True)
        env = van_env(run_dir, broker.port, free_port())
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        secret = password_file(broker, "supervisor", USERS["supervisor"])
        demo = DEMO_CONFIG.read_text(encoding="utf-8")
        assert demo.count("[mqtt]\n") == 1
        config = run_dir / "vehicle.toml"
        config.write_text(demo.replace(
            "[mqtt]\n", f'[mqtt]\nusername = "supervisor"\npassword_file = "{secret}"\n'),
            encoding="utf-8")
        sim = SimulatedVan(load_config(config))
        stack.push_async_callback(sim.stop)
        await sim.start()
        supervisor = SupervisorProcess(env, run_dir / "supervisor.log", config=config)
        stack.push_async_callback(supervisor.stop)
        supervisor.start()

        latest: dict[str, Any] = {}
        client = await stack.enter_async_context(aiomqtt.Client(
            "127.0.0.1", broker.port, username="hq", password=USERS["hq"]))
        await client.subscribe(f"{PREFIX}/#", qos=1)

        async def record() -> None:
            async for msg in client.messages:
                raw = msg.payload if isinstance(msg.payload, bytes) else b""
                with suppress(ValueError):
                    latest[msg.topic.value.removeprefix(PREFIX + "/")] = (
                        json.loads(raw) if raw else None)

        recorder = asyncio.create_task(record())
        stack.push_async_callback(_cancel, recorder)
        try:
            await wait_until(lambda: recorder.done() or (
                (latest.get("status") or {}).get("state") == "ready"
                and latest.get("state/power/battery/soc") is not None
                and (latest.get("device/relays/status") or {}).get("state") == "online"),
                what="supervisor ready on the shipped broker, battery SOC published")
        except AssertionError as exc:
            log = supervisor.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
            raise AssertionError(f"{exc}; supervisor log:\n{log}") from None
        assert not recorder.done(), "the hq watcher lost its connection"
        yield latest


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError, aiomqtt.MqttError):
        await task


async def test_status_with_the_technician_login(van_on_shipped_broker: dict[str, Any],
                                                broker: ShippedBroker) -> None:
    """Password from a file or from the environment: the van's one-screen status, exit 0."""
    secret = password_file(broker, "technician", USERS["technician"])
    proc = await asyncio.to_thread(mcwctl_status, broker, "--password-file", str(secret))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("supervisor: ready  session 1"), proc.stdout
    relays = next(line for line in lines if line.strip().startswith("relays "))
    assert "online" in relays, relays
    soc = next(line for line in lines if line.strip().startswith("power/battery/soc "))
    assert float(soc.split()[1]) == pytest.approx(
        van_on_shipped_broker["state/power/battery/soc"]["v"], abs=0.5)

    raw = await asyncio.to_thread(mcwctl_status, broker, "--json",
                                  password=USERS["technician"])
    assert raw.returncode == 0, raw.stderr
    assert json.loads(raw.stdout)["status"]["state"] == "ready"


# ---- the technician's views ------------------------------------------------------------------

DEVICE_IDS = sorted(d.id for d in load_config(DEMO_CONFIG).device)
WATCH_LINE = re.compile(r"\d\d:\d\d:\d\d\.\d{3} (state|alarm|device|event|status) +\S")


def all_online(proc: subprocess.CompletedProcess[str]) -> bool:
    """``devices``: exit 0 (every device online) and a table line ``online`` for each."""
    lines = proc.stdout.splitlines()
    return proc.returncode == 0 and all(
        any(line.split()[:1] == [d] and " online " in line for line in lines)
        for d in DEVICE_IDS)


async def test_devices_points_and_version(van_on_shipped_broker: dict[str, Any],
                                          broker: ShippedBroker) -> None:
    """The simulated devices all online, the battery's points, the versions: as the
    technician, from the retained topics the shipped ACL lets that login read."""
    latest = van_on_shipped_broker
    table = await technician_until(broker, ("devices",), all_online, "every device online")
    assert table.stderr == ""
    assert f"{len(DEVICE_IDS)} devices, 0 not online" in table.stdout
    assert all(len(line) <= 80 for line in table.stdout.splitlines()), table.stdout
    as_json = await technician_until(broker, ("devices", "--json"),
                                     lambda p: p.returncode == 0, "devices --json")
    rows = json.loads(as_json.stdout)["devices"]
    assert sorted(r["id"] for r in rows) == DEVICE_IDS
    relays = next(r for r in rows if r["id"] == "relays")
    assert (relays["state"], relays["profile"], relays["bus"], relays["unit"]) == \
        ("online", "waveshare_relay_8ch", "rs485", 2)
    assert relays["requests"] > 0 and relays["last_ok"] is not None
    detail = await asyncio.to_thread(mcwctl, broker, "devices", "relays",
                                     password=USERS["technician"])
    assert detail.returncode in (0, 3), detail.stderr  # 3 should a poll just have failed
    assert "waveshare_relay_8ch" in detail.stdout and "rs485, unit 2" in detail.stdout

    points = await asyncio.to_thread(mcwctl, broker, "points", "power/battery/*",
                                     password=USERS["technician"])
    assert points.returncode == 0 and points.stderr == "", points.stderr
    rows_by_id = {line.split()[0]: line for line in points.stdout.splitlines()
                  if line.startswith("power/")}
    assert all(key.startswith("power/battery/") for key in rows_by_id), points.stdout
    published = {k.removeprefix("state/") for k in latest if k.startswith("state/power/battery/")}
    assert published and published <= rows_by_id.keys(), (published, points.stdout)
    soc = rows_by_id["power/battery/soc"].split()
    assert soc[2] == "%" and soc[4] == "good"
    assert float(soc[1]) == pytest.approx(latest["state/power/battery/soc"]["v"], abs=1)
    # the raw value: the battery monitor's register holds the state of charge in 0.1 %
    assert int(soc[3]) == pytest.approx(10 * latest["state/power/battery/soc"]["v"], abs=10)

    versions = await asyncio.to_thread(mcwctl, broker, "version", "--json",
                                       password=USERS["technician"])
    assert versions.returncode == 0, versions.stderr
    found = json.loads(versions.stdout)
    assert found["supervisor"] == latest["status"]["version"]
    assert found["mcwctl"] == version("mcw-controller")
    assert found["supervisor_state"] == "ready"
    text = await asyncio.to_thread(mcwctl, broker, "version", password=USERS["technician"])
    assert re.search(rf"supervisor +{re.escape(found['supervisor'])} +status ready",
                     text.stdout), text.stdout


async def test_watch_then_events_from_sqlite(van_on_shipped_broker: dict[str, Any],
                                             broker: ShippedBroker) -> None:
    """``watch --count 3`` prints the changes a crew command makes; ``events --since 1h``
    then lists that command from the supervisor's SQLite (opened read-only, beside it)."""
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    env[PASSWORD_ENV] = USERS["technician"]
    watch = await asyncio.create_subprocess_exec(
        str(BIN / "mcwctl"), "watch", "--count", "3", "--duration", str(RUN_TIMEOUT_S),
        "--config", str(DEMO_CONFIG), "--host", "127.0.0.1", "--port", str(broker.port),
        "power/circuit/exterior_lights*", "command", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async with aiomqtt.Client("127.0.0.1", broker.port, username="crew",
                                  password=USERS["crew"]) as crew:
            await crew.subscribe(f"{PREFIX}/result/crew/power/circuit", qos=1)
            on, sent = True, 0
            # the watch shows what comes after it subscribed, which the test cannot see: the
            # crew switches the light until the watch has had its three lines (each command
            # answered before the next)
            while watch.returncode is None and sent < 20:
                sent += 1
                body = {"id": f"watch-{sent}", "args": {"circuit": "exterior_lights", "on": on}}
                await crew.publish(f"{PREFIX}/cmd/crew/power/circuit", json.dumps(body), qos=1)
                async with asyncio.timeout(DEADLINE_S):
                    async for msg in crew.messages:
                        if json.loads(msg.payload if isinstance(msg.payload, bytes)
                                      else b"{}").get("id") == body["id"]:
                            break
                on = not on
                with suppress(TimeoutError):
                    await asyncio.wait_for(watch.wait(), 0.5)  # ended, or switch again
        async with asyncio.timeout(RUN_TIMEOUT_S):
            out, err = await watch.communicate()
    finally:
        if watch.returncode is None:
            watch.kill()
            await watch.wait()
    assert watch.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert len(lines) == 3, lines
    assert all(WATCH_LINE.match(line) for line in lines), lines
    assert all("exterior_lights" in line or "command" in line for line in lines), lines

    events = await technician_until(
        broker, ("events", "--since", "1h", "--json"),
        lambda p: p.returncode == 0 and any(
            e["data"].get("command", "").startswith("watch-")
            for e in json.loads(p.stdout)["events"]), "the crew's commands in SQLite")
    logged = [e for e in json.loads(events.stdout)["events"] if e["kind"] == "command"]
    assert {e["data"]["action"] for e in logged} == {"power/circuit"}
    assert all(e["data"]["role"] == "crew" for e in logged)
    table = await asyncio.to_thread(mcwctl, broker, "events", "--since", "1h", "--kind",
                                    "command")
    assert table.returncode == 0 and table.stderr == "", table.stderr
    assert "power/circuit circuit=exterior_lights" in table.stdout
    assert re.search(r"\d+ events?", table.stdout.splitlines()[-1]), table.stdout
    alarms = await asyncio.to_thread(mcwctl, broker, "alarms", "--since", "1h")
    assert alarms.returncode == 0 and alarms.stderr == "", alarms.stderr


# ---- refused: one line on stderr, no traceback, a non-zero exit ----------------------------------


def test_wrong_password_is_refused(broker: ShippedBroker) -> None:
    wrong = password_file(broker, "technician", "not-the-password")
    proc = mcwctl_status(broker, "--password-file", str(wrong))
    assert_one_line_error(proc, 4, "refused the login of user 'technician': wrong user name "
                          "or password")
    # the environment's password is not used when a file is named
    proc = mcwctl_status(broker, "--password-file", str(wrong), password=USERS["technician"])
    assert_one_line_error(proc, 4, "refused the login of user 'technician'")
    proc = mcwctl_status(broker, password="not-the-password")
    assert_one_line_error(proc, 4, "refused the login of user 'technician'")


def test_no_password_says_how_to_give_one(broker: ShippedBroker) -> None:
    proc = mcwctl_status(broker)
    assert_one_line_error(proc, 4, f"wants a password for user 'technician': give "
                          f"--password-file PATH or set {PASSWORD_ENV}")


def test_anonymous_is_refused(broker: ShippedBroker) -> None:
    proc = mcwctl_status(broker, "--user", "")
    assert_one_line_error(proc, 4, "refused an anonymous login")


def test_unreadable_password_file(broker: ShippedBroker) -> None:
    proc = mcwctl_status(broker, "--password-file", str(broker.workdir / "missing"))
    assert_one_line_error(proc, 2, "cannot read the password file")
    empty = password_file(broker, "technician", "")
    assert_one_line_error(mcwctl_status(broker, "--password-file", str(empty)), 2, "is empty")


def test_unreachable_broker(tmp_path: Path) -> None:
    """Nothing listens on the port (chosen free a moment ago): "cannot reach", exit 1."""
    nowhere = ShippedBroker(free_port(), tmp_path)
    proc = mcwctl_status(nowhere, password=USERS["technician"])
    assert_one_line_error(proc, 1, f"cannot reach the broker at 127.0.0.1:{nowhere.port}")


async def test_bundle_for_a_support_ticket(van_on_shipped_broker: dict[str, Any],
                                           broker: ShippedBroker, tmp_path: Path) -> None:
    """``mcwctl bundle``: one file with the redacted config, versions, device health, state
    and the supervisor's recent events from SQLite; no PIN hash in it."""
    out = tmp_path / "ticket.tar.gz"
    made = await asyncio.to_thread(mcwctl, broker, "bundle", "--out", str(out),
                                   password=USERS["technician"])
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == str(out)
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        assert {"manifest.json", "config/vehicle.toml", "versions.json", "devices.json",
                "state.json", "events.jsonl"} <= names, names
        config = tar.extractfile("config/vehicle.toml")
        assert config is not None and b"pbkdf2" not in config.read()
        devices = tar.extractfile("devices.json")
        assert devices is not None and b"relays" in devices.read()


async def test_modbus_read_write_self_test_and_gpio_as_a_technician(
        van_on_shipped_broker: dict[str, Any], broker: ShippedBroker) -> None:
    """The technician's actions from mcwctl, through the supervisor on the shipped broker
    (technician login): a register read by name, a write's dry run (the frame), the
    self-test of the power circuits with its progress, and the GPIO lines."""
    tech = USERS["technician"]

    def run(command: str, *args: str) -> subprocess.CompletedProcess[str]:
        return mcwctl(broker, command, *args, password=tech)

    read = await technician_until(broker, ("modbus read", "relays", "software_version"),
                                  lambda p: p.returncode == 0, "the supervisor answering")
    assert read.stdout.startswith("done (ok): ") and "= software_version 2.0" in read.stdout
    dry = await asyncio.to_thread(run, "modbus write", "relays", "relay_8", "true",
                                  "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert "02 05 00 07 ff 00" in json.loads(dry.stdout)["message"]
    refused = await asyncio.to_thread(run, "modbus write", "relays", "relay_1", "7")
    assert refused.returncode == 6 and refused.stdout.startswith("rejected"), refused.stdout
    test = await asyncio.to_thread(run, "self-test", "--only", "power/circuit/*", "--yes")
    assert test.returncode == 0, (test.stdout, test.stderr)
    assert "ok: power/circuit/" in test.stdout and "done (ok)" in test.stdout, test.stdout
    # the total from the run's start, before the first outcome; every outcome shown (also
    # one whose event comes after the answer) and the bar's last state n of n
    printed = test.stdout.splitlines()
    circuits = len(load_config(DEMO_CONFIG).model_dump()["power"]["circuit"])
    assert printed[0].startswith(f"testing {circuits} outputs: power/circuit/"), printed
    assert len([ln for ln in printed if re.match(r"(ok|failed|skipped): ", ln)]) == circuits
    assert re.search(rf"\b{circuits}/{circuits}\b", test.stdout), test.stdout
    asked = await asyncio.to_thread(run, "self-test")  # no stdin: not confirmed
    assert asked.returncode == 2 and "not started" in asked.stderr
    lines = await asyncio.to_thread(run, "gpio", "--json")
    assert lines.returncode == 0 and "ignition" in json.loads(lines.stdout), lines.stdout
