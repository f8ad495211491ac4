"""The Quectel modem's AT driver (drivers.quectel_at) without a port: answers as the EC25
manual and 3GPP TS 27.007 write them, then rounds of commands against the simulated modem
(vansim.modem_sim, its answers fed straight back: DirectLine): echo, reports amid answers, refusals,
garbage, silence, and the modem's health as a technician sees it; then properties over any
input (hypothesis, with the budget of testsupport.FUZZ): no exception but the driver's own
from any bytes, limits that hold, and round trips of generated answers."""

from __future__ import annotations

import asyncio
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st
from testsupport import FUZZ

from drivers.quectel_at import (
    EPS,
    MAX_FIELDS,
    MAX_LINE,
    MAX_TEXT,
    OPERATOR,
    REGISTRATION,
    SIGNAL,
    Answer,
    AtError,
    Field,
    Operator,
    QuectelModem,
    Refused,
    classify,
    network_type,
    operator,
    registration,
    signal_dbm,
    split_fields,
)
from vansim.modem_sim import DirectLine, SimulatedModem


def info(line: str) -> list[Field]:
    """The fields of an answer line such as ``+CSQ: 20,99``."""
    return split_fields(line.partition(":")[2])


# ---- answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "dbm"), [
    ("+CSQ: 0,99", -113), ("+CSQ: 1,99", -111), ("+CSQ: 20,99", -73), ("+CSQ: 30,0", -53),
    ("+CSQ: 31,7", -51), ("+CSQ: 99,99", None),
    # TD-SCDMA's RSCP (EC25 manual §6.3)
    ("+CSQ: 100,99", -116), ("+CSQ: 191,99", -25), ("+CSQ: 199,99", None),
])
def test_signal_in_dbm_as_the_manual_says(line: str, dbm: int | None) -> None:
    assert signal_dbm(info(line)) == dbm


@pytest.mark.parametrize(("line", "reason"), [
    ("+CSQ: 32,99", "rssi 32 out of range"), ("+CSQ: 98,99", "rssi 98"),
    ("+CSQ: 192,99", "rssi 192"), ("+CSQ: 200,99", "rssi 200 out of range"),
    ("+CSQ: 20,8", "ber 8"), ("+CSQ: 20", "2 fields"), ("+CSQ: 20,99,1", "2 fields"),
    ("+CSQ: -1,99", "bad rssi"), ("+CSQ: +5,99", "bad rssi"), ("+CSQ: 0020,99", "bad rssi"),
    ('+CSQ: "20",99', "bad rssi"), ("+CSQ: 2 0,99", "bad rssi"), ("+CSQ: ,99", "bad rssi"),
    ("+CSQ: ²,99", "bad rssi"),
])
def test_a_signal_answer_out_of_the_manual_is_refused_with_its_reason(line: str,
                                                                      reason: str) -> None:
    with pytest.raises(AtError, match=reason):
        signal_dbm(info(line))


@pytest.mark.parametrize(("line", "stat"), [
    ("+CEREG: 0,1", 1), ("+CEREG: 2,5", 5), ("+CGREG: 0,2", 2), ("+CEREG: 1,3", 3),
    ('+CEREG: 2,1,"D6E7","844D92A",7', 1), ("+CEREG: 0,0", 0), ("+CEREG: 0,10", 10),
])
def test_registration_answers(line: str, stat: int) -> None:
    assert registration(info(line)) == stat
    assert stat in REGISTRATION


def test_a_registration_report_is_told_from_the_answer() -> None:
    eps = Answer(EPS)
    for report in (b"+CEREG: 1", b'+CEREG: 5,"D6E7","844D92A",7', b"+CEREG: 2,,,"):
        assert classify(report, EPS)[0] == "urc", report
    assert classify(b"+CEREG: 2,1", EPS)[0] == "answer"
    for line in (b"AT+CEREG?", b"+CEREG: 1", b"+CEREG: 0,2", b"+QIND: PB DONE", b"OK"):
        eps.line(line)
    assert eps.done and registration(eps.fields()) == 2
    assert eps.urcs == ["+CEREG: 1", "+QIND: PB DONE"]


@pytest.mark.parametrize(("line", "found"), [
    ('+COPS: 0,0,"Orange PL",7', Operator("Orange PL", 7)),
    ('+COPS: 0,0,"Plus, PL",2', Operator("Plus, PL", 2)),  # a comma inside the name
    ('+COPS: 0,2,"26003",3', Operator("26003", 3)),  # numeric format: MCC MNC
    ('+COPS: 1,1,"T-Mobile"', Operator("T-Mobile", None)),
    ("+COPS: 0", Operator("", None)),  # no operator selected
])
def test_operator_answers(line: str, found: Operator) -> None:
    assert operator(info(line)) == found


@pytest.mark.parametrize(("act", "name"), [
    (0, "GSM"), (2, "WCDMA"), (3, "EDGE"), (6, "HSPA"), (7, "LTE"), (100, "CDMA"),
    (13, "5G NSA"), (42, "AcT 42"), (None, ""),
])
def test_access_technology_names(act: int | None, name: str) -> None:
    assert network_type(act) == name


@pytest.mark.parametrize(("line", "reason"), [
    ("+COPS: 0,0,Orange,7", "not a string"), ("+COPS: 0,0", "1, 3 or 4 fields"),
    ('+COPS: 5,0,"Orange",7', "mode 5"), ('+COPS: 0,3,"Orange",7', "format 3"),
    ('+COPS: 0,0,"Orange,7', "closing quote"), ('+COPS: 0,0,"Orange"x,7', "after a string"),
    ('+COPS: 0,0,"Orange",7,1', "1, 3 or 4"), ('+COPS: 0,0,"Ora"nge",7', "after a string"),
    ('+COPS: 0,0,"Orange",256', "AcT 256"),
    (f'+COPS: 0,0,"{"x" * (MAX_TEXT + 1)}",7', f"longer than {MAX_TEXT}"),
    ("+COPS: " + ",".join(["0"] * (MAX_FIELDS + 1)), f"more than {MAX_FIELDS}"),
])
def test_an_operator_answer_out_of_the_standard_is_refused(line: str, reason: str) -> None:
    with pytest.raises(AtError, match=reason):
        operator(info(line))


@pytest.mark.parametrize(("line", "kind"), [
    (b"OK", "ok"), (b"ERROR", "refused"), (b"+CME ERROR: 10", "refused"),
    (b"+CME ERROR: SIM not inserted", "refused"), (b"RDY", "urc"), (b"POWERED DOWN", "urc"),
    (b"+QIND: SMS DONE", "urc"), (b"+CPIN: READY", "urc"), (b"+CSQ: 20,99", "answer"),
    (b"AT+CSQ", "echo"), (b"at+csq", "echo"), (b"\x00\xff+CSQ", "garbage"),
    (b"lowercase babble", "garbage"), (b"+csq: 20,99", "garbage"),
])
def test_lines_are_classified(line: bytes, kind: str) -> None:
    assert classify(line, SIGNAL)[0] == kind


def test_a_refusal_names_its_error() -> None:
    answer = Answer(OPERATOR)
    for line in (b"AT+COPS?", b"+CME ERROR: 10"):
        answer.line(line)
    assert answer.done
    with pytest.raises(Refused, match=r"\+CME ERROR: 10 \(SIM not inserted\)"):
        answer.fields()


# ---- the driver, against the simulated modem -------------------------------------------------


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def rig(timeout_s: float = 0.05) -> tuple[QuectelModem, SimulatedModem, DirectLine, Clock]:
    """A driver with the simulated modem straight behind it, on a hand clock."""
    clock = Clock()
    modem = QuectelModem("/dev/null-modem", timeout_s=timeout_s, monotonic=clock,
                         wall=lambda: 1_800_000_000 + clock.now)
    sim = SimulatedModem()
    return modem, sim, DirectLine(sim, modem.feed), clock


def state(modem: QuectelModem) -> str:
    """The modem's health state (a call: mypy must not narrow it across polls)."""
    return modem.health.state


def values(modem: QuectelModem) -> dict[str, object]:
    return {key: reading.value for key, reading in modem.readings.items()}


HOME = {"signal_dbm": -69, "registration": "Registered, home", "operator": "Orange PL",
        "network_type": "LTE"}


async def test_a_round_reads_signal_registration_operator_and_network() -> None:
    modem, sim, line, clock = rig()
    assert state(modem) == "offline"  # until its first answer
    await modem.poll(line)
    assert values(modem) == HOME
    assert state(modem) == "online"
    assert all(r.at == clock.now for r in modem.readings.values())
    assert sim.commands == ["ATE0", "AT+CSQ", "AT+CEREG?", "AT+CGREG?", "AT+COPS?"]
    assert not sim.echo
    sim.commands.clear()
    await modem.poll(line)  # echo stays off: ATE0 is not sent again
    assert sim.commands == ["AT+CSQ", "AT+CEREG?", "AT+CGREG?", "AT+COPS?"]


async def test_echo_is_tolerated_and_turned_off_again_after_the_modem_restarts() -> None:
    modem, sim, line, _ = rig()
    sim.refuse["ATE0"] = "ERROR"  # say the modem kept its echo
    await modem.poll(line)
    assert values(modem) == HOME  # every answer read through the echo
    assert state(modem) == "degraded"  # a refusal: it answered, but not as asked
    del sim.refuse["ATE0"]
    await modem.poll(line)
    assert state(modem) == "online" and not sim.echo
    sim.echo = True
    sim.urc("RDY")  # it restarted (a power glitch): echo back on
    modem.feed(b"\r\nRDY\r\n")
    sim.commands.clear()
    await modem.poll(line)
    assert sim.commands[0] == "ATE0" and values(modem) == HOME
    assert modem.urcs == 1


async def test_registration_lost_denied_roaming_and_2g_are_shown() -> None:
    modem, sim, line, _ = rig()
    await modem.poll(line)
    sim.registration = 2
    await modem.poll(line)
    assert values(modem) == {"signal_dbm": -69, "registration": "Not registered, searching",
                             "operator": "", "network_type": ""}
    sim.registration = 3
    await modem.poll(line)
    assert values(modem)["registration"] == "Registration denied"
    sim.registration, sim.operator, sim.signal_dbm = 5, "Vodafone DE", -101
    await modem.poll(line)
    assert values(modem) == {"signal_dbm": -101, "registration": "Registered, roaming",
                             "operator": "Vodafone DE", "network_type": "LTE"}
    # out of LTE coverage, on EDGE: the EPS registration is lost, the packet domain's is not
    sim.registration, sim.act = 1, 3
    await modem.poll(line)
    assert values(modem)["registration"] == "Registered, home"
    assert values(modem)["network_type"] == "EDGE"
    assert state(modem) == "online"


async def test_reports_amid_the_answers_cost_nothing() -> None:
    modem, sim, line, _ = rig()
    sim.report_mode = 2
    await modem.poll(line)
    sim.registration = 5  # sends "+CEREG: 5" by itself
    modem.feed(b"\r\n+CEREG: 5\r\n\r\n+QIND: \"csq\",20,99\r\n")
    await modem.poll(line)
    assert values(modem)["registration"] == "Registered, roaming"
    assert state(modem) == "online" and modem.urcs == 2


async def test_a_refusal_degrades_but_never_takes_it_offline() -> None:
    modem, sim, line, _ = rig()
    sim.refuse["AT+COPS?"] = "+CME ERROR: 10"
    for _ in range(5):
        await modem.poll(line)
        assert state(modem) == "degraded"
    assert "SIM not inserted" in modem.health.last_error
    assert values(modem) == {"signal_dbm": -69, "registration": "Registered, home"}
    assert modem.health.errors["exception"] == 5


async def test_garbage_degrades_then_offline_and_an_answer_brings_it_back() -> None:
    modem, sim, line, _ = rig()
    await modem.poll(line)
    before = dict(modem.readings)
    sim.garbage = True
    await modem.poll(line)
    assert state(modem) == "degraded"
    assert "garbage" in modem.health.last_error
    await modem.poll(line)
    await modem.poll(line)
    assert state(modem) == "offline"
    assert modem.readings == before  # nothing taken from the noise
    sim.garbage = False
    await modem.poll(line)
    assert state(modem) == "online" and values(modem) == HOME


async def test_noise_between_rounds_fails_the_next_round_only() -> None:
    modem, _, line, _ = rig()
    await modem.poll(line)
    modem.feed(b"\x00\x13\xfe noise\r\n")
    await modem.poll(line)
    assert state(modem) == "degraded" and modem.garbage == 1
    await modem.poll(line)
    assert state(modem) == "online"


async def test_a_silent_modem_costs_one_timeout_per_round_then_is_offline() -> None:
    modem, sim, line, _ = rig()
    await modem.poll(line)
    sim.silent = True
    for expected in ("degraded", "degraded", "offline"):
        line.sent.clear()
        await modem.poll(line)
        assert state(modem) == expected
        assert line.sent == [b"AT+CSQ\r"]  # the round stops at the first silence
    assert "no answer to AT+CSQ" in modem.health.last_error
    sim.silent = False
    await modem.poll(line)
    assert state(modem) == "online"


async def test_what_follows_an_answer_in_the_same_chunk_is_not_lost() -> None:
    modem, sim, line, _ = rig()
    await modem.poll(line)
    # each answer followed at once, in the same chunk, by a report and a noisy line
    after = DirectLine(sim, lambda data: modem.feed(data + b"\r\nRDY\r\n\xff\x00\r\n"),
                       chunk=4096)
    await modem.poll(after)
    assert values(modem) == HOME
    assert (modem.urcs, modem.garbage) == (4, 4)
    assert state(modem) == "degraded"  # the noise between the answers is not ignored


async def test_an_answer_after_its_time_is_not_taken_for_the_next_ones() -> None:
    modem, _, _, _ = rig()
    modem.feed(b"\r\n+CSQ: 5,99\r\n\r\nOK\r\n")  # a late answer, between commands
    assert modem.readings == {}
    assert (modem.urcs, modem.garbage, modem._noise) == (1, 1, None)  # not noise either


async def test_an_overlong_line_is_garbage_and_bounded() -> None:
    modem, _, line, _ = rig()
    await modem.poll(line)
    modem.feed(b"+QENG: " + b"9" * (10 * MAX_LINE))
    assert len(modem._lines._buf) <= MAX_LINE + 1
    modem.feed(b"\r\n")
    await modem.poll(line)
    assert state(modem) == "degraded" and "longer than" in modem.health.last_error


async def test_a_port_gone_is_offline_at_once() -> None:
    modem, _, line, _ = rig()
    await modem.poll(line)
    modem._port_failed(OSError("[Errno 5] Input/output error"))
    assert state(modem) == "offline" and "port" in modem.health.last_error


# ---- properties ------------------------------------------------------------------------------


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (taken modulo its length, in any order)."""
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in pairwise(points)]


answer_text = st.text(alphabet='0123456789,"+: ABCEGOPQRSZ-.\\', max_size=40)
answer_lines = st.one_of(
    st.builds(lambda p, t: f"{p}: {t}", st.sampled_from(["+CSQ", "+CEREG", "+COPS", "+CGREG"]),
              answer_text),
    st.sampled_from(["OK", "ERROR", "+CME ERROR: 10", "RDY", "AT+CSQ", "+CEREG: 1"]))
streams = st.lists(st.one_of(
    st.binary(max_size=60), answer_lines.map(lambda t: t.encode() + b"\r\n"),
    st.sampled_from([b"\r\n", b"\n", b"\r", b'"', b",", b"\xff", b"\x00"])),
    max_size=30).map(b"".join)


@FUZZ
@given(streams, st.lists(st.integers(0, 3000), max_size=20))
def test_any_bytes_in_any_chunking_never_raise_and_stay_bounded(stream: bytes,
                                                                 cuts: list[int]) -> None:
    modem, _, _, _ = rig()
    for chunk in split(stream, cuts):
        modem.feed(chunk)  # between commands: nothing may be taken as a reading
        assert len(modem._lines._buf) <= MAX_LINE + 1
    assert modem.readings == {}
    answer = Answer(SIGNAL)
    for line in stream.split(b"\n"):
        answer.line(line.rstrip(b"\r")[:MAX_LINE])
    try:
        fields = answer.fields()
    except AtError:
        return
    assert len(fields) <= MAX_FIELDS and all(len(f.text) <= MAX_TEXT for f in fields)


@FUZZ
@given(st.text(max_size=120))
def test_the_parsers_raise_nothing_but_their_own_error(text: str) -> None:
    for parse in (signal_dbm, registration, operator):
        try:
            fields = split_fields(text)
            result = parse(fields)
        except AtError:
            continue
        assert len(fields) <= MAX_FIELDS
        if parse is signal_dbm:
            assert result is None or -116 <= result <= -25  # type: ignore[operator]


@FUZZ
@given(rssi=st.one_of(st.integers(0, 31), st.integers(100, 191), st.sampled_from([99, 199])),
       ber=st.one_of(st.integers(0, 7), st.just(99)))
def test_round_trip_of_any_signal(rssi: int, ber: int) -> None:
    dbm = signal_dbm(info(f"+CSQ: {rssi},{ber}"))
    if rssi in (99, 199):
        assert dbm is None
    else:
        assert dbm == (-113 + 2 * rssi if rssi <= 31 else -116 + rssi - 100)


names = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E,
                                       blacklist_characters='"'), max_size=MAX_TEXT)


@FUZZ
@given(mode=st.integers(0, 4), fmt=st.integers(0, 2), name=names,
       act=st.one_of(st.none(), st.integers(0, 255)),
       n=st.integers(0, 5), stat=st.integers(0, 10), located=st.booleans())
def test_round_trip_of_any_operator_and_registration(mode: int, fmt: int, name: str,
                                                     act: int | None, n: int, stat: int,
                                                     located: bool) -> None:
    tail = "" if act is None else f",{act}"
    assert operator(info(f'+COPS: {mode},{fmt},"{name}"{tail}')) == Operator(name.strip(), act)
    where = ',"D6E7","0844D92A",7' if located else ""
    line = f"+CEREG: {n},{stat}{where}"
    assert registration(info(line)) == stat
    assert classify(line.encode(), EPS)[0] == "answer"


@FUZZ
@given(rssi=st.integers(0, 31), stat=st.sampled_from([0, 1, 2, 3, 4, 5]),
       act=st.sampled_from([0, 2, 3, 4, 5, 6, 7]), name=names.filter(str.strip),
       echo=st.booleans(), report_mode=st.integers(0, 2), chunk=st.integers(1, 64))
def test_the_driver_reads_whatever_state_the_modem_is_in(
        rssi: int, stat: int, act: int, name: str, echo: bool, report_mode: int,
        chunk: int) -> None:
    modem, sim, _, _ = rig()
    line = DirectLine(sim, modem.feed, chunk)
    sim.rssi, sim.registration, sim.act, sim.operator = rssi, stat, act, name
    sim.echo, sim.report_mode = echo, report_mode
    asyncio.run(modem.poll(line))
    registered = stat in (1, 5)
    assert values(modem) == {
        "signal_dbm": -113 + 2 * rssi, "registration": REGISTRATION[stat],
        "operator": name.strip() if registered else "",
        "network_type": network_type(act) if registered else ""}
    assert state(modem) == "online"
