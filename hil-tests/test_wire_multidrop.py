"""The simulated RS-485 line as a multi-drop bus (``vansim/wire.py`` through ``RtuLine``):
the master's frames reach every slave, any slave's answer reaches the master, and all of
them share one half-duplex line that takes wire time."""

from __future__ import annotations

import asyncio
import os
import tempfile
import tty
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from testsupport import wait_until

from vansim.rtu_line import RtuLine

BAUD = 9600
CHAR_S = 10 / BAUD


@pytest.fixture
async def line() -> AsyncIterator[RtuLine]:
    with tempfile.TemporaryDirectory(prefix="mcw-wire-") as tmp:
        rtu = RtuLine(Path(tmp) / "tty", baudrate=BAUD, drops=("node",))
        await rtu.start()
        try:
            yield rtu
        finally:
            await rtu.stop()


class End:
    """One end of the line, opened raw, with what it received and when."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.received: list[tuple[float, bytes]] = []
        loop = asyncio.get_running_loop()
        loop.add_reader(self.fd, lambda: self.received.append((loop.time(),
                                                               os.read(self.fd, 4096))))

    def data(self) -> bytes:
        return b"".join(chunk for _, chunk in self.received)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.fd)
        os.close(self.fd)


@contextmanager
def ends(*paths: Path) -> Iterator[list[End]]:
    opened = [End(p) for p in paths]
    try:
        yield opened
    finally:
        for end in opened:
            end.close()


async def test_the_masters_frame_reaches_every_slave_once(line: RtuLine) -> None:
    with ends(line.supervisor_side, line.sim_side, line.drop_path("node")) as (master, server,
                                                                              node):
        os.write(master.fd, b"\x07\x04\x00\x00\x00\x07\x31\xae")
        await wait_until(lambda: server.data() and node.data(), what="both slaves hear it")
        assert server.data() == node.data() == b"\x07\x04\x00\x00\x00\x07\x31\xae"
        # one transmission: heard by both at the same moment
        assert abs(server.received[0][0] - node.received[0][0]) < 0.005
        assert master.data() == b""  # nobody hears their own frame


async def test_answers_from_any_slave_share_one_half_duplex_line(line: RtuLine) -> None:
    with ends(line.supervisor_side, line.sim_side, line.drop_path("node")) as (master, server,
                                                                              node):
        before = await line.stats()
        loop = asyncio.get_running_loop()
        started = loop.time()
        os.write(server.fd, b"S" * 20)  # two slaves talk at once: the line carries one
        os.write(node.fd, b"N" * 20)  # after the other, never both in the same time
        await wait_until(lambda: len(master.data()) == 40, what="both answers")
        assert sorted(master.data()) == sorted(b"S" * 20 + b"N" * 20)
        assert master.received[-1][0] - started >= 40 * CHAR_S * 0.95
        assert server.data() == node.data() == b""  # slaves do not hear each other here
        after = await line.stats()
        assert after.busy_s - before.busy_s == pytest.approx(40 * CHAR_S, rel=0.01)
        assert after.frames - before.frames == 2


async def test_interference_reaches_every_end_and_noise_only_the_master(line: RtuLine) -> None:
    with ends(line.supervisor_side, line.sim_side, line.drop_path("node")) as (master, server,
                                                                              node):
        line.inject_all(b"\xff\x00\xaa")
        await wait_until(lambda: master.data() and server.data() and node.data(),
                         what="interference everywhere")
        line.inject(b"\x55")
        await wait_until(lambda: master.data().endswith(b"\x55"), what="noise at the master")
        assert server.data() == node.data() == b"\xff\x00\xaa"


async def test_a_line_without_drops_is_the_pair_it_was() -> None:
    with tempfile.TemporaryDirectory(prefix="mcw-wire-") as tmp:
        line = RtuLine(Path(tmp) / "tty")
        await line.start()
        try:
            assert sorted(os.listdir(tmp)) == ["tty", "tty.sim"]
            with pytest.raises(KeyError):
                line.drop_path("node")
            with ends(line.supervisor_side, line.sim_side) as (master, server):
                os.write(master.fd, b"ping")
                await wait_until(lambda: server.data() == b"ping", what="the far end")
                os.write(server.fd, b"pong")
                await wait_until(lambda: master.data() == b"pong", what="the answer")
        finally:
            await line.stop()
        assert os.listdir(tmp) == []  # the links are gone with the line
