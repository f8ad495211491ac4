"""Hostile and mistaken config files: properties over arbitrary input (hypothesis, with the
budget of testsupport.FUZZ), seeded with the shipped configs.

The property: ``load_config`` either returns a valid config (finite numbers, no NUL in the
core and subsystem sections) or raises ConfigError whose message names the file, the key
(when there is one: a key of the file, or a key missing from one of its tables) and a
reason; never any other exception, never a hang.
"""

from __future__ import annotations

import copy
import math
import re
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import BaseModel
from testsupport import FUZZ

from drivers.buses import DeviceConfig, RtuBus, TcpBus
from supervisor.climate.config import ClimateSensor
from supervisor.core.config import (
    ConfigError,
    GpioConfig,
    GpioLine,
    MqttConfig,
    PanelConfig,
    SupervisorConfig,
    VehicleConfig,
)
from supervisor.power.config import Circuit, GeneratorConfig, PowerConfig
from supervisor.registry import load_config

ROOT = Path(__file__).resolve().parents[1]
TEXTS = {name: (ROOT / "config" / name).read_text() for name in ("demo.toml", "example-van.toml")}
# as their ${NAME:-default} defaults make them (whatever this machine's environment says)
DOCS = {name: tomllib.loads(re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}", r"\1", text))
        for name, text in TEXTS.items()}
LOAD_S = 5.0  # "never a hang": a load takes milliseconds; generous for a loaded machine
# the core and subsystem sections; bus and device are drivers.buses' schemas, which allow NUL
CHECKED_FOR_NUL = ("vehicle", "mqtt", "storage", "log", "gpio", "access", "panel", "power",
                   "climate")


# ---- writing TOML (tomllib only reads) --------------------------------------------------------


def toml_value(value: Any) -> str:
    """One TOML value on one line: tables inline, every key quoted, every float exact."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else "inf" if value > 0 else "-inf"
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    assert isinstance(value, dict), value
    return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_string(text: str) -> str:
    def escape(c: str) -> str:
        if c in '"\\':
            return "\\" + c
        return f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c

    return '"' + "".join(escape(c) for c in text) + '"'


def dump(doc: dict[str, Any]) -> str:
    return "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in doc.items())


def key_paths(node: Any, prefix: str = "") -> Iterator[str]:
    """Every key path of a document, spelled as ConfigError spells them (a.b[2].c)."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else key
            yield path
            yield from key_paths(value, path)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield f"{prefix}[{i}]"
            yield from key_paths(value, f"{prefix}[{i}]")


Spot = tuple[tuple[Any, Any], Any]  # ((container, key or index), value)


def walk(node: Any, spot: tuple[Any, Any] = (None, None)) -> Iterator[Spot]:
    """Every value of a document with where it sits (so a test can change it there)."""
    yield spot, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, (node, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, (node, i))


def leaf_spots(doc: dict[str, Any]) -> list[tuple[Any, Any]]:
    return [spot for spot, value in walk(doc) if not isinstance(value, dict | list)]


# ---- the property ---------------------------------------------------------------------------


def parent(key: str) -> str:
    cut = max(key.rfind("."), key.rfind("["))
    return key[:cut] if cut > 0 else ""


def check_load(path: Path, doc: dict[str, Any] | None = None) -> SupervisorConfig | None:
    """Load ``path``: a valid config, or a ConfigError that names the file, a reason and,
    when ``doc`` (what the file holds) is known, a key of it or one missing from one of its
    tables; either within LOAD_S. Any other exception fails the test as it is."""
    started = time.monotonic()
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        assert time.monotonic() - started < LOAD_S
        assert exc.file == str(path)
        assert str(exc).startswith(f"{path}: ") and exc.rule.strip(), str(exc)
        if doc is not None and exc.key:
            key = exc.key.removesuffix(".[key]")  # pydantic's mark for a bad dict key
            keys = set(key_paths(doc))
            assert key in keys or parent(key) in keys | {""}, str(exc)
        return None
    assert time.monotonic() - started < LOAD_S
    check_values(cfg.model_dump(), "")
    return cfg


def check_values(node: Any, where: str) -> None:
    """Finite numbers everywhere; no NUL in the text of the sections ``where`` names."""
    if isinstance(node, dict):
        for key, value in node.items():
            check_values(value, f"{where}.{key}")
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            check_values(value, f"{where}[{i}]")
    elif isinstance(node, float):
        assert math.isfinite(node), where
    elif isinstance(node, str | Path) and re.split(r"[.\[]", where[1:])[0] in CHECKED_FOR_NUL:
        assert "\0" not in str(node), where


# ---- strategies -----------------------------------------------------------------------------

numbers = st.one_of(
    st.integers(), st.integers(min_value=2**63), st.integers(max_value=-(2**63)),
    st.floats(),  # NaN and the infinities included
    st.sampled_from([0, -1, 1, 65535, 65536, 247, 248, 10**30, -0.0, 1e308, 5e-324]),
)
hostile_text = st.one_of(
    st.text(max_size=40), st.sampled_from(["", "\0", "a\0b", "/tmp/x\0y", " ", "../../etc"]),
    st.integers(1, 20_000).map(lambda n: "x" * n),  # overlong
)
toml_values = st.recursive(
    st.booleans() | numbers | hostile_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=8)


SPECIAL_NUMBERS = [math.nan, math.inf, -math.inf, -0.0, 1e308, -1e308, 2**63, -(2**63) - 1,
                   10**4000, 0, -1]


def hostile_like(value: Any) -> st.SearchStrategy[Any]:
    """Values a key of ``value``'s type should not take, or only just: NaN and the
    infinities, huge and negative numbers, numbers as text, NUL in text, text overlong."""
    if isinstance(value, bool):
        return st.sampled_from([0, 1, "true", "yes", 1.0]) | toml_values
    if isinstance(value, int | float):
        return st.sampled_from(SPECIAL_NUMBERS) | numbers | st.just(str(value))
    assert isinstance(value, str)
    return st.sampled_from(["", "\0", value + "\0", "\0" + value, value.upper(), value * 500,
                            value + " ", value + ".5"]) | hostile_text | numbers


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A shipped config with one to three mistakes: a value replaced (a wrong type, out of
    range, or another key's value), a key or list item removed, an unknown key added, a list
    item doubled (ids, pins and units used twice)."""
    doc = copy.deepcopy(DOCS[draw(st.sampled_from(sorted(DOCS)))])
    leaves = [value for _, value in walk(doc) if not isinstance(value, dict | list)]
    for _ in range(draw(st.integers(1, 3))):
        spots = list(walk(doc))
        spot_parent, spot_key = draw(st.sampled_from(spots))[0]
        if spot_parent is None:
            continue  # the whole document: not a spot to change
        what = draw(st.sampled_from(["replace", "other", "remove", "unknown", "double"]))
        container: Any = spot_parent
        if what == "replace":
            container[spot_key] = draw(toml_values)
        elif what == "other":
            container[spot_key] = draw(st.sampled_from(leaves))
        elif what == "remove":
            del container[spot_key]
        elif what == "unknown":
            target = container[spot_key]
            if isinstance(target, dict):
                target["zz_" + draw(st.text(max_size=10))] = draw(toml_values)
        elif isinstance(container[spot_key], list) and container[spot_key]:
            items = container[spot_key]
            items.append(items[draw(st.integers(0, len(items) - 1))])
    return doc


hostile_toml = st.one_of(
    st.sampled_from([b"nan", b"-inf", b"1e999", b"0x" + b"f" * 40, b"9" * 5000, b"-0",
                     b"1979-05-27T07:32:00Z", b"07:32:00", b"true", b'"\\u0000"', b'"\\ud800"',
                     b"'''", b'"""', b"{", b"[", b"${MCW_NOT_SET_ANYWHERE}", b"${X:-}"]),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 3000).map(lambda n: b"{a = " * n + b"1" + b"}" * n),
    st.integers(1, 3000).map(lambda n: b"{" + b"a." * n + b"a = 1}"),
    st.builds(lambda v: toml_value(v).encode(), toml_values),
)


@st.composite
def mangled_text(draw: st.DrawFn) -> bytes:
    """A shipped config's text, damaged as an editor, a copy or an attacker might: bytes
    replaced or inserted (not UTF-8 included), lines removed or doubled, cut short, or a
    value replaced by a hostile TOML value."""
    raw = TEXTS[draw(st.sampled_from(sorted(TEXTS)))].encode()
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(raw)))
        what = draw(st.sampled_from(["bytes", "line", "double", "cut", "value"]))
        if what == "bytes":
            raw = raw[:at] + draw(st.binary(max_size=20)) + raw[at + draw(st.integers(0, 20)):]
        elif what == "cut":
            raw = raw[:at]
        else:
            lines = raw.split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            if what == "line":
                del lines[i]
            elif what == "double":
                lines.insert(i, lines[i])
            elif b" = " in lines[i]:
                key = lines[i].split(b" = ")[0]
                lines[i] = key + b" = " + draw(hostile_toml)
            raw = b"\n".join(lines)
    return raw


@FUZZ
@given(data=st.binary(max_size=3000))
def test_any_bytes_are_refused_with_a_config_error(tmp_path: Path, data: bytes) -> None:
    """Arbitrary bytes as a config file: a ConfigError naming the file and a reason."""
    path = tmp_path / "van.toml"
    path.write_bytes(data)
    assert check_load(path) is None  # no bytes without [vehicle] make a valid config


@FUZZ
@given(doc=mutated())
def test_a_mistaken_config_loads_valid_or_names_file_key_and_reason(
    tmp_path: Path, doc: dict[str, Any],
) -> None:
    """A shipped config with values of the wrong type or range, keys removed, unknown keys,
    items doubled: loads into a valid config, or a ConfigError names a key of the file (or
    one missing from its table) and a reason."""
    path = tmp_path / "van.toml"
    path.write_text(dump(doc), encoding="utf-8")
    check_load(path, doc)


@FUZZ
@given(data=mangled_text())
def test_a_damaged_config_file_loads_valid_or_names_file_and_reason(
    tmp_path: Path, data: bytes,
) -> None:
    """A shipped config file damaged at the byte and line level: loads into a valid config, or
    a ConfigError names the file and a reason."""
    path = tmp_path / "van.toml"
    path.write_bytes(data)
    check_load(path)


@FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(DOCS)))
def test_one_value_replaced_loads_valid_or_is_named(
    tmp_path: Path, data: st.DataObject, name: str,
) -> None:
    """Any one value of a shipped config replaced by one its key should not take (NaN, an
    infinity, a huge or negative number, text with NUL, ...): a valid config, or a
    ConfigError naming a key of the file and a reason."""
    doc = copy.deepcopy(DOCS[name])
    container, key = data.draw(st.sampled_from(leaf_spots(doc)))
    container[key] = data.draw(hostile_like(container[key]))
    path = tmp_path / "van.toml"
    path.write_text(dump(doc), encoding="utf-8")
    check_load(path, doc)


# the demo's tables, with the schema of each (an unknown key must be named, whatever it is)
TABLES: dict[tuple[str | int, ...], type[BaseModel]] = {
    ("vehicle",): VehicleConfig, ("mqtt",): MqttConfig, ("gpio",): GpioConfig,
    ("gpio", "line", 0): GpioLine, ("bus", 0): TcpBus, ("bus", 1): RtuBus,
    ("device", 0): DeviceConfig, ("power",): PowerConfig, ("power", "generator"): GeneratorConfig,
    ("power", "circuit", 0): Circuit, ("panel",): PanelConfig,
    ("climate", "sensor", 0): ClimateSensor,
}


def spell(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


@FUZZ
@given(table=st.sampled_from(sorted(TABLES, key=spell)),
       key=st.sampled_from(["tcp", "rtu", "type", "[key]", "a.b", "0", " ", "ID"]) | st.text(),
       value=toml_values)
def test_an_unknown_key_is_refused_by_its_name(
    tmp_path: Path, table: tuple[str | int, ...], key: str, value: Any,
) -> None:
    """An unknown key in any table of the demo, named anyhow (even like a bus type), is
    refused with its own key path."""
    assume(key not in TABLES[table].model_fields)
    doc = copy.deepcopy(DOCS["demo.toml"])
    node: Any = doc
    for part in table:
        node = node[part]
    node[key] = value
    path = tmp_path / "van.toml"
    path.write_text(dump(doc), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert (err.value.key, err.value.rule) == (f"{spell(table)}.{key}",
                                              "unknown key (not part of the config schema)")


# ---- the writer the properties use ----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DOCS))
def test_the_toml_writer_round_trips_the_shipped_configs(tmp_path: Path, name: str) -> None:
    """The properties above write TOML: it reads back as written and still loads."""
    assert tomllib.loads(dump(DOCS[name])) == DOCS[name]
    path = tmp_path / "van.toml"
    path.write_text(dump(DOCS[name]))
    assert check_load(path, DOCS[name]) is not None
