"""A master that holds the room node's outputs on, renewing their lease, until it is killed.

    python node_master.py CONFIG DEVICE LEASE_S

The HIL lease test runs it as its own process and kills it with SIGKILL, as a supervisor
dies: nothing is said to the node, which must fall to its safe states by itself. It talks
through the supervisor's own bus worker (drivers/), on the config's RS-485 port, writing
as the room subsystem does: the outputs, then the lease every third of it. Prints "holding"
once the outputs are confirmed by read-back.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

import structlog

from drivers.buses import build_workers
from drivers.register_codec import Value
from supervisor.registry import load_config

ON: dict[str, Value] = {"door_sign": 1, "recording_light": 1, "buzzer": 1, "calm_light": 80.0}


class _Quiet:
    """The master keeps no readings: it only writes."""

    def values(self, device: str, values: dict[str, Value | None], ts: float,
               same: Sequence[str] = ()) -> None:
        pass

    def unavailable(self, device: str, registers: Sequence[str], quality: str) -> None:
        pass

    def health(self, device: str, status: dict[str, object]) -> None:
        pass


async def hold(config: str, device: str, lease_s: float) -> None:
    cfg = load_config(config)
    dev = next(d for d in cfg.device if d.id == device)
    worker = build_workers([cfg.bus_by_name(dev.bus)], [dev], _Quiet())[dev.bus]
    task = asyncio.create_task(worker.run())
    await worker.write(device, "lease", lease_s)
    for register, value in ON.items():
        back = await worker.write(device, register, value)
        if back != value:
            raise SystemExit(f"{device}.{register}: wrote {value}, read back {back}")
    print("holding", flush=True)
    while not task.done():
        await asyncio.sleep(lease_s / 3)  # the room subsystem's renewal period
        await worker.write(device, "lease", lease_s)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    # the bus worker's log on stderr: stdout says "holding" and nothing else
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    asyncio.run(hold(argv[0], argv[1], float(argv[2])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
