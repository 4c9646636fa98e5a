"""The Live page's two modes side by side: frames/s in the page and the server's CPU while one webcam streams.

    python benchmarks/browser_live.py [--seconds 20] [--modes browser server] [--fps 30]
    python benchmarks/browser_live.py --modes browser browser-float32   # the page's 8-bit model against float32

Everything runs on this machine: ``streamlit run app.py`` (shipped model, live profile) and headless
Debian Chromium (``/usr/bin/chromium`` or ``FER_CHROMIUM``, driven by Playwright) with a fake 640x480
camera playing a real face (``benchmarks/live_capacity.py``'s Y4M loop of tests/data/grace_hopper.jpg
moving). For each mode, once the page shows processed frames and 5 s have passed, it measures for
``--seconds``: processed frames/s (in the browser mode counted in the page itself: results from its
worker over the wall time; in the server mode the page's metric), the page's latency metric, and the
CPU taken (seconds of CPU per second, from /proc) by the server process tree and by Chromium.

Targets (issue 40): >= 20 processed frames/s in the browser mode, the server <= 0.05 of a core
(about 0.45 in the server mode). Ratios are against the server mode of the same run. The browser mode
runs the shipped model's 8-bit graph (``FER_BROWSER_INT8``, on by default); ``browser-float32`` is the
same mode on a second server with ``FER_BROWSER_INT8=off``, and the 8-bit mode's frame rate is then
also given as a ratio to it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from live_capacity import (  # noqa: E402
    BROWSER_ARGS,
    CHROMIUM,
    proc_table,
    read_panel,
    start_server,
    start_stream,
    tree_cpu,
    wait_streaming,
    write_camera,
)

from streamlit_server import stop as stop_server  # noqa: E402

MODES = ("browser", "browser-float32", "server")
SETTINGS = {"browser-float32": {"FER_BROWSER_INT8": "off"}}  # each such mode gets a server of its own


def start_browser_mode(browser, url: str):
    """The Live page in the "In your browser" mode, camera started; returns (context, page, component frame)."""
    context = browser.new_context(viewport={"width": 1200, "height": 1000}, permissions=["camera"])
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(f"{url}/live")
    page.get_by_text("In your browser", exact=True).click()
    page.wait_for_selector("iframe[title*='browser_live']")
    frame = next(f for f in page.frames if "browser_live" in f.url)
    start = frame.get_by_role("button", name="Start")
    start.wait_for()
    frame.wait_for_function("() => !document.getElementById('start').disabled", timeout=120_000)
    start.click()
    return context, page, frame


def measure(page, frame, seconds: float, server_pid: int) -> dict:
    """Samples of the page's panel every 2 s; processed frames counted in the page; CPU of both sides."""
    samples = []
    before, t0 = proc_table(), time.time()
    count0 = frame.evaluate("window.ferLive.results") if frame is not None else None
    while time.time() - t0 < seconds:
        samples.append(read_panel(page))
        page.wait_for_timeout(2000)
    count1 = frame.evaluate("window.ferLive.results") if frame is not None else None
    stats = frame.evaluate("window.ferLive.stats") if frame is not None else None
    after, dt = proc_table(), time.time() - t0
    me = os.getpid()
    panel = {k: statistics.median([s[k] for s in samples if s[k] is not None] or [float("nan")]) for k in samples[0]}
    return {"fps": (count1 - count0) / dt if frame is not None else panel["Processed frames/s"],
            "panel": panel, "seconds": dt, "steps_ms": steps(stats),
            "server_cpu": (tree_cpu(server_pid, after) - tree_cpu(server_pid, before)) / dt,
            "browser_cpu": (tree_cpu(me, after, "chrom") - tree_cpu(me, before, "chrom")) / dt}


def steps(stats: dict | None) -> dict | None:
    """The page's mean ms per frame in each step (grab: pixels from the camera frame), since its Start."""
    if not stats or not stats.get("frames"):
        return None
    return {k: round(v / stats["frames"], 1) for k, v in stats["ms"].items()}


def run_mode(p, mode: str, camera: Path, url: str, seconds: float, server_pid: int) -> dict:
    browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                args=[*BROWSER_ARGS, f"--use-file-for-fake-video-capture={camera}"])
    try:
        if mode.startswith("browser"):
            _, page, frame = start_browser_mode(browser, url)
        else:
            (_, page), frame = start_stream(browser, url), None
        wait_streaming([page])
        page.wait_for_timeout(5000)  # let the moving averages settle
        return measure(page, frame, seconds, server_pid)
    finally:
        browser.close()


def run_on_its_server(p, mode: str, camera: Path, root: Path, args, main: tuple) -> dict:
    """:func:`run_mode` on the main server, or for a mode with settings of its own on a server started for it."""
    if mode not in SETTINGS:
        return run_mode(p, mode, camera, main[1], args.seconds, main[0].pid)
    proc, url = start_server(root / mode, args.model.resolve(), SETTINGS[mode])
    try:
        return run_mode(p, mode, camera, url, args.seconds, proc.pid)
    finally:
        stop_server(proc)


def report(rows: dict[str, dict]) -> None:
    print("\n| mode | processed frames/s | page's frames/s metric | camera frames/s | latency ms | server CPU "
          "| browser CPU |")
    print("|---|---|---|---|---|---|---|")
    for mode, r in rows.items():
        m = r["panel"]
        print(f"| {mode} | {r['fps']:.1f} | {m['Processed frames/s']:.1f} | {m['Camera frames/s']:.1f} | "
              f"{m['Latency']:.0f} | {r['server_cpu']:.3f} | {r['browser_cpu']:.2f} |")
    print("(CPU in seconds per second: 1.0 = one core)")
    if {"browser", "browser-float32"} <= set(rows):
        b, f = rows["browser"], rows["browser-float32"]
        print(f"8-bit / float32 model in the page: processed frames/s x{b['fps'] / max(f['fps'], 1e-9):.2f}; "
              f"mean ms per frame in the page's worker, float32: {f['steps_ms']}")
    if {"browser", "server"} <= set(rows):
        b, s = rows["browser"], rows["server"]
        print(f"browser / server mode: processed frames/s x{b['fps'] / max(s['fps'], 1e-9):.2f}, "
              f"server CPU x{b['server_cpu'] / max(s['server_cpu'], 1e-9):.3f}")
    if "browser" in rows:
        b = rows["browser"]
        print(f"browser mode, mean ms per frame in the page's worker: {b['steps_ms']}")
        print(f"targets: >= 20 processed frames/s in the browser: {'met' if b['fps'] >= 20 else 'NOT met'}; "
              f"server <= 0.05 of a core: {'met' if b['server_cpu'] <= 0.05 else 'NOT met'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=["browser", "server"])
    parser.add_argument("--fps", type=int, default=30, help="the fake camera's frame rate")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "fer_default.keras")
    args = parser.parse_args()
    if not Path(CHROMIUM).is_file():
        print(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set FER_CHROMIUM)")
        return 2
    from playwright.sync_api import sync_playwright

    print(f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} before the run")
    root = Path(tempfile.mkdtemp(prefix="fer-browser-live-"))
    rows = {}
    proc, url = start_server(root, args.model.resolve())
    try:
        camera = write_camera(root / "camera.y4m", args.fps)
        with sync_playwright() as p:
            for mode in args.modes:
                rows[mode] = run_on_its_server(p, mode, camera, root, args, (proc, url))
                print(f"{mode}: {rows[mode]}", flush=True)
    finally:
        stop_server(proc)
        shutil.rmtree(root, ignore_errors=True)
    report(rows)
    print(f"load average {os.getloadavg()[0]:.1f} after the run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
