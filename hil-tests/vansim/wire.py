"""An RS-485 line that takes wire time: ptys whose bytes cross over at the line's baud rate.

    python wire.py SUPERVISOR_LINK SIM_LINK [SIM_LINK ...] BAUD BITS_PER_CHARACTER

A bare pty pair delivers a frame in microseconds; a real 9600-baud line takes about a
millisecond per character, which is what bus timings, timeouts and bus load are made of. The
line is half duplex and shared: each chunk of bytes (a frame, as a UART writes it) occupies the
line for len * bits / baud seconds after the line is free, and the far side receives it when
its last character has gone over the wire.

It is a multi-drop bus: the supervisor (the master) on one end, each simulated slave (a Modbus
server, a node's firmware) on an end of its own. What the master sends reaches every slave at
once, as one transmission; what any slave sends reaches the master. The slaves do not hear
each other's answers here (on a real bus they do): a server that parses the bytes it hears as
requests could be thrown out of step by them, and the firmware's own tests cover hearing them.

Commands on stdin, one per line (the simulator's hands on the cable):

    noise HEX      a burst of interference: these bytes reach the supervisor, in wire time
    noise_all HEX  interference on the whole line: the bytes reach the supervisor and every slave
    corrupt N      flip one bit in each of the next N frames towards the supervisor
    stats          print "stats ELAPSED_S BUSY_S FRAMES" on stdout: seconds since the line
                   started, seconds the line carried a character, transmissions so far

"ready" is printed on stdout once every link path exists. Standalone on purpose (standard
library only): it runs as its own process, so its timing does not depend on the test's loop.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import selectors
import signal
import sys
import time
import tty

READ_CHUNK = 4096
MAX_COMMAND = 16384  # a command line longer than this is a bug in the caller: refused


class Wire:
    """The shared line: a timeline of frames in flight, and what it has carried."""

    def __init__(self, char_s: float) -> None:
        self.char_s = char_s
        self.free_at = 0.0  # monotonic time the line is next free
        # (due, seq, receiving ends, data)
        self.in_flight: list[tuple[float, int, tuple[int, ...], bytes]] = []
        self.seq = 0
        self.corrupt_next = 0
        self.busy_s = 0.0  # time the line has carried characters
        self.frames = 0

    def send(self, fds: tuple[int, ...], data: bytes, now: float) -> None:
        """Put ``data`` on the line once: every end in ``fds`` receives it when it has been
        transmitted."""
        start = max(now, self.free_at)
        self.free_at = start + len(data) * self.char_s
        self.busy_s += len(data) * self.char_s
        self.frames += 1
        self.seq += 1
        heapq.heappush(self.in_flight, (self.free_at, self.seq, fds, data))

    def next_due(self) -> float | None:
        return self.in_flight[0][0] if self.in_flight else None

    def deliver_due(self, now: float) -> None:
        while self.in_flight and self.in_flight[0][0] <= now:
            _, _, fds, data = heapq.heappop(self.in_flight)
            for fd in fds:
                _write_all(fd, data)


def _write_all(fd: int, data: bytes) -> None:
    """Write to a pty master; what nobody reads (a full queue) is lost, as on a real line."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except (BlockingIOError, OSError):
            return


def _flip_one_bit(data: bytes) -> bytes:
    """Damage a frame as noise does: one bit in its middle, so the CRC no longer matches."""
    if not data:
        return data
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0x10
    return bytes(damaged)


def _open_end(link: str) -> tuple[int, int]:
    """A raw pty whose terminal side is reachable at ``link``; returns (master, slave)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(link)
    os.symlink(os.ttyname(slave), link)
    return master, slave


def _command(line: bytes, wire: Wire, to_supervisor: int, to_slaves: tuple[int, ...],
             now: float, started: float) -> None:
    words = line.decode("ascii", errors="replace").split()
    if len(words) == 2 and words[0] in ("noise", "noise_all"):
        fds = (to_supervisor,) if words[0] == "noise" else (to_supervisor, *to_slaves)
        with contextlib.suppress(ValueError):
            wire.send(fds, bytes.fromhex(words[1]), now)
    elif len(words) == 2 and words[0] == "corrupt" and words[1].isdigit():
        wire.corrupt_next += int(words[1])
    elif words == ["stats"]:
        print(f"stats {now - started:.6f} {wire.busy_s:.6f} {wire.frames}", flush=True)
    else:
        print(f"wire: unknown command {line[:80]!r}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    """Run the line until stdin closes or SIGTERM."""
    if len(argv) < 4 or not (argv[-1].isdigit() and argv[-2].isdigit()):
        print(__doc__, file=sys.stderr)
        return 2
    supervisor_link, sim_links = argv[0], argv[1:-2]
    char_s = int(argv[-1]) / int(argv[-2])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sup_master, _sup_slave = _open_end(supervisor_link)  # slaves stay open: no hang-up
    drops = tuple(_open_end(link) for link in sim_links)
    slaves = tuple(master for master, _slave in drops)
    print("ready", flush=True)
    started = time.monotonic()
    wire = Wire(char_s)
    control = sys.stdin.buffer.fileno()
    os.set_blocking(control, False)
    pending = b""
    sel = selectors.DefaultSelector()
    sel.register(sup_master, selectors.EVENT_READ)
    for fd in slaves:
        sel.register(fd, selectors.EVENT_READ)
    sel.register(control, selectors.EVENT_READ)
    while True:
        due = wire.next_due()
        timeout = None if due is None else max(0.0, due - time.monotonic())
        for key, _ in sel.select(timeout):
            now = time.monotonic()
            try:
                data = os.read(key.fd, READ_CHUNK)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""  # EIO: no terminal side open right now; nothing to carry
            if key.fd == control:
                if not data:
                    return 0  # our parent is gone or done with us
                pending += data
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    _command(line, wire, sup_master, slaves, now, started)
                if len(pending) > MAX_COMMAND:
                    pending = b""
            elif key.fd == sup_master and data:
                wire.send(slaves, data, now)  # one transmission, heard by every slave
            elif data:
                if wire.corrupt_next:
                    wire.corrupt_next -= 1
                    data = _flip_one_bit(data)
                wire.send((sup_master,), data, now)
        wire.deliver_due(time.monotonic())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
