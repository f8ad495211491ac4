"""Command router: validate, authorise, apply, confirm, audit and answer every command once.

Commands are actions (``power/circuit {"circuit": "fridge", "on": true}``), never raw
registers. Results: ``done``, ``rejected`` (bad input or not allowed: nothing applied),
``failed`` (applied but not confirmed, or the device did not answer), ``expired`` (too late:
not applied) and ``duplicate`` (this id was seen before: not applied again).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import structlog

from supervisor.core.command_payload import PayloadError, decode
from supervisor.core.listeners import Listeners
from supervisor.core.storage import Storage

log = structlog.get_logger("supervisor.commands")

Status = Literal["done", "rejected", "failed", "expired", "duplicate"]
# scalar: a number or true/false (a register of either type, checked by its profile)
ArgType = Literal["number", "integer", "bool", "string", "enum", "scalar"]
ROLE_NAMES = ("hq", "crew", "technician")
# Who may run what, by default: the crew on board and a technician run the van; headquarters
# watches, acknowledges alarms and runs what a subsystem opens to it (e.g. pre-heating), and
# more only where the vehicle config grants it ([access] grant).
ON_BOARD = frozenset({"crew", "technician"})
EVERYONE = frozenset(ROLE_NAMES)


@dataclass(frozen=True)
class ArgSpec:
    type: ArgType
    required: bool = True
    min: float | None = None
    max: float | None = None
    enum: tuple[str, ...] = ()
    description: str = ""

    def meta(self) -> dict[str, object]:
        out: dict[str, object] = {"type": self.type, "required": self.required}
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        if self.enum:
            out["enum"] = list(self.enum)
        return out


class CommandFailed(Exception):
    """Raised by a handler when the action could not be applied or confirmed."""

    def __init__(self, code: str, message: str, status: Status = "failed") -> None:
        super().__init__(message)
        self.code = code
        self.status = status


Handler = Callable[[dict[str, Any]], Awaitable[str]]


@dataclass(frozen=True)
class ActionSpec:
    id: str
    handler: Handler
    roles: frozenset[str]
    args: dict[str, ArgSpec] = field(default_factory=dict)
    description: str = ""
    # an event for each run (False: housekeeping that runs every few seconds, such as HQ's
    # pong; still recorded in the command table and answered)
    event: bool = True

    def meta(self) -> dict[str, object]:
        return {
            "id": self.id,
            "description": self.description,
            "roles": sorted(self.roles),
            "args": {k: v.meta() for k, v in self.args.items()},
        }


@dataclass
class Result:
    id: str | None
    action: str
    status: Status
    code: str
    message: str

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "status": self.status, "code": self.code, "message": self.message}


class _Reject(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class CommandRouter:
    def __init__(self, storage: Storage, wall: Callable[[], float] = time.time) -> None:
        self.actions: dict[str, ActionSpec] = {}
        self.storage = storage
        self._wall = wall
        self._in_flight: set[str] = set()
        self._grants: dict[str, frozenset[str]] = {}
        self.closed = False
        # (result, role, source, args) of every answered command
        self.audited = Listeners[Result, str, str, dict[str, Any]]("command audit")

    def register(self, spec: ActionSpec) -> None:
        if spec.id in self.actions:
            raise ValueError(f"action {spec.id} registered twice")
        self.actions[spec.id] = spec

    def grant(self, grants: Mapping[Any, tuple[str, ...]]) -> str | None:
        """Open actions to more roles (the config's [access] grant); the error, if any."""
        for role, actions in grants.items():
            for i, action in enumerate(actions):
                if action not in self.actions:
                    return f"{role}[{i}]: no action {action!r}"
        self._grants = {role: frozenset(actions) for role, actions in grants.items()}
        return None

    def roles(self, spec: ActionSpec) -> frozenset[str]:
        """The roles that may run an action, grants included."""
        return spec.roles | {r for r, ids in self._grants.items() if spec.id in ids}

    def close(self) -> None:
        """Shutting down: every later command is answered ``rejected`` (shutting_down)."""
        self.closed = True

    async def submit(self, action: str, payload: bytes | str, role: str, source: str) -> Result:
        """Handle one command from any interface; always returns exactly one result."""
        cid: str | None = None
        args: dict[str, Any] = {}
        try:
            try:
                cid, body = decode(payload)
            except PayloadError as exc:
                cid = exc.command_id
                raise _Reject(exc.code, str(exc)) from exc
            spec = self.actions.get(action)
            if spec is None:
                raise _Reject("unknown_action", f"no action {action[:80]!r}")
            if role not in self.roles(spec):
                raise _Reject("forbidden", f"role {role!r} may not run {action}")
            if self.closed:
                raise _Reject("shutting_down", "the supervisor is shutting down")
            args = _validate_args(spec, body.get("args", {}))
            expires = _expires(body.get("expires"))
        except _Reject as exc:
            return self._finish(
                Result(cid, action, "rejected", exc.code, str(exc)),
                role,
                source,
                args,
                record=False,
            )
        if cid in self._in_flight or self.storage.command_seen(cid):
            return self._finish(
                Result(
                    cid, action, "duplicate", "duplicate", f"command {cid} was already received"
                ),
                role,
                source,
                args,
                record=False,
            )
        if expires is not None and self._wall() > expires:
            result = Result(cid, action, "expired", "expired",
                            "the command expired before it could be applied")
            return await self._answer_durably(result, role, source, args)
        self._in_flight.add(cid)
        try:
            message = await spec.handler(args)
            result = Result(cid, action, "done", "ok", message)
        except CommandFailed as exc:
            result = Result(cid, action, exc.status, exc.code, str(exc))
        except Exception as exc:  # a handler bug must still give the caller an answer
            log.exception("command_handler_error", action=action, command_id=cid)
            result = Result(cid, action, "failed", "internal_error", str(exc))
        finally:
            self._in_flight.discard(cid)
        return await self._answer_durably(result, role, source, args)

    async def _answer_durably(self, result: Result, role: str, source: str,
                              args: dict[str, Any]) -> Result:
        """Record and audit; answer once the record is on the card, so that a power cut
        right after the answer cannot make the same id run again."""
        self._finish(result, role, source, args)
        await self.storage.durable()
        return result

    def refuse(self, action: str, payload: bytes | str, role: str, source: str, code: str,
               message: str, audit: bool = True) -> Result:
        """Answer a command an interface will not submit (e.g. a retained MQTT message):
        ``rejected``, with its id when one can be read, audited like any other unless
        ``audit`` is False (an overload's ``busy``: the interface counts those instead)."""
        try:
            cid: str | None = decode(payload)[0]
        except PayloadError as exc:
            cid = exc.command_id
        result = Result(cid, action, "rejected", code, message)
        return self._finish(result, role, source, {}, record=False) if audit else result

    def _finish(
        self, result: Result, role: str, source: str, args: dict[str, Any], record: bool = True
    ) -> Result:
        if record and result.id is not None:
            self.storage.record_command(
                result.id,
                self._wall(),
                result.action,
                role,
                source,
                args,
                result.status,
                result.code,
                result.message,
            )
        log.info(
            "command",
            command_id=result.id,
            action=result.action,
            role=role,
            source=source,
            status=result.status,
            code=result.code,
        )
        spec = self.actions.get(result.action)
        if spec is None or spec.event:
            self.audited(result, role, source, args)
        return result

    def meta(self) -> list[dict[str, object]]:
        return [{**spec.meta(), "roles": sorted(self.roles(spec))}
                for spec in self.actions.values()]


def _expires(raw: object) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise _Reject("bad_expires", "expires must be an ISO 8601 time or epoch seconds")
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        try:
            dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError as exc:
            raise _Reject("bad_expires", f"expires is not an ISO 8601 time: {raw}") from exc
        if dt.tzinfo is None:
            raise _Reject("bad_expires", "expires must carry a time zone (UTC: Z)")
        return dt.timestamp()
    raise _Reject("bad_expires", "expires must be an ISO 8601 time or epoch seconds")


def _validate_args(spec: ActionSpec, raw: object) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _Reject("bad_args", "args must be a JSON object")
    unknown = set(raw) - set(spec.args)
    if unknown:
        raise _Reject("bad_args", f"unknown argument(s): {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    for name, arg in spec.args.items():
        if name not in raw:
            if arg.required:
                raise _Reject("bad_args", f"missing argument {name!r}")
            continue
        out[name] = _check_arg(name, arg, raw[name])
    return out


def _check_arg(name: str, arg: ArgSpec, value: object) -> object:
    if arg.type == "scalar" and isinstance(value, bool):
        return value
    if arg.type == "bool":
        if not isinstance(value, bool):
            raise _Reject("wrong_type", f"{name} must be true or false")
        return value
    if arg.type in ("string", "enum"):
        if not isinstance(value, str):
            raise _Reject("wrong_type", f"{name} must be a string")
        if arg.type == "enum" and value not in arg.enum:
            raise _Reject("out_of_range", f"{name} must be one of {', '.join(arg.enum)}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Reject("wrong_type", f"{name} must be a number"
                      + (" or true/false" if arg.type == "scalar" else ""))
    if arg.type == "integer" and not float(value).is_integer():
        raise _Reject("wrong_type", f"{name} must be a whole number")
    if not math.isfinite(value):
        raise _Reject("out_of_range", f"{name} must be finite")
    if (arg.min is not None and value < arg.min) or (arg.max is not None and value > arg.max):
        raise _Reject("out_of_range", f"{name} must be within {arg.min}..{arg.max}")
    return int(value) if arg.type == "integer" else float(value)
