"""Config validation: a bad config names file, key and rule; the shipped ones are valid."""

import time
from pathlib import Path

import pytest

from supervisor.core.config import MAX_FILE_BYTES, MAX_KEY_PARTS, ConfigError
from supervisor.registry import load_config

ROOT = Path(__file__).resolve().parents[1]
DEMO = (ROOT / "config" / "demo.toml").read_text()


@pytest.mark.parametrize("name", ["demo.toml", "example-van.toml"])
def test_shipped_configs_are_valid(name: str) -> None:
    cfg = load_config(ROOT / "config" / name)
    assert cfg.device


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "van.toml"
    path.write_text(text)
    return path


def write_bytes(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "van.toml"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("change", "key", "rule"),
    [
        (('unit = 2\nlabel = "Load relay board"', 'unit = 1\nlabel = "Load relay board"'),
         "device[5].unit", "unit id 1 is used twice on bus 'rs485'"),
        (("pin = 22", "pin = 17"), "gpio.line[1].pin", "GPIO pin 17 is used twice"),
        (('profile = "xy_md02"', 'profile = "xy_md99"'), "device[4].profile",
         "unknown profile 'xy_md99'"),
        (("baudrate = 9600", "baudrate = 9601"), "bus[1].baudrate", "Input should be"),
        (("timeout_s = 0.3", "timeout_s = 0.3\nspeed = 2"), "bus[1].speed", "unknown key"),
        (('bus = "rs485"\nunit = 1', 'bus = "rs232"\nunit = 1'), "device[4].bus",
         "no bus named 'rs232'"),
        (('output = "relay_1"', 'output = "relay_9"'), "power.circuit[0].output",
         "has no register 'relay_9'"),
        (('battery_monitor = "battery"', 'battery_monitor = "room_climate"'),
         "power.battery_monitor", "cannot be the battery_monitor"),
        (('id = "demo"', 'id = "Demo Van"'), "vehicle.id", "String should match pattern"),
        (("priority = 6\nallowed", "priority = 5\nallowed"), "power.circuit[0].priority",
         "no power.shedding.step for priority 5"),
        (('output = "relay_4"', 'output = "relay_4"\nlock = "io/heater_run_on"'),
         "power.circuit[3].lock", "no gpio.line named 'heater_run_on'"),
        (("restore_soc = 60", "restore_soc = 40"), "power.shedding.step[0].restore_soc",
         "must be above shed_soc"),
        (('running_input = "generator_running"', 'running_input = "status_lamp"'),
         "power.generator.running_input", "gpio.line 'status_lamp' must be an input"),
        (('ignition = "ignition"', 'ignition = "igniton"'), "vehicle.ignition",
         "no gpio.line named 'igniton'"),
        (("stop_value = 80", "stop_value = 20"), "power.generator.condition[0].stop_value",
         "must be above start_value for soc"),
        (("port = ${MCW_MQTT_PORT:-1883}", "port = 70000"), "mqtt.port",
         "less than or equal to 65535"),
        (('id = "demo"', 'name_only = "demo"'), "vehicle.id", "required key is missing"),
        (("[log]", "[logging]"), "logging", "unknown key"),
        (('id = "solar"', 'id = "battery"'), "device[3]", "device id 'battery' is used twice"),
        (("pin = 27", "pin = 60"), "gpio.line[2].pin", "less than or equal to 53"),
        (('direction = "input"', 'direction = "sideways"'), "gpio.line[0].direction",
         "Input should be"),
        (('output = "relay_1"', 'output = "software_version"'), "power.circuit[0].output",
         "software_version is not a switchable output"),
        (('name = "fridge"\ndevice = "relays"', 'name = "fridge"\ndevice = "relais"'),
         "power.circuit[3].device", "no device with id 'relais'"),
        (("low_soc_critical = 15", "low_soc_critical = 35"), "power.low_soc_critical",
         "must be below power.low_soc_warning"),
        (("shore_current_limit_a = 16", "shore_current_limit_a = 40"),
         "power.shore_current_limit_a", "must be within 3.0..32.0"),
        (('start_output = "generator_start"', 'start_output = "ignition"'),
         "power.generator.start_output", "gpio.line 'ignition' must be an output"),
        (("shed_voltage_per_12v = 12.3", "shed_voltage_per_12v = 13.3"),
         "power.shedding.step[0].restore_voltage_per_12v", "must be above shed_voltage_per_12v"),
        (('crew_pin_hash = "pbkdf2', 'crew_pin_hash = "md5'), "panel.crew_pin_hash",
         "String should match pattern"),
        (('duress_pin_hash = "pbkdf2_sha256$', 'duress_pin_hash = "pbkdf2_sha256$x'),
         "panel.duress_pin_hash", "String should match pattern"),
        (('device = "room_climate"', 'device = "room_climat"'), "climate.sensor[0].device",
         "no device with id 'room_climat'"),
        (('bus = "gx"\nunit = 226', 'bus = "rs485"\nunit = 226'), "device[1].bus",
         "speaks tcp, bus rs485 is rtu"),
    ],
)
def test_bad_config_names_file_key_and_rule(
    tmp_path: Path, change: tuple[str, str], key: str, rule: str
) -> None:
    old, new = change
    assert old in DEMO
    path = write(tmp_path, DEMO.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.file == str(path)
    assert err.value.key == key
    assert rule in err.value.rule
    assert str(err.value).startswith(f"{path}: {key}: ")


def test_not_toml_and_missing_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[vehicle\nid = 1"))
    monkeypatch.delenv("MCW_NOPE", raising=False)
    with pytest.raises(ConfigError, match="MCW_NOPE is not set"):
        load_config(write(tmp_path, '[vehicle]\nid = "${MCW_NOPE}"'))


def test_environment_overrides_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCW_MQTT_PORT", "18830")
    assert load_config(ROOT / "config" / "demo.toml").mqtt.port == 18830


def run_supervisor(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from supervisor.core.app import main

    code = main(args)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("case", "key", "rule"), [
    ("not_utf8", "", "not UTF-8 text"),
    ("storage_under_a_file", "storage.path", "cannot create"),
    ("no_serial_port", "bus[1].port", "no serial device"),
])
def test_a_config_unusable_on_this_machine_is_refused_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    case: str, key: str, rule: str,
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.setenv("MCW_RUN_DIR", str(run))
    (run / "ttyRS485").touch()  # the serial port is there unless the case removes it
    text = DEMO
    if case == "storage_under_a_file":
        (tmp_path / "afile").write_text("")
        text = text.replace('path = "${MCW_RUN_DIR:-/tmp/mcw-demo}/mcw.sqlite"',
                            f'path = "{tmp_path}/afile/mcw.sqlite"')
    if case == "no_serial_port":
        (run / "ttyRS485").unlink()
    path = write(tmp_path, text)
    if case == "not_utf8":
        path.write_bytes(DEMO.encode().replace(b"MCW demo van", b"MCW demo \xff van"))
    code, err = run_supervisor(["--check-config", "--config", str(path)], capsys)
    assert code == 2
    assert err.startswith(f"mcw-supervisor: config error: {path}: " + (f"{key}: " if key else ""))
    assert rule in err and "Traceback" not in err


# Found by tests/test_config_properties.py: each failed before the fix in config.py.


def test_a_file_above_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    """MAX_FILE_BYTES (1 MiB) is read; one byte more is refused before any parsing."""
    assert MAX_FILE_BYTES == 1024 * 1024
    demo = DEMO.encode()
    padded = demo + b"#" * (MAX_FILE_BYTES - len(demo))
    assert load_config(write_bytes(tmp_path, padded)).device
    with pytest.raises(ConfigError, match=r"van.toml: larger than 1024 KiB$"):
        load_config(write_bytes(tmp_path, padded + b"#"))


@pytest.mark.parametrize(("text", "rule"), [
    # each leaked a ValueError or RecursionError (a traceback)
    ("[vehicle]\nid = " + "9" * 5000, "not valid TOML: Exceeds the limit (4300 digits)"),
    ("x = " + "[" * 5000 + "]" * 5000, "not valid TOML: arrays or tables nested too deeply"),
    ("x = " + "{a = " * 5000 + "1" + "}" * 5000, "nested too deeply"),
    # tomllib's time and memory grow with the square of a key's parts: 10 000 parts took
    # 1.6 s and 400 MB (100 000 were killed for memory); a 2 000-part table with 100 000 keys
    # below it took 61 s (80 000 here, within the size limit)
    ("a." * 10_000 + "a = 1", f"a key of more than {MAX_KEY_PARTS} dotted parts (line 1: a.a"),
    ("[" + "a." * 2000 + "a]\n" + "".join(f"k{i} = 1\n" for i in range(80_000)),
     "a key of more than 32 dotted parts (line 1: a.a"),
    ('"a" . ' * 40 + '"a" = 1', "dotted parts"),
])
def test_hostile_toml_is_a_config_error_at_once(tmp_path: Path, text: str, rule: str) -> None:
    """Numbers too long to read, nesting too deep and keys of too many parts: a ConfigError
    naming the file and the reason, within seconds."""
    started = time.monotonic()
    with pytest.raises(ConfigError) as err:
        load_config(write_bytes(tmp_path, text.encode()))
    assert rule in err.value.rule and err.value.key == ""
    assert time.monotonic() - started < 5.0  # no hang: the unfixed reader took a minute


def test_a_key_of_32_parts_is_still_read(tmp_path: Path) -> None:
    """The key-depth limit refuses nothing a config needs (and nothing at the limit)."""
    text = DEMO + "\n[" + ".".join(["x"] * MAX_KEY_PARTS) + "]\n"
    with pytest.raises(ConfigError) as err:
        load_config(write_bytes(tmp_path, text.encode()))
    assert (err.value.key, err.value.rule) == ("x", "unknown key (not part of the config schema)")


@pytest.mark.parametrize(("old", "new", "key", "rule"), [
    # NaN passed as a threshold with no bounds (a threshold that never trips)
    ("start_value = 30", "start_value = nan", "power.generator.condition[0].start_value",
     "Input should be a finite number"),
    ("start_value = 11.9", "start_value = -inf", "power.generator.condition[1].start_value",
     "Input should be a finite number"),
    # a path with NUL passed, and check_on_target then failed with a ValueError traceback
    ('path = "${MCW_RUN_DIR:-/tmp/mcw-demo}/mcw.sqlite"', 'path = "/tmp/a\\u0000b"',
     "storage.path", "must not contain a NUL character"),
    # an unknown key named like a bus type was reported as its table, not by its name
    ('id = "demo"', 'id = "demo"\ntcp = 1', "vehicle.tcp", "unknown key"),
    ("unit = 100", "unit = 100\nrtu = 1", "device[0].rtu", "unknown key"),
    ('type = "tcp"', 'type = "tcp"\ntcp = 1', "bus[0].tcp", "unknown key"),
])
def test_values_the_schema_let_through_are_refused_by_key(
    tmp_path: Path, old: str, new: str, key: str, rule: str,
) -> None:
    """Non-finite numbers and NUL in text are refused at load, and an unknown key is named by
    its own path whatever it is called."""
    assert old in DEMO
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, DEMO.replace(old, new, 1)))
    assert err.value.key == key and rule in err.value.rule, str(err.value)


def test_a_diesel_heater_needs_a_co_alarm_and_a_locked_circuit(tmp_path: Path) -> None:
    """A combustion heater configured without its safety: refused with the key and why."""
    text = (ROOT / "config" / "demo.toml").read_text()
    cases = [
        (text.replace('[climate.co_alarm]\ninput = "co_alarm"\n', "").replace(
            "clear_s = ${MCW_CO_CLEAR_S:-300}\n", ""), "needs a [climate.co_alarm]"),
        (text.replace('power_circuit = "heater"\n', ""), "climate.heater.power_circuit"),
        (text.replace('lock = "climate/heater/keep_power"', 'lock = "io/ignition"'),
         "keep_power"),
    ]
    for i, (bad, expected) in enumerate(cases):
        path = tmp_path / f"bad{i}.toml"
        path.write_text(bad)
        with pytest.raises(ConfigError) as err:
            load_config(path)
        assert expected in str(err.value), str(err.value)


def test_the_duress_pin_is_optional_and_never_a_copy_of_another_pins_hash(
    tmp_path: Path,
) -> None:
    duress = next(line for line in DEMO.splitlines() if line.startswith("duress_pin_hash"))
    assert load_config(write(tmp_path, DEMO.replace(duress + "\n", ""))).panel is not None
    for other in ("crew_pin_hash", "technician_pin_hash"):
        copied = next(line for line in DEMO.splitlines() if line.startswith(other))
        text = DEMO.replace(duress, "duress_pin_hash" + copied.removeprefix(other))
        with pytest.raises(ConfigError) as err:
            load_config(write(tmp_path, text))
        assert err.value.key == "panel.duress_pin_hash"
        assert f"the same hash as {other}" in err.value.rule
