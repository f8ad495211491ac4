"""Panel benchmark: page load to the first live value, push latency to the screen, asset size.

Runs a real Mosquitto, the simulated van (in this process) and the real supervisor, and opens
the panel in Debian's headless Chromium with Playwright. Push latency is measured in the page:
a MutationObserver stamps each change of a value with ``Date.now()`` and compares it with the
reading's own timestamp (when the supervisor decoded it), on the same machine clock.
Prints figures; never passes or fails on time. Usage: ``make bench``.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from playwright.async_api import async_playwright

from harness import DEMO_CONFIG, Broker, SupervisorProcess, free_port, van_env, wait_until
from supervisor.registry import load_config
from vansim.van import SimulatedVan

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "supervisor" / "interfaces" / "panel_static"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
LOADS = 10
PUSH_SAMPLES = 100

FIRST_VALUE_JS = """() => new Promise(resolve => {
  const check = () => {
    const el = document.querySelector("[data-testid='value-power-battery-soc']");
    if (el && el.dataset.quality === 'good' && /\\d/.test(el.textContent)) {
      resolve(performance.now()); return true; }
    return false; };
  if (!check()) new MutationObserver((_, obs) => { if (check()) obs.disconnect(); })
    .observe(document.body, {subtree: true, childList: true, characterData: true,
                             attributes: true});
})"""

PUSH_JS = """(n) => new Promise(resolve => {
  const out = [];
  const el = document.querySelector("[data-testid='value-power-battery-current']");
  let last = el.textContent;
  new MutationObserver((_, obs) => {
    if (el.textContent === last) return;
    last = el.textContent;
    const ts = Number(el.dataset.ts || 0);
    if (ts) out.push(Date.now() - ts * 1000);
    if (out.length >= n) { obs.disconnect(); resolve(out); }
  }).observe(el, {subtree: true, childList: true, characterData: true});
})"""


def asset_sizes() -> tuple[int, int, int]:
    """Bytes raw and gzipped, and the number of files (each one a request on a cold load)."""
    raw = gz = files = 0
    for path in STATIC.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            data = path.read_bytes()
            raw += len(data)
            gz += len(gzip.compress(data, 9))
            files += 1
    return raw, gz, files


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main() -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="mcw-pbench-"))
    broker = Broker(run_dir)
    await broker.start()
    env = van_env(run_dir, broker.port, free_port())
    os.environ.update(env)
    sim = SimulatedVan(load_config(DEMO_CONFIG))
    sim.plant.load_wander_a = 0.8  # the current changes every poll: something to push
    supervisor = SupervisorProcess(env, run_dir / "supervisor.log")
    try:
        await sim.start()
        supervisor.start()
        url = f"http://127.0.0.1:{env['MCW_PANEL_PORT']}/"
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = await browser.new_page(viewport={"width": 800, "height": 480})
            await wait_until(lambda: supervisor.proc is not None, what="supervisor")
            for _ in range(100):  # the panel port opens shortly after start
                try:
                    await page.goto(url)
                    break
                except Exception:
                    await asyncio.sleep(0.1)  # retry pause while the supervisor starts
            await page.get_by_test_id("screen-pin").wait_for()
            for digit in "1234":
                await page.get_by_test_id(f"pin-key-{digit}").click()
            await page.get_by_test_id("pin-ok").click()
            await page.get_by_test_id("screen-home").wait_for()
            loads = []
            for _ in range(LOADS):
                await page.reload(wait_until="commit")
                loads.append(await page.evaluate(FIRST_VALUE_JS))
            await page.get_by_test_id("nav-power").click()
            pushes = await page.evaluate(PUSH_JS, PUSH_SAMPLES)
            await browser.close()
    finally:
        await supervisor.stop()
        await sim.stop()
        await broker.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
    raw, gz, files = asset_sizes()
    print("\ncrew panel (headless Chromium, 800x480, demo van)")
    print(f"  page load -> first live value (ms, median / max, n={LOADS}): "
          f"{statistics.median(loads):.0f} / {max(loads):.0f}   target <= 1000")
    print(f"  reading -> on screen, push latency (ms, p50 / p99, n={len(pushes)}): "
          f"{pct(pushes, 0.5):.0f} / {pct(pushes, 0.99):.0f}   target p99 <= 100")
    print(f"  assets: {raw / 1024:.1f} kB raw, {gz / 1024:.1f} kB gzipped, {files} files"
          "   target <= 300 kB")


if __name__ == "__main__":
    asyncio.run(main())
