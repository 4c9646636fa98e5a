"""How much memory the app needs on a host: the server's resident memory through a visitor's session.

    python benchmarks/app_memory.py [--model models/fer_default.keras] [--json]

Starts ``streamlit run app.py`` on the shipped model (the same way as benchmarks/load_test.py), then
one Chromium session (Debian's, Playwright) opens Home, analyses a real photo on Analyze photos with
"Why this label?" on, and streams the fake camera on Live webcam for 15 s. After each step it reads
the server's resident memory (VmRSS) and its peak (VmHWM) from /proc. Training runs in a separate
worker process and is not part of these figures (docs/deploy.md: switch it off on small hosts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]

import cv2  # noqa: E402
from load_test import (  # noqa: E402
    BROWSER_ARGS,
    CHROMIUM,
    ROOT,
    analyze_once,
    free_port,
    new_page,
    open_app,
    start_server,
    start_webcam,
    stop_server,
    wait_healthy,
    wait_idle,
    write_y4m,
)

PHOTO = ROOT / "tests" / "data" / "astronaut.jpg"


def memory_mb(pid: int) -> dict[str, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {k: round(int(fields[k].split()[0]) / 1024, 1) for k in ("VmRSS", "VmHWM")}


async def session(url: str, pid: int, video: Path) -> list[dict]:
    from playwright.async_api import async_playwright

    steps = [{"step": "server started", **memory_mb(pid)}]
    errors: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                          args=[*BROWSER_ARGS, f"--use-file-for-fake-video-capture={video}"])
        context, page = await new_page(browser, errors, "visitor")
        await open_app(page, url, "", 180)
        await page.get_by_role("heading", name="Active model").wait_for()
        steps.append({"step": "Home (model loaded)", **memory_mb(pid)})
        seconds = await analyze_once(page, url, PHOTO, 300)
        steps.append({"step": f"Analyze photos, one photo ({seconds:.1f} s)", **memory_mb(pid)})
        await page.get_by_text("Why this label?").click()
        await wait_idle(page, 300)
        await page.get_by_text("red = what drove it").first.wait_for(timeout=300_000)
        steps.append({"step": "Why this label?", **memory_mb(pid)})
        live_context, _ = await start_webcam(browser, url, errors, 180)
        await asyncio.sleep(15)
        steps.append({"step": "Live webcam, 15 s streaming", **memory_mb(pid)})
        await live_context.close()
        await context.close()
        await browser.close()
    if errors:
        raise RuntimeError(errors)
    return steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "fer_default.keras"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fer-memory-") as tmp:
        root = Path(tmp)
        video = write_y4m(root / "face.y4m", cv2.imread(str(PHOTO)))
        port = free_port()
        proc, log = start_server(root, Path(args.model).resolve(), port)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, proc, log)
            time.sleep(2)
            steps = asyncio.run(session(url, proc.pid, video))
        finally:
            stop_server(proc)
    if args.json:
        print(json.dumps(steps, indent=2))
    else:
        print("| step | server RSS MB | peak RSS MB |\n|---|---:|---:|")
        for s in steps:
            print(f"| {s['step']} | {s['VmRSS']:.0f} | {s['VmHWM']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
