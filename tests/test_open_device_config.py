"""A van builder's profile file in the vehicle config: loaded like the shipped profiles,
read from beside the config, and refused with the file, the key and the reason when it
cannot be used."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from testsupport import FUZZ

from drivers.profile import Identity, load_profile_file
from supervisor.core.config import ConfigError
from supervisor.registry import load_config

ROOT = Path(__file__).resolve().parents[1]
GAUGE = ROOT / "hil-tests" / "builder_profiles" / "tank_gauge.toml"
VAN = """
[vehicle]
id = "builder-van"

[[bus]]
name = "rs485"
type = "rtu"
port = "/dev/ttyUSB0"

[[bus]]
name = "lan"
type = "tcp"
host = "127.0.0.1"

[[device]]
id = "tank"
{profile}
bus = "{bus}"
unit = 9
"""


def van(tmp_path: Path, profile: str = 'profile_file = "tank_gauge.toml"',
        bus: str = "rs485") -> Path:
    path = tmp_path / "vehicle.toml"
    path.write_text(VAN.format(profile=profile, bus=bus))
    return path


def refused(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value


def test_a_profile_file_beside_the_config_is_loaded_and_exposed(tmp_path: Path) -> None:
    shutil.copy(GAUGE, tmp_path / "tank_gauge.toml")
    cfg = load_config(van(tmp_path))
    (dev,) = cfg.device
    assert dev.profile_file == tmp_path / "tank_gauge.toml" and dev.exposed
    assert dev.load_profile().get("alarm_level").max == 50
    assert load_config(van(tmp_path, 'profile = "xy_md02"')).device[0].exposed is False


@pytest.mark.parametrize(("profile", "file_text", "bus", "key", "reason"), [
    ('profile_file = "missing.toml"', None, "rs485", "device[0].profile_file",
     "cannot be read"),
    ('profile = "xy_md02"\nprofile_file = "tank_gauge.toml"', "", "rs485", "device[0]",
     "either profile"),
    ('profile_file = "tank_gauge.toml"', "[device\n", "rs485", "device[0].profile_file",
     "not valid TOML"),
    ('profile_file = "tank_gauge.toml"', GAUGE.read_text().replace("scale = 10", "scale = 0", 1),
     "rs485", "device[0].profile_file", "register.0: Value error, scale must not be 0"),
    ('profile_file = "tank_gauge.toml"', GAUGE.read_text().replace('table = "input"',
                                                                   'table = "inputs"', 1),
     "rs485", "device[0].profile_file", "register.0.table"),
    ('profile_file = "tank_gauge.toml"', GAUGE.read_text(), "lan", "device[0].bus",
     "speaks rtu, bus lan is tcp"),
])
def test_an_unusable_profile_file_is_refused_with_file_key_and_reason(
        tmp_path: Path, profile: str, file_text: str | None, bus: str, key: str,
        reason: str) -> None:
    if file_text is not None:
        (tmp_path / "tank_gauge.toml").write_text(file_text)
    error = refused(van(tmp_path, profile, bus))
    assert error.key == key, error
    assert reason in error.rule, error
    if key.endswith("profile_file"):
        assert str(tmp_path) in error.rule, "the profile file is named"


@settings(FUZZ, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_any_profile_file_loads_or_is_refused_cleanly(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.toml"
    path.write_bytes(data)
    load_profile_file.cache_clear()  # the same path, new content each time
    try:
        load_config(van(tmp_path, f'profile_file = "{path.name}"'))
    except ConfigError as error:
        assert error.key.startswith("device[0]"), error


@given(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
       st.lists(st.integers(0, 0xFFFF), max_size=3), st.floats(allow_nan=False) | st.none())
def test_an_identity_check_takes_whatever_a_unit_answers(value: object, equals: list[int],
                                                         low: float | None) -> None:
    """A unit's answer, decoded, may be anything: the check says yes or no, never raises."""
    if not equals and low is None:
        low = 1.0
    ident = Identity.model_validate({"register": "id", "equals": equals, "min": low})
    assert isinstance(ident.accepts(value), bool)
    assert ident.expected()
