"""Block planner: fewest requests within limits; learned splits are remembered."""

from drivers.block_planner import BlockPlanner
from drivers.profile import Register, load_profile


def reg(name: str, address: int, type_: str = "u16", table: str = "holding") -> Register:
    return Register(name=name, address=address, table=table, type=type_)


def test_adjacent_registers_merge_into_one_request() -> None:
    blocks = BlockPlanner("rtu").plan([reg("a", 1), reg("b", 2), reg("c", 3, "f32")])
    assert [(b.start, b.count) for b in blocks] == [(1, 4)]


def test_hole_cheaper_than_request_is_read_through_on_rtu_but_not_a_big_one() -> None:
    planner = BlockPlanner("rtu")
    assert [(b.start, b.count) for b in planner.plan([reg("a", 0), reg("b", 8)])] == [(0, 9)]
    assert len(planner.plan([reg("a", 0), reg("b", 9)])) == 2  # hole of 8 > 7


def test_tcp_reads_through_larger_holes() -> None:
    blocks = BlockPlanner("tcp").plan([reg("a", 0), reg("b", 30)])
    assert [(b.start, b.count) for b in blocks] == [(0, 31)]
    assert len(BlockPlanner("tcp").plan([reg("a", 0), reg("b", 33)])) == 2


def test_block_limit_and_tables_are_respected() -> None:
    regs = [reg(f"r{i}", i) for i in range(130)] + [reg("c", 0, "bool", "coil")]
    blocks = BlockPlanner("tcp").plan(regs)
    assert [(b.table, b.start, b.count) for b in blocks] == [
        ("coil", 0, 1), ("holding", 0, 125), ("holding", 125, 5)]
    assert len(BlockPlanner("rtu", max_block=2).plan([reg("a", 1), reg("b", 2), reg("c", 3)])) == 2


def test_illegal_address_split_is_remembered() -> None:
    planner = BlockPlanner("tcp")
    regs = [reg("a", 0), reg("b", 1), reg("c", 10)]
    (block,) = planner.plan(regs)
    assert planner.split(block)  # split at the hole first
    assert [(b.start, b.count) for b in planner.plan(regs)] == [(0, 2), (10, 1)]
    hole_free = planner.plan(regs)[0]
    assert planner.split(hole_free)  # then into single registers
    assert [(b.start, b.count) for b in planner.plan(regs)] == [(0, 1), (1, 1), (10, 1)]
    assert not planner.split(planner.plan(regs)[0])  # a single register cannot split


def test_shipped_profiles_plan_to_few_requests() -> None:
    # the GX system map spans 806..860: one request on TCP instead of eleven
    profile = load_profile("victron_gx_system")
    blocks = BlockPlanner("tcp").plan(r for r in profile.registers if r.readable)
    assert len(blocks) == 1
    assert len(blocks[0].registers) == len(profile.registers)


def test_eastron_alignment_even_start_and_count() -> None:
    planner = BlockPlanner("rtu", max_block=80, align=2)
    blocks = planner.plan([reg("a", 3), reg("b", 6, "f32")])
    assert [(b.start, b.count) for b in blocks] == [(2, 6)]
    profile = load_profile("eastron_sdm120")
    blocks = BlockPlanner("rtu", profile.device.max_block, profile.device.align).plan(
        profile.registers)
    assert all(b.start % 2 == 0 and b.count % 2 == 0 and b.count <= 80 for b in blocks)
    # voltage..power (0..13) and frequency/energy (70..73) are two requests: the hole is too big
    assert [(b.start, b.count) for b in blocks] == [(0, 14), (70, 4)]
