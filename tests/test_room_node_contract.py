"""The room node's register map agrees three ways: the firmware's own map (roomnode.node),
the device profile the supervisor reads it with (drivers/profiles/room_node.toml), and the
table in firmware/room_node/README.md; and the README's wiring is the board's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from drivers.profile import Profile, Register, load_profile
from roomnode import board
from roomnode.node import ENUMS, REGISTERS

README = Path(__file__).resolve().parents[1] / "firmware" / "room_node" / "README.md"
PROFILE = load_profile("room_node")


def raw(reg: Register, value: float | None) -> int | None:
    """A profile's range bound in the register's raw units."""
    return None if value is None else round(value * reg.scale)


def profile_rows(profile: Profile) -> dict[str, tuple[object, ...]]:
    return {reg.name: (reg.table, reg.address, reg.type, reg.access, raw(reg, reg.min),
                       raw(reg, reg.max)) for reg in profile.registers}


def test_the_firmwares_map_is_the_profiles() -> None:
    firmware = {name: (table, address, rtype, access, lo, hi)
                for name, table, address, rtype, access, lo, hi in REGISTERS}
    assert firmware == profile_rows(PROFILE)


def test_the_firmwares_enums_are_the_profiles() -> None:
    assert PROFILE.enums == ENUMS
    used = {reg.enum for reg in PROFILE.registers if reg.enum is not None}
    assert used <= set(ENUMS)


def test_the_unit_and_the_block_size() -> None:
    assert PROFILE.device.default_unit == board.UNIT
    assert PROFILE.device.transport == "rtu"
    # the supervisor's blocks stay within one table's span, which the node answers whole
    assert PROFILE.device.max_block <= 24


def readme_table() -> dict[str, dict[str, str]]:
    """The README's register table, by register name."""
    rows: dict[str, dict[str, str]] = {}
    header: list[str] = []
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[:2] == ["address", "register"]:
            header = cells
        elif header and len(cells) == len(header) and cells[0].isdigit():
            rows[cells[1]] = dict(zip(header, cells, strict=True))
    return rows


def test_the_readmes_table_is_the_profile() -> None:
    table = readme_table()
    assert set(table) == {reg.name for reg in PROFILE.registers}
    for reg in PROFILE.registers:
        row = table[reg.name]
        assert int(row["address"]) == reg.address, reg.name
        assert (row["table"], row["type"], row["access"]) == (reg.table, reg.type, reg.access)
        assert float(row["scale"]) == reg.scale, reg.name
        assert row["unit"] == reg.unit, reg.name
        expected = "" if reg.min is None else f"{reg.min:g}..{reg.max:g}"
        assert row["range"] == expected, reg.name


@pytest.mark.parametrize("value", [board.SHORT_BELOW, board.ALARM_FROM, board.OPEN_FROM,
                                   board.adc_counts(board.R_EOL),
                                   board.adc_counts(board.R_EOL + board.R_ALARM)])
def test_the_readmes_thresholds_are_the_boards(value: int) -> None:
    assert re.search(rf"\b{value}\b", README.read_text())


def test_the_readmes_pins_are_the_boards() -> None:
    text = README.read_text()
    pins = {name: value for name, value in vars(board).items() if name.startswith("PIN_")}
    assert pins
    for name, pin in pins.items():
        assert re.search(rf"^\| GP{pin}\b", text, re.MULTILINE), name
