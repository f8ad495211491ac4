"""Plan coalesced block reads for one device.

Adjacent registers of one device and table are merged into one request of at most the
device's (and the protocol's) block limit. A hole between two registers is read through when
reading it costs less than the overhead of a second request: about 7 registers on RTU
(13 bytes of framing, address, CRC and the gap) and about 31 on TCP (MBAP + TCP/IP headers).

A device that answers "illegal data address" to a merged block gets that block split, and the
split is remembered (as barriers) so later plans do not merge across it again.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from drivers.profile import MAX_BITS_PER_READ, MAX_REGISTERS_PER_READ, Register, Table

# Registers' worth of overhead of one more request, per transport.
HOLE_COST = {"rtu": 7, "tcp": 31}
BITS_PER_REGISTER = 16


@dataclass(frozen=True)
class Block:
    """One read request: ``count`` registers (or bits) of ``table`` from ``start``."""

    table: Table
    start: int
    count: int
    # left out of equality and hash: the request is its identity, and hashing the profile's
    # models would cost more than the poll that looks the block up
    registers: tuple[Register, ...] = field(compare=False)

    @property
    def has_holes(self) -> bool:
        covered = sum(r.count for r in self.registers)
        return covered < self.count


@dataclass
class BlockPlanner:
    """Plans blocks for one device and remembers splits learned from the device."""

    transport: str
    max_block: int = MAX_REGISTERS_PER_READ
    align: int = 1
    barriers: set[tuple[Table, int]] = field(default_factory=set)

    def plan(self, registers: Iterable[Register]) -> list[Block]:
        """Group ``registers`` into as few requests as the limits and learned barriers allow."""
        by_table: dict[Table, list[Register]] = {}
        for reg in registers:
            by_table.setdefault(reg.table, []).append(reg)
        blocks: list[Block] = []
        for table, regs in sorted(by_table.items()):
            blocks.extend(self._plan_table(table, sorted(regs, key=lambda r: r.address)))
        return blocks

    def _limits(self, table: Table) -> tuple[int, int]:
        bits = table in ("coil", "discrete")
        protocol_max = MAX_BITS_PER_READ if bits else MAX_REGISTERS_PER_READ
        hole = HOLE_COST[self.transport] * (BITS_PER_REGISTER if bits else 1)
        return min(self.max_block, protocol_max), hole

    def _plan_table(self, table: Table, regs: list[Register]) -> list[Block]:
        limit, hole_cost = self._limits(table)
        blocks: list[Block] = []
        current: list[Register] = []
        for reg in regs:
            if current:
                start, end = current[0].address, max(r.end for r in current)
                gap = reg.address - end
                lo, hi = self._aligned(start, reg.end)
                fits = hi - lo <= limit
                if gap <= hole_cost and fits and (table, reg.address) not in self.barriers:
                    current.append(reg)
                    continue
                blocks.append(self._block(table, current))
            current = [reg]
        if current:
            blocks.append(self._block(table, current))
        return blocks

    def _aligned(self, start: int, end: int) -> tuple[int, int]:
        a = self.align
        return start - start % a, end + (-end) % a

    def _block(self, table: Table, regs: list[Register]) -> Block:
        start, end = self._aligned(regs[0].address, max(r.end for r in regs))
        return Block(table=table, start=start, count=end - start, registers=tuple(regs))

    def split(self, block: Block) -> bool:
        """Remember that ``block`` was refused; return False when it cannot be split further.

        A block with holes is split at every hole (the holes are the likely culprits); a
        hole-free block is split into single registers.
        """
        if len(block.registers) < 2:
            return False
        regs = sorted(block.registers, key=lambda r: r.address)
        cut_all = not block.has_holes
        for prev, reg in itertools.pairwise(regs):
            if cut_all or reg.address > prev.end:
                self.barriers.add((block.table, reg.address))
        return True
