"""The room node's firmware as the board runs it: every file compiles with mpy-cross (the
MicroPython compiler), the core behaves under real MicroPython exactly as under CPython, and
main.py runs under MicroPython on a fake board.

Real MicroPython is its WebAssembly port (npm ``@micropython/micropython-webassembly-pyscript``,
which ``make test`` installs into ``tests/mpy_port/node_modules``), run by Node.js; a run takes
well under a second. Without it these tests skip, except in CI, where they fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from testsupport import in_ci, require_tool

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware" / "room_node"
CORE = FIRMWARE / "roomnode"
PORT = ROOT / "tests" / "mpy_port"
MPY_CROSS = Path(sys.executable).parent / "mpy-cross"
SOURCES = sorted([FIRMWARE / "main.py", *CORE.glob("*.py")])
MPY_VERSION = 6  # mpy v6.x: what MicroPython 1.23 and later load


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(FIRMWARE)))
def test_every_firmware_file_compiles_with_mpy_cross(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mpy"
    done = subprocess.run([str(MPY_CROSS), "-march=armv6m", "-o", str(out), str(source)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    header = out.read_bytes()[:2]
    assert header == bytes((ord("M"), MPY_VERSION))


def micropython(script: Path, *paths: Path) -> subprocess.CompletedProcess[str]:
    """Run ``script`` under MicroPython with ``paths`` (packages, files) importable."""
    node = require_tool("node")
    if not (PORT / "node_modules" / "@micropython").is_dir():
        reason = "the MicroPython port is not installed (make test: npm ci --prefix tests/mpy_port)"
        if in_ci():
            pytest.fail(f"{reason}; CI=true, so this is a failure, not a skip", pytrace=False)
        pytest.skip(reason)
    return subprocess.run([node, str(PORT / "run.mjs"), str(script), *map(str, paths)],
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_core_runs_the_same_under_micropython_as_under_cpython() -> None:
    scenario = PORT / "scenario.py"
    env = {**os.environ, "PYTHONPATH": str(FIRMWARE)}
    cpython = subprocess.run([sys.executable, str(scenario)], capture_output=True, text=True,
                             timeout=120, env=env, check=False)
    assert cpython.returncode == 0, cpython.stderr
    mpy = micropython(scenario, CORE)
    assert mpy.returncode == 0, mpy.stderr
    expected, got = cpython.stdout.splitlines(), mpy.stdout.splitlines()
    assert expected[-1] == "done" and len(expected) > 1000
    for line, (want, have) in enumerate(zip(expected, got, strict=False)):
        assert have == want, f"MicroPython differs from CPython at line {line}"
    assert len(got) == len(expected)


def test_main_runs_under_micropython_on_a_fake_board() -> None:
    done = micropython(PORT / "main_on_fake_board.py", CORE, FIRMWARE / "main.py", PORT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("main ok"), done.stdout
