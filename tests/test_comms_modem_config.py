"""The ``[comms.modem]`` section (and the router watchdog's relay): a good one is read, a
bad one is refused naming the file, the key and the reason (as every section of the vehicle
config is: tests/test_config.py)."""

from pathlib import Path

import pytest

from supervisor.comms.config import CommsConfig
from supervisor.core.config import ConfigError
from supervisor.registry import load_config

ROOT = Path(__file__).resolve().parents[1]
DEMO = (ROOT / "config" / "demo.toml").read_text()
MODEM = """
[comms.modem]
port = "/dev/serial/by-id/usb-Quectel_EG25-G-if02-port0"
poll_s = 5
timeout_s = 1
stale_s = 30
"""


def with_modem(section: str = MODEM) -> str:
    """The demo config with a modem section added to its [comms]."""
    assert DEMO.count("\n[comms.position]\n") == 1
    return DEMO.replace("\n[comms.position]\n", section + "\n[comms.position]\n")


def comms(path: Path) -> CommsConfig:
    section = load_config(path).section("comms")
    assert isinstance(section, CommsConfig)
    return section


def test_a_modem_section_is_read_with_its_defaults(tmp_path: Path) -> None:
    path = tmp_path / "van.toml"
    path.write_text(with_modem('\n[comms.modem]\nport = "/dev/ttyUSB2"\n'))
    modem = comms(path).modem
    assert modem is not None
    assert (str(modem.port), modem.baudrate, modem.poll_s, modem.timeout_s, modem.stale_s) \
        == ("/dev/ttyUSB2", 115200, 5.0, 1.0, 30.0)


@pytest.mark.parametrize(("old", "new", "key", "rule"), [
    ('port = "/dev/serial/by-id/usb-Quectel_EG25-G-if02-port0"\n', "", "comms.modem.port",
     "required key is missing"),
    ("poll_s = 5\n", "poll_s = 5\nbaudrate = 115201\n", "comms.modem.baudrate",
     "Input should be"),
    ("poll_s = 5\n", "poll_s = 5\nbaud = 9600\n", "comms.modem.baud", "unknown key"),
    ("poll_s = 5\n", "poll_s = 0\n", "comms.modem.poll_s", "greater than or equal to 0.2"),
    ("poll_s = 5\n", 'poll_s = "often"\n', "comms.modem.poll_s", "a valid number"),
    ("timeout_s = 1\n", "timeout_s = 0.01\n", "comms.modem.timeout_s",
     "greater than or equal to 0.1"),
    ("timeout_s = 1\n", "timeout_s = 5\n", "comms.modem", "timeout_s must be shorter than "
     "poll_s"),
    ("stale_s = 30\n", "stale_s = 9\n", "comms.modem", "stale_s must be at least twice poll_s"),
    ("stale_s = 30\n", "stale_s = nan\n", "comms.modem.stale_s", "a finite number"),
    ('port = "/dev/serial/by-id/usb-Quectel_EG25-G-if02-port0"\n',
     'port = "${MCW_RUN_DIR:-/tmp/mcw-demo}/ttyGPS"\n', "comms.modem.port",
     "is the GPS's port (comms.gps.port)"),
    ('port = "/dev/serial/by-id/usb-Quectel_EG25-G-if02-port0"\n',
     'port = "${MCW_RUN_DIR:-/tmp/mcw-demo}/ttyRS485"\n', "comms.modem.port",
     "is the port of bus[1] ('rs485')"),
])
def test_a_bad_modem_section_names_file_key_and_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str, key: str,
        rule: str) -> None:
    monkeypatch.delenv("MCW_RUN_DIR", raising=False)
    assert old in MODEM
    path = tmp_path / "van.toml"
    path.write_text(with_modem(MODEM.replace(old, new, 1)))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert (err.value.file, err.value.key) == (str(path), key)
    assert rule in err.value.rule
    assert str(err.value).startswith(f"{path}: {key}: ")


def test_the_example_vans_modem_section_is_valid_once_uncommented(tmp_path: Path) -> None:
    example = (ROOT / "config" / "example-van.toml").read_text()
    start = example.index("# [comms.modem]\n")
    block = example[start:example.index("\n\n", start)]
    assert block.count("\n# ") == 4  # the section and its four keys
    path = tmp_path / "van.toml"
    path.write_text(example.replace(block, block.replace("# ", "", 1).replace("\n# ", "\n")))
    modem = comms(path).modem
    assert modem is not None and modem.port.name == "usb-Quectel_EG25-G-if02-port0"
    assert (modem.poll_s, modem.timeout_s, modem.stale_s) == (5, 1, 30)


def test_the_router_watchdogs_relay_must_be_safe_on(tmp_path: Path) -> None:
    """A supervisor stopped, crashed or starting leaves the router powered: the line it is
    switched by starts and stops in its safe state, which must be on."""
    old = 'safe_state = true  # the LTE router stays powered whatever the supervisor does'
    assert old in DEMO
    path = tmp_path / "van.toml"
    path.write_text(DEMO.replace(old, "safe_state = false"))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.key == "comms.router.watchdog.power_line"
    assert "gpio.line 'router_power' must have safe_state = true" in err.value.rule
