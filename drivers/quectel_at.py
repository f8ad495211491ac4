"""A Quectel-class LTE modem (EC25 / EG25) on its AT command port: signal, registration,
operator and access technology, polled.

Facts (../shared/devices/README.md §8; Quectel "EC25&EC21 AT Commands Manual" V1.3, 2018-09,
§6.3 ``AT+CSQ`` as published at easymanua.ls/quectel/ec25/manual?p=79, copies of the whole
manual at usermanual.wiki; 3GPP TS 27.007 for ``+CREG``/``+CGREG``/``+CEREG`` and ``+COPS``
as the Quectel BC26, Telit and Sercomm manuals reproduce it):

* A command is ``AT...`` ended by CR. With echo on (``ATE1``, the factory setting) the modem
  first repeats it; then come the information lines (``+CSQ: 20,99``) and one final result
  code, ``OK``, ``ERROR`` or ``+CME ERROR: <err>`` (a number; text after ``AT+CMEE=2``),
  each framed by CR LF. Every command here is a read the modem answers at once (300 ms at
  most for ``AT+CSQ`` by the manual).
* ``AT+CSQ`` -> ``+CSQ: <rssi>,<ber>``: rssi 0 is -113 dBm or less, 1..30 are -111..-53 dBm
  (dBm = -113 + 2 rssi), 31 is -51 dBm or more, 99 unknown; 100..191 the TD-SCDMA RSCP
  (dBm = -116 + rssi - 100), 199 unknown. ber 0..7 (RXQUAL) or 99 unknown.
* ``AT+CEREG?`` (EPS: LTE) and ``AT+CGREG?`` (the packet domain on 2G/3G, where an LTE modem
  falls back outside LTE coverage) -> ``+CEREG: <n>,<stat>[,<tac>,<ci>[,<AcT>]]``; stat 0
  not registered, 1 registered home, 2 searching, 3 denied, 4 unknown, 5 roaming (later
  27.007 editions add 6..10: SMS only, emergency only, CSFB not preferred). With ``<n>`` 1
  or 2 (ModemManager sets 2) the modem also reports a change by itself,
  ``+CEREG: <stat>[,<tac>,<ci>[,<AcT>]]``: told from the answer by its second field, which is
  absent or a quoted string there and the unquoted stat in the answer.
* ``AT+COPS?`` -> ``+COPS: <mode>[,<format>,"<oper>"[,<AcT>]]``, the mode alone when no
  operator is selected; oper in long alphanumeric (16 characters by the standard), short or
  numeric (MCC MNC) format; AcT 0 GSM, 2 UTRAN, 3 GSM w/EGPRS, 4 UTRAN w/HSDPA, 5 w/HSUPA,
  6 w/HSDPA and HSUPA, 7 E-UTRAN (LTE), 100 CDMA; 8 LTE Cat M1 on Quectel's BG9x, 9 NB-IoT,
  10..13 the 5G ones in later 27.007 editions.
* Unsolicited result codes come at any time, between answers or inside one: ``RDY`` (the
  modem has started again, its echo back on), ``+QIND: ...``, ``+CPIN: READY``, ``+CFUN: 1``,
  ``POWERED DOWN``, ``+CEREG: 1``. They are skipped (counted).

Not read: ``AT+QGDCNT?`` (bytes since the modem's last reset or ``AT+QGDCNT=0``, not the day's
use the router reports as ``comms/lte/data_today_mb``: no point to put it on without lying)
and ``AT+QNWINFO`` (band and channel; ``AT+COPS?`` already names the access technology).

Limits, for a modem that babbles, a line that picks up noise and a modem that is gone: a
line longer than ``MAX_LINE`` is dropped, a line that is not printable ASCII or not shaped
like an AT result is garbage, an answer has at most ``MAX_FIELDS`` fields of at most
``MAX_TEXT`` characters and numbers of at most three digits; every command gets
``timeout_s`` for its final result code. Nothing in the parsing raises anything but
:class:`AtError` on any input.

The modem's health is a Modbus device's (drivers/device_health.py): each round of commands
is one request; garbage or an unusable answer (``framing``) or a silence (``timeout``) makes
it degraded, three rounds in a row offline, a vanished port offline at once; ``ERROR`` is an
``exception``, degraded but never offline (it answered). The port is reopened with a backoff.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from drivers.device_health import DeviceHealth, HealthState
from drivers.serial_link import LineReader, SerialLink, keep_open
from drivers.wakeup import woken

log = logging.getLogger(__name__)

MAX_LINE = 256  # the longest answer read here is ~40 characters; Quectel's longest ~200
MAX_FIELDS = 16
MAX_TEXT = 64  # characters of one field (an operator's name: 16 by the standard)
MAX_DIGITS = 3  # every number read here is below 1000

REGISTRATION = {
    0: "Not registered",
    1: "Registered, home",
    2: "Not registered, searching",
    3: "Registration denied",
    4: "Unknown",
    5: "Registered, roaming",
    6: "Registered for SMS only, home",
    7: "Registered for SMS only, roaming",
    8: "Emergency services only",
    9: "Registered, home (CSFB not preferred)",
    10: "Registered, roaming (CSFB not preferred)",
}
REGISTERED = frozenset({1, 5, 9, 10})  # with a data path
ACCESS_TECHNOLOGY = {
    0: "GSM", 1: "GSM", 2: "WCDMA", 3: "EDGE", 4: "HSDPA", 5: "HSUPA", 6: "HSPA", 7: "LTE",
    8: "LTE-M", 9: "NB-IoT", 10: "LTE", 11: "5G", 12: "5G", 13: "5G NSA", 100: "CDMA",
}
CME_ERRORS = {  # 27.007 §9.2, the ones a read command meets
    0: "phone failure", 3: "operation not allowed", 4: "operation not supported",
    10: "SIM not inserted", 11: "SIM PIN required", 12: "SIM PUK required",
    13: "SIM failure", 14: "SIM busy", 15: "SIM wrong", 30: "no network service",
    31: "network timeout", 100: "unknown",
}
# unsolicited result codes: "+NAME: anything" or a word or two in capitals (RDY, NO CARRIER)
_URC = re.compile(r"\+[A-Z][A-Z0-9]{0,15}:.*|[A-Z][A-Z ]{0,31}")


class AtError(ValueError):
    """A line or an answer we may not use, with the reason."""


class Refused(AtError):
    """The modem answered ``ERROR`` or ``+CME ERROR: <err>``."""


@dataclass(frozen=True)
class Field:
    """One comma-separated field of an answer; ``quoted``: it was a "string"."""

    text: str
    quoted: bool = False


def split_fields(text: str) -> list[Field]:
    """The fields of an answer's value part (after ``+NAME:``), strings unquoted."""
    out: list[Field] = []
    i, end = 0, len(text)
    while True:
        while i < end and text[i] == " ":
            i += 1
        if i < end and text[i] == '"':
            close = text.find('"', i + 1)
            if close < 0:
                raise AtError("a string without its closing quote")
            out.append(Field(text[i + 1:close], True))
            i = close + 1
            while i < end and text[i] == " ":
                i += 1
            if i < end and text[i] != ",":
                raise AtError("text after a string")
        else:
            comma = text.find(",", i)
            comma = end if comma < 0 else comma
            raw = text[i:comma].rstrip(" ")
            if '"' in raw:
                raise AtError("a quote inside a field")
            out.append(Field(raw))
            i = comma
        if len(out) > MAX_FIELDS:
            raise AtError(f"more than {MAX_FIELDS} fields")
        if len(out[-1].text) > MAX_TEXT:
            raise AtError(f"a field longer than {MAX_TEXT} characters")
        if i >= end:
            return out
        i += 1  # the comma


def number(field: Field, low: int, high: int, what: str) -> int:
    """An unquoted decimal field within ``low..high``."""
    text = field.text
    if field.quoted or not text.isascii() or not text.isdigit() or len(text) > MAX_DIGITS:
        raise AtError(f"bad {what} {text!r}")
    value = int(text)
    if not low <= value <= high:
        raise AtError(f"{what} {value} out of range")
    return value


def signal_dbm(fields: list[Field]) -> int | None:
    """``+CSQ: <rssi>,<ber>`` as dBm; None when the modem does not know."""
    if len(fields) != 2:
        raise AtError("+CSQ has 2 fields")
    rssi = number(fields[0], 0, 199, "rssi")
    ber = number(fields[1], 0, 99, "ber")
    if ber > 7 and ber != 99:
        raise AtError(f"ber {ber} out of range")
    if rssi <= 31:
        return -113 + 2 * rssi
    if 100 <= rssi <= 191:  # TD-SCDMA's RSCP
        return -116 + rssi - 100
    if rssi in (99, 199):
        return None
    raise AtError(f"rssi {rssi} out of range")


def is_registration_report(fields: list[Field]) -> bool:
    """A ``+CEREG:`` / ``+CGREG:`` line that is the modem's own report of a change (its
    second field absent or quoted), not the answer to the read command."""
    return len(fields) < 2 or fields[1].quoted or fields[1].text == ""


def registration(fields: list[Field]) -> int:
    """The stat of ``+CEREG: <n>,<stat>[,...]`` (or ``+CGREG``/``+CREG``)."""
    if len(fields) < 2:
        raise AtError("a registration answer has at least 2 fields")
    number(fields[0], 0, 5, "<n>")
    return number(fields[1], 0, 10, "stat")


@dataclass(frozen=True)
class Operator:
    """``+COPS?``'s answer: the operator's name ("" when none is selected) and the access
    technology (None when not given)."""

    name: str
    act: int | None


def operator(fields: list[Field]) -> Operator:
    """``+COPS: <mode>[,<format>,"<oper>"[,<AcT>]]``."""
    if not 1 <= len(fields) <= 4 or len(fields) == 2:
        raise AtError(f"+COPS has 1, 3 or 4 fields, not {len(fields)}")
    number(fields[0], 0, 4, "mode")
    if len(fields) == 1:
        return Operator("", None)
    number(fields[1], 0, 2, "format")
    if not fields[2].quoted:
        raise AtError("the operator is not a string")
    act = number(fields[3], 0, 255, "AcT") if len(fields) == 4 else None
    return Operator(fields[2].text.strip(), act)


def network_type(act: int | None) -> str:
    """An access technology's name ("" for none)."""
    return "" if act is None else ACCESS_TECHNOLOGY.get(act, f"AcT {act}")


# ---- one command's answer ----------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """A command, the prefix of its answer line (None: it answers with a result code only)
    and which lines with that prefix are the modem's own reports rather than the answer."""

    command: str
    prefix: str | None = None
    report: Callable[[list[Field]], bool] = lambda _fields: False


Kind = Literal["ok", "refused", "echo", "answer", "urc", "garbage"]


def classify(line: bytes, query: Query | None) -> tuple[Kind, str]:
    """What a line is, in answer to ``query`` (None: between commands), and its text."""
    if any(b < 0x20 or b > 0x7E for b in line):
        return "garbage", repr(line[:32])
    text = line.decode("ascii").strip(" ")
    if text == "OK":
        return "ok", text
    if text == "ERROR" or text.startswith(("+CME ERROR:", "+CMS ERROR:")):
        return "refused", text
    if query is not None and text.upper() == query.command.upper():
        return "echo", text
    if query is not None and query.prefix is not None and text.startswith(query.prefix + ":"):
        try:
            is_report = query.report(split_fields(text[len(query.prefix) + 1:]))
        except AtError:
            return "answer", text  # malformed: the answer's parser says why
        return ("urc" if is_report else "answer"), text
    if _URC.fullmatch(text):
        return "urc", text
    return "garbage", repr(line[:32])


def refusal(text: str) -> str:
    """``+CME ERROR: 10`` as "+CME ERROR: 10 (SIM not inserted)"."""
    code = text.partition(":")[2].strip()
    meaning = CME_ERRORS.get(int(code)) if code.isascii() and code.isdigit() \
        and len(code) <= MAX_DIGITS else None
    return f"{text} ({meaning})" if meaning else text


class Answer:
    """The lines of one command's answer as they come: the echo and reports skipped, the
    answer line kept, done at the final result code."""

    def __init__(self, query: Query) -> None:
        self.query = query
        self.done = False
        self.urcs: list[str] = []
        self._answer: str | None = None
        self.problem: AtError | None = None  # why the answer may not be used

    def line(self, line: bytes) -> None:
        """One line of the modem's (without its line end)."""
        if self.done:
            return
        kind, text = classify(line, self.query)
        if kind == "ok":
            self.done = True
        elif kind == "refused":
            self.done = True
            self.problem = self.problem or Refused(refusal(text))
        elif kind == "answer":
            if self._answer is not None:
                self.problem = self.problem or AtError(f"two answers to {self.query.command}")
            self._answer = text
        elif kind == "urc":
            self.urcs.append(text)
        elif kind == "garbage":
            self.noise(f"garbage on the line: {text}")

    def noise(self, what: str) -> None:
        """Something unreadable came amid the answer: it is not to be trusted."""
        self.problem = self.problem or AtError(what)

    def fields(self) -> list[Field]:
        """The answer line's fields ([] for a command answered by a result code alone);
        :class:`Refused` or :class:`AtError` when the answer is not to be used."""
        if self.problem is not None:
            raise self.problem
        prefix = self.query.prefix
        if prefix is None:
            return []
        if self._answer is None:
            raise AtError(f"no {prefix} answer to {self.query.command}")
        return split_fields(self._answer[len(prefix) + 1:])


ECHO_OFF = Query("ATE0")
SIGNAL = Query("AT+CSQ", "+CSQ")
EPS = Query("AT+CEREG?", "+CEREG", is_registration_report)
PACKET = Query("AT+CGREG?", "+CGREG", is_registration_report)
OPERATOR = Query("AT+COPS?", "+COPS")


# ---- the driver ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """A value the modem gave and the monotonic time it gave it."""

    value: int | str | None
    at: float


class AtTimeout(AtError):
    """No final result code within the command's time: ``kind`` ``timeout`` (silence) or
    ``framing`` (only garbage came)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class Port(Protocol):
    """What the driver needs of its serial link (a test's stand-in too)."""

    def write(self, data: bytes) -> None:
        """Send bytes, or raise OSError."""

    def check(self) -> None:
        """Raise the OSError that broke the port, if one did."""


class QuectelModem:
    """Run :meth:`run` as a task; read :attr:`readings` (``signal_dbm``, ``registration``,
    ``operator``, ``network_type``) and :attr:`health`."""

    def __init__(self, port: str, baudrate: int = 115200, *, poll_s: float = 5.0,
                 timeout_s: float = 1.0, on_change: Callable[[], None] | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.port, self.baudrate = port, baudrate
        self.poll_s, self.timeout_s = poll_s, timeout_s
        self.readings: dict[str, Reading] = {}
        self.health = DeviceHealth()
        self.rounds = 0  # rounds answered in full
        self.urcs = 0
        self.garbage = 0  # lines thrown away (unreadable, overlong, a late answer's)
        self._on_change = on_change or (lambda: None)
        self._mono, self._wall = monotonic, wall
        self._lines = LineReader(MAX_LINE)
        self._answer: Answer | None = None
        self._answered = asyncio.Event()
        self._noise: str | None = None  # garbage between commands, for the round's verdict
        self._echo_off = False  # ATE0 sent and acknowledged since the port opened / RDY

    # ---- bytes in ------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes from the modem (the serial link calls this; tests may too)."""
        overlong = self._lines.overlong
        for line in self._lines.feed(data):
            self._line(line)
        if self._lines.overlong > overlong:
            self.garbage += self._lines.overlong - overlong
            self._unreadable(f"a line longer than {MAX_LINE} characters")

    def _line(self, line: bytes) -> None:
        answer = self._answer
        if answer is not None and not answer.done:
            answer.line(line)
            self._reports(answer.urcs)
            answer.urcs.clear()
            if answer.done:
                self._answered.set()
            return
        kind, text = classify(line, None)
        if kind == "urc":
            self._reports([text])
        elif kind == "garbage":
            self.garbage += 1
            self._unreadable(f"garbage on the line: {text}")
        else:  # the end of an answer that came after its command's time: thrown away
            self.garbage += 1

    def _reports(self, urcs: list[str]) -> None:
        self.urcs += len(urcs)
        if "RDY" in urcs:  # the modem started again: its echo is back on
            self._echo_off = False

    def _unreadable(self, what: str) -> None:
        if self._answer is not None:
            self._answer.noise(what)
        else:
            self._noise = self._noise or what

    # ---- commands out --------------------------------------------------------------------

    async def ask(self, link: Port, query: Query) -> list[Field]:
        """Send ``query``'s command and return its answer's fields; :class:`Refused`,
        :class:`AtError` (garbage, a malformed answer) or :class:`AtTimeout`; OSError when
        the port is gone."""
        answer = Answer(query)
        self._answer = answer
        self._answered.clear()
        try:
            link.write(query.command.encode("ascii") + b"\r")
            if not await woken(self._answered, self.timeout_s):
                link.check()  # a port gone meanwhile is the reason, not the modem
                late = f"no answer to {query.command} within {self.timeout_s:g} s"
                if answer.problem is not None:
                    raise AtTimeout(f"{answer.problem}; {late}", "framing")
                raise AtTimeout(late, "timeout")
        finally:
            self._answer = None
        return answer.fields()

    async def poll(self, link: Port) -> None:
        """One round: ask for everything, keep what was answered, judge the modem."""
        started = self._mono()
        failure: tuple[str, str] | None = None
        stats: list[int] = []
        for query in (ECHO_OFF, SIGNAL, EPS, PACKET, OPERATOR):
            if query is ECHO_OFF and self._echo_off:
                continue
            try:
                fields = await self.ask(link, query)
                self._read(query, fields, stats)
            except AtTimeout as exc:
                failure = (exc.kind, str(exc))
                break  # the other commands would only wait as long
            except Refused as exc:
                failure = failure or ("exception", f"{query.command}: {exc}")
            except AtError as exc:
                failure = failure or ("framing", f"{query.command}: {exc}")
        if stats:
            # the EPS (LTE) registration, or the packet domain's on 2G/3G when only it has
            # one; not registered, the one that says more than "not searching" (0)
            stat = next((s for s in stats if s in REGISTERED),
                        next((s for s in stats if s != 0), 0))
            self._put("registration", REGISTRATION[stat])
        if failure is None and self._noise is not None:
            failure = ("framing", self._noise)
        self._noise = None
        # a refusal is an answer: an offline modem that refuses something is back, degraded
        if failure is None or (failure[0] == "exception" and self.health.state == "offline"):
            self._judged(self.health.success(self._mono() - started, self._wall()))
        if failure is None:
            self.rounds += 1
        else:
            self._judged(self.health.failure(*failure, self._mono()))
        self._on_change()

    def _read(self, query: Query, fields: list[Field], stats: list[int]) -> None:
        if query is ECHO_OFF:
            self._echo_off = True
        elif query is SIGNAL:
            self._put("signal_dbm", signal_dbm(fields))
        elif query is OPERATOR:
            found = operator(fields)
            self._put("operator", found.name)
            self._put("network_type", network_type(found.act))
        else:
            stats.append(registration(fields))

    def _put(self, key: str, value: int | str | None) -> None:
        self.readings[key] = Reading(value, self._mono())

    def _judged(self, transition: HealthState | None) -> None:
        """Log a change of the modem's state once (a dead modem must not fill the card)."""
        if transition == "online":
            log.info("modem %s: online", self.port)
        elif transition is not None:
            log.warning("modem %s: %s: %s", self.port, transition, self.health.last_error)

    # ---- the port ------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll every ``poll_s`` until cancelled; a port that cannot be opened or vanishes
        (a USB modem re-enumerating) is reopened with a backoff."""
        await keep_open("modem", self.port, self.baudrate, self.feed, self._serve,
                        self._port_failed, lambda: self.rounds)

    async def _serve(self, link: SerialLink) -> None:
        self._echo_off = False
        while True:
            started = self._mono()
            await self.poll(link)
            # the modem's pace, not a wait for a condition
            await asyncio.sleep(max(0.0, self.poll_s - (self._mono() - started)))

    def _port_failed(self, exc: OSError) -> None:
        self._judged(self.health.lost(f"port: {exc}", self._mono()))
        self._on_change()
