"""Decoding a command payload within explicit limits, for any interface (MQTT, panel).

A command is a small JSON object ``{"id": ..., "args": {...}, "expires": ...}``. Whatever
arrives is either decoded within these limits or refused with a code; nothing in it can
raise anything else (deep nesting, huge numbers, NaN, lone surrogates, megabyte strings).

| limit | value | code |
|---|---|---|
| payload size | 4 096 bytes (the id is still read from up to 64 KiB) | ``too_large`` |
| text | UTF-8, no lone surrogates, no NUL | ``bad_text`` |
| nesting | 4 levels of objects/arrays | ``too_deep`` |
| numbers | finite, integers within ±2^53 | ``bad_number`` |
| a string | 256 characters | ``too_long`` |
| an id | 1-64 characters | ``bad_id`` |
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_PAYLOAD = 4096
MAX_ID_SCAN = 65536  # a larger payload is not even parsed to find its id
MAX_DEPTH = 4
MAX_INT = 2**53
MAX_STRING = 256
MAX_ID_LEN = 64
FIELDS = frozenset({"id", "args", "expires"})


class PayloadError(Exception):
    """The payload is refused; ``code`` is what the result says."""

    def __init__(self, code: str, message: str, command_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.command_id = command_id  # when it could be read, the result carries it


def decode(payload: bytes | str) -> tuple[str, dict[str, Any]]:
    """(the id, the checked body); PayloadError when refused, with the id when it could be
    read."""
    raw = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
    if len(raw) > MAX_ID_SCAN:
        raise PayloadError("too_large", f"payload over {MAX_PAYLOAD} bytes")
    body = _json(raw)
    cid = readable_id(body)
    try:
        if len(raw) > MAX_PAYLOAD:
            raise PayloadError("too_large", f"payload over {MAX_PAYLOAD} bytes")
        _check_values(body)
        unknown = set(body) - FIELDS
        if unknown:
            names = ", ".join(sorted(unknown))[:200]
            raise PayloadError("bad_request", f"unknown fields: {names}")
    except PayloadError as exc:
        raise PayloadError(exc.code, str(exc), cid) from None
    if cid is None:
        raise PayloadError("bad_id", f"id must be a string of 1-{MAX_ID_LEN} characters")
    return cid, body


def readable_id(body: dict[str, Any]) -> str | None:
    """The command's id when it is a valid one, else None."""
    cid = body.get("id")
    if isinstance(cid, str) and 0 < len(cid) <= MAX_ID_LEN and _clean(cid):
        return cid
    return None


def _json(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError("bad_text", f"payload is not UTF-8 (byte {exc.start})") from exc
    try:
        body = json.loads(text, parse_constant=_constant)
    except RecursionError as exc:
        raise PayloadError("too_deep", f"nested deeper than {MAX_DEPTH} levels") from exc
    except ValueError as exc:
        raise PayloadError("bad_json", f"payload is not JSON: {str(exc)[:120]}") from exc
    if not isinstance(body, dict):
        raise PayloadError("bad_json", "payload must be a JSON object")
    return body


def _constant(name: str) -> float:
    # NaN and Infinity are not JSON, but Python's parser takes them: kept here so that the
    # check below refuses them with the command's id
    return float(name)


def _check_values(body: dict[str, Any]) -> None:
    """Every value within the limits (iterative: no recursion on what a client sent)."""
    stack: list[tuple[object, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise PayloadError("too_deep", f"nested deeper than {MAX_DEPTH} levels")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    _check_string(key)
                stack.append((item, depth + 1))
        elif isinstance(value, str):
            _check_string(value)
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if abs(value) > MAX_INT:
                raise PayloadError("bad_number", f"integers must be within ±{MAX_INT}")
        elif isinstance(value, float) and not math.isfinite(value):
            raise PayloadError("bad_number", "numbers must be finite")


def _check_string(text: str) -> None:
    if len(text) > MAX_STRING:
        raise PayloadError("too_long", f"strings are at most {MAX_STRING} characters")
    if not _clean(text):
        raise PayloadError("bad_text", "text must be UTF-8 without NUL or lone surrogates")


def _clean(text: str) -> bool:
    if "\0" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
