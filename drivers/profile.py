"""Device profiles: the register map of one real device model, loaded from a TOML data file.

A profile is data, like Victron's register tables: each register has an address (0-based, as
on the wire), a table, a type with word order, a scale (``value = raw / scale``), a unit, an
access mode, a poll class (which sets its maximum age) and an optional invalid sentinel.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from drivers.register_codec import RegisterType, WordOrder, word_count

Table = Literal["holding", "input", "coil", "discrete"]
PollClass = Literal["fast", "slow", "never"]

# FC01/FC02 read bits, FC03/FC04 read 16-bit registers; the protocol's limits per request.
MAX_REGISTERS_PER_READ = 125
MAX_BITS_PER_READ = 2000
MAX_PROFILE_BYTES = 1 << 20  # a register map is a few kB; a profile file beyond this is wrong
MAX_REGISTERS = 2000


class ProfileError(ValueError):
    """A profile file is missing or does not follow the schema."""


class Register(BaseModel):
    """One value in a device's register map."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    address: int = Field(ge=0, le=0xFFFF)
    table: Table
    type: RegisterType
    scale: float = 1
    unit: str = ""
    access: Literal["r", "rw", "w"] = "r"
    poll: PollClass = "fast"
    words: int | None = Field(default=None, ge=1, le=125)
    invalid: int | None = None
    # Name of a table in the profile's [enum] section: what the codes mean.
    enum: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*$")
    # Range a write must stay within (scaled units); enum registers take the table's codes.
    min: float | None = None
    max: float | None = None
    note: str = ""

    @model_validator(mode="after")
    def _check(self) -> Register:
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        if self.table in ("coil", "discrete") and self.type != "bool":
            raise ValueError(f"a {self.table} register must have type bool")
        if self.type == "string" and not self.words:
            raise ValueError("a string register needs words")
        if self.access == "w" and self.poll != "never":
            raise ValueError("a write-only register cannot be polled (poll = 'never')")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not be above max")
        return self

    def check_range(self, value: float | bool) -> str | None:
        """Why ``value`` is outside this register's type or write range (None when inside)."""
        if isinstance(value, bool) != (self.type == "bool"):
            return f"{self.name} takes {'true or false' if self.type == 'bool' else 'a number'}"
        if self.min is not None and value < self.min:
            return f"{self.name} must be at least {self.min:g}"
        if self.max is not None and value > self.max:
            return f"{self.name} must be at most {self.max:g}"
        return None

    @property
    def count(self) -> int:
        """Registers (or bits) this value occupies."""
        return word_count(self.type, self.words)

    @property
    def end(self) -> int:
        """First address after this value."""
        return self.address + self.count

    @property
    def readable(self) -> bool:
        return self.access != "w"

    @property
    def writable(self) -> bool:
        return self.access in ("rw", "w")


class Identity(BaseModel):
    """How a device says what it is: a register the bus worker reads at first contact (and
    after every time it was offline), and the values a unit of this model answers (scaled
    like any reading): one of ``equals``, or within ``min``..``max``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(alias="register")  # the register's name
    equals: tuple[int | float | str, ...] = ()
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _something_to_check(self) -> Identity:
        if not self.equals and self.min is None and self.max is None:
            raise ValueError("give equals, or min and/or max")
        return self

    def accepts(self, value: object) -> bool:
        """Whether ``value`` (a decoded reading) is what this model answers."""
        if self.equals and value not in self.equals:
            return False
        if self.min is not None or self.max is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return False
            return (self.min is None or value >= self.min) and \
                (self.max is None or value <= self.max)
        return True

    def expected(self) -> str:
        if self.equals:
            return " or ".join(f"{v!r}" for v in self.equals)
        if self.max is None:
            return f"{self.min:g} or more"
        if self.min is None:
            return f"{self.max:g} or less"
        return f"{self.min:g} to {self.max:g}"


class DeviceInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    transport: Literal["tcp", "rtu"]
    default_unit: int = Field(ge=0, le=255)
    word_order: WordOrder = "big"
    max_block: int = Field(default=MAX_REGISTERS_PER_READ, ge=1, le=MAX_BITS_PER_READ)
    # Requests must start on a multiple of this and span a multiple of it (Eastron meters: 2).
    align: int = Field(default=1, ge=1, le=4)
    identity: Identity | None = None


class Profile(BaseModel):
    """A whole device model: its transport facts and its registers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    device: DeviceInfo
    registers: tuple[Register, ...] = Field(alias="register", max_length=MAX_REGISTERS)
    # code -> meaning, per table name; registers refer to a table with ``enum``
    enums: dict[str, dict[int, str]] = Field(default_factory=dict, alias="enum")
    # supervisor role -> registers a device in that role must have (e.g. battery_monitor)
    roles: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        seen: set[str] = set()
        for reg in self.registers:
            if reg.name in seen:
                raise ValueError(f"register {reg.name!r} is defined twice")
            seen.add(reg.name)
            if reg.enum is not None and reg.enum not in self.enums:
                raise ValueError(f"register {reg.name!r}: no enum table {reg.enum!r}")
        ident = self.device.identity
        if ident is not None and (ident.name not in seen or not self.get(ident.name).readable):
            raise ValueError(f"device.identity: no readable register {ident.name!r}")
        for role, needed in self.roles.items():
            missing = set(needed) - seen
            if missing:
                raise ValueError(f"role {role!r} names unknown registers {sorted(missing)}")
        return self

    def enum_of(self, register: str) -> dict[int, str]:
        """Code -> meaning of an enumerated register ({} when it is not one)."""
        table = self.get(register).enum
        return {} if table is None else self.enums[table]

    def check_write(self, register: str, value: float | bool) -> str | None:
        """Why ``value`` may not be written to ``register`` (None when it may): its access,
        type, write range, or for an enumerated register a code the device defines."""
        reg = self.get(register)
        if not reg.writable:
            return f"{register} is read-only"
        table = self.enum_of(register)
        if table and value not in table:
            return f"{register} takes one of the codes {sorted(table)}"
        return reg.check_range(value)

    def code_of(self, register: str, meaning: str) -> int:
        """The code that means ``meaning`` in an enumerated register (KeyError if none)."""
        for code, name in self.enum_of(register).items():
            if name == meaning:
                return code
        raise KeyError(f"{self.name}.{register} has no value {meaning!r}")

    def get(self, name: str) -> Register:
        """The register called ``name``; KeyError if the model has none."""
        for reg in self.registers:
            if reg.name == name:
                return reg
        raise KeyError(f"profile {self.name} has no register {name!r}")

    def names(self) -> set[str]:
        return {reg.name for reg in self.registers}


def available_profiles() -> list[str]:
    """Names of the profiles shipped with the drivers."""
    files = resources.files("drivers.profiles")
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".toml"))


@cache
def load_profile(name: str) -> Profile:
    """Load and validate the shipped profile called ``name`` (file name without .toml)."""
    if name not in available_profiles():
        raise ProfileError(f"unknown profile {name!r}; known: {', '.join(available_profiles())}")
    text = resources.files("drivers.profiles").joinpath(f"{name}.toml").read_text("utf-8")
    return _parse(name, text, f"profile {name}")


@cache
def load_profile_file(path: Path) -> Profile:
    """Load and validate a van builder's profile file (the shipped profiles' format): a device
    the product does not know, added without code. Errors name the file, the key and why."""
    try:
        if path.stat().st_size > MAX_PROFILE_BYTES:
            raise ProfileError(f"{path}: larger than {MAX_PROFILE_BYTES} bytes")
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot be read ({exc})") from exc
    return _parse(path.stem, text, str(path))


def _parse(name: str, text: str, origin: str) -> Profile:
    try:
        return Profile.model_validate({"name": name, **tomllib.loads(text)})
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{origin}: not valid TOML: {exc}") from exc
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(part) for part in err["loc"]) or "(file)"
        raise ProfileError(f"{origin}: {key}: {err['msg']}") from exc
