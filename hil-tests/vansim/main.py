"""``mcw-sim``: run the simulated van for the demo or for a supervisor under test.

    mcw-sim --config config/demo.toml [--speed 60] [--start-soc 50] [--shore]
            [--start-time 11:30] [--solar-peak-w 300]

Serves until SIGINT or SIGTERM, then stops cleanly (RS-485 lines gone, socket removed).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import datetime

from supervisor.core.config import ConfigError
from supervisor.registry import load_config
from vansim.van import SimulatedVan


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcw-sim", description="Simulated MCW van: Modbus devices, plant model, GPIO."
    )
    parser.add_argument("--config", required=True, help="vehicle config file (TOML)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="simulated seconds per real second (default 1)")
    parser.add_argument("--start-soc", type=float, default=80.0,
                        help="house battery state of charge at start, %% (default 80)")
    parser.add_argument("--shore", action="store_true", help="start with shore power connected")
    parser.add_argument("--load-wander", type=float, default=0.8, metavar="A",
                        help="amplitude of the base load's wander in amps (0: steady)")
    parser.add_argument("--start-time", type=_clock_time, default=None, metavar="HH:MM",
                        help="simulated local time of day at start (default: now)")
    parser.add_argument("--solar-peak-w", type=float, default=None, metavar="W",
                        help="solar array output at a clear noon (default 300 W if the config "
                             "has a solar charger; 0: overcast)")
    parser.add_argument("--verbose", action="store_true", help="log debug messages")
    return parser


def _clock_time(text: str) -> datetime:
    """``HH:MM`` today, local time (argparse type)."""
    try:
        at = datetime.strptime(text, "%H:%M").time()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time of day HH:MM") from None
    return datetime.combine(datetime.now().date(), at)


async def _serve(van: SimulatedVan) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with van:
        print(f"mcw-sim: {van.describe()}", flush=True)
        await stop.wait()
    print("mcw-sim: stopped", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the process exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="mcw-sim: %(levelname)s %(name)s: %(message)s",
    )
    if not 0 <= args.start_soc <= 100:
        print("mcw-sim: --start-soc must be within 0..100", file=sys.stderr)
        return 2
    if args.speed <= 0:
        print("mcw-sim: --speed must be positive", file=sys.stderr)
        return 2
    if args.solar_peak_w is not None and args.solar_peak_w < 0:
        print("mcw-sim: --solar-peak-w must not be negative", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"mcw-sim: {exc}", file=sys.stderr)
        return 2
    van = SimulatedVan(config, speed=args.speed, start_soc=args.start_soc, shore=args.shore,
                       start_time=args.start_time)
    van.plant.load_wander_a = args.load_wander
    if args.solar_peak_w is not None:
        van.plant.solar_peak_w = args.solar_peak_w
    try:
        asyncio.run(_serve(van))
    except OSError as exc:
        print(f"mcw-sim: cannot serve: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
