"""How much memory the app needs on a host, and how soon a cold server answers: ONNX Runtime against Keras.

    python benchmarks/app_memory.py [--engines onnx keras] [--full] [--model models/fer_default.keras] [--json]

For each engine (``FER_ENGINE``, see docs/app.md), in the same run: starts a fresh ``streamlit run
app.py`` on the shipped model with an empty model cache (as a host that just woke up), then one
Chromium visitor (Debian's, Playwright; launched before the server, so not counted) opens Home and
analyses a real photo on Analyze photos. It reports the seconds from the server's start to that
first analysed photo on screen, and from its upload to it (the cold analysis itself, without
Streamlit's own start and the page loads, which both engines share), and the server's resident
memory (VmRSS) and peak (VmHWM, from /proc) after each step. ``--full`` adds "Why this label?" and
15 s of the Live webcam (Chromium's fake camera). The last lines give the ratios (Keras / ONNX) of
both times and of the memory after the photo. For the core alone, each engine also analyses the photo
in a fresh Python process (no Streamlit, no browser): seconds to the result and peak RSS.
Training runs in a separate worker process and is not part of these figures (docs/deploy.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(Path(__file__).resolve().parent), str(ROOT / "tests")]

import cv2  # noqa: E402
from load_test import (  # noqa: E402
    BROWSER_ARGS,
    CHROMIUM,
    analyze_once,
    new_page,
    open_app,
    server_env,
    start_webcam,
    wait_idle,
    write_y4m,
)

from fer.inference import ENGINES  # noqa: E402
from streamlit_server import app_command, free_port, stop, wait_healthy  # noqa: E402

PHOTO = ROOT / "tests" / "data" / "astronaut.jpg"


def memory_mb(pid: int, started: float) -> dict[str, float]:
    """The process's resident memory and its peak, in MB, and the seconds since ``started`` (perf_counter)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"t_s": round(time.perf_counter() - started, 1),
            **{k: round(int(fields[k].split()[0]) / 1024, 1) for k in ("VmRSS", "VmHWM")}}


CORE = ("import resource, sys; from fer.inference import EmotionRecognizer; "
        "faces = EmotionRecognizer(engine=sys.argv[1]).analyze_file(sys.argv[2]); "
        "print(len(faces), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")


def core_cold_start(engine: str, model_cache: Path) -> dict:
    """A fresh Python process analysing the photo with ``EmotionRecognizer(engine=engine)`` (photo profile):
    seconds from its start to the result, and its peak RSS in MB. No Streamlit, no browser."""
    env = {**os.environ, "FER_CACHE_DIR": str(model_cache), "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", CORE, engine, str(PHOTO)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=600)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        raise RuntimeError(f"the {engine} process failed: {run.stderr[-2000:]}")
    faces, rss = run.stdout.split()[-2:]
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(float(rss)), "faces": int(faces)}


def start_server(root: Path, model: Path, engine: str) -> tuple[subprocess.Popen, str, Path]:
    """``streamlit run app.py`` on ``model``, ``FER_ENGINE=engine``, an empty cache: the process, its URL, its log."""
    port = free_port()
    env = {**server_env(root, model), "FER_ENGINE": engine}
    log = root / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([*app_command(), "--server.port", str(port), "--server.address", "127.0.0.1"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}", log


async def visit(browser, url: str, pid: int, started: float, full: bool, errors: list[str]) -> dict:
    """Home, then one photo on Analyze photos (and, with ``full``, Why this label? and the webcam)."""
    steps = [{"step": "server healthy", **memory_mb(pid, started)}]
    context, page = await new_page(browser, errors, "visitor")
    await open_app(page, url, "", 180)
    await page.get_by_role("heading", name="Active model").wait_for()
    steps.append({"step": "Home", **memory_mb(pid, started)})
    seconds = await analyze_once(page, url, PHOTO, 300)
    first_photo = time.perf_counter() - started
    analysis = seconds
    steps.append({"step": f"Analyze photos, one photo ({seconds:.1f} s)", **memory_mb(pid, started)})
    if full:
        await page.get_by_text("Why this label?").click()
        await wait_idle(page, 300)
        await page.get_by_text("red = what drove it").first.wait_for(timeout=300_000)
        steps.append({"step": "Why this label?", **memory_mb(pid, started)})
        live_context, _ = await start_webcam(browser, url, errors, 180)
        await asyncio.sleep(15)
        steps.append({"step": "Live webcam, 15 s streaming", **memory_mb(pid, started)})
        await live_context.close()
    await context.close()
    return {"first_photo_s": round(first_photo, 2), "first_analysis_s": round(analysis, 2), "steps": steps}


async def measure(engines: list[str], model: Path, full: bool, root: Path, video: Path) -> dict:
    from playwright.async_api import async_playwright

    out: dict[str, dict] = {}
    errors: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                          args=[*BROWSER_ARGS, f"--use-file-for-fake-video-capture={video}"])
        for engine in engines:
            folder = root / engine
            folder.mkdir()
            started = time.perf_counter()
            proc, url, log = start_server(folder, model, engine)
            try:
                await asyncio.to_thread(wait_healthy, url, proc, log)
                out[engine] = await visit(browser, url, proc.pid, started, full, errors)
            finally:
                stop(proc)
            out[engine]["process"] = core_cold_start(engine, folder / "process-cache")
        await browser.close()
    if errors:
        raise RuntimeError(errors)
    return out


def ratios(results: dict) -> dict:
    """Keras / ONNX: how many times sooner the first photo comes and how many times less memory it takes."""
    if not {"onnx", "keras"} <= set(results):
        return {}
    onnx, keras = results["onnx"], results["keras"]
    return {"cold_start_keras_over_onnx": round(keras["first_photo_s"] / onnx["first_photo_s"], 2),
            "first_analysis_keras_over_onnx": round(keras["first_analysis_s"] / onnx["first_analysis_s"], 2),
            "rss_after_photo_keras_over_onnx": round(keras["steps"][2]["VmRSS"] / onnx["steps"][2]["VmRSS"], 2),
            "process_cold_start_keras_over_onnx": round(keras["process"]["seconds"] / onnx["process"]["seconds"], 2)}


def print_report(results: dict) -> None:
    print("| engine | step | seconds since start | server RSS MB | peak RSS MB |\n|---|---|---:|---:|---:|")
    for engine, r in results.items():
        for s in r["steps"]:
            print(f"| {engine} | {s['step']} | {s['t_s']:.1f} | {s['VmRSS']:.0f} | {s['VmHWM']:.0f} |")
    for engine, r in results.items():
        c = r["process"]
        print(f"{engine}: a fresh Python process analysed the photo ({c['faces']} face(s)) {c['seconds']:.1f} s "
              f"after its start, peak RSS {c['peak_rss_mb']} MB")
    for engine, r in results.items():
        print(f"{engine}: first analysed photo {r['first_photo_s']:.1f} s after the server's start, "
              f"{r['first_analysis_s']:.1f} s after its upload")
    for name, value in ratios(results).items():
        print(f"{name}: {value:.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=["onnx", "keras"],
                        help="the engines to compare, each on a fresh server (default: onnx keras)")
    parser.add_argument("--model", default=str(ROOT / "models" / "fer_default.keras"))
    parser.add_argument("--full", action="store_true", help="also Why this label? and 15 s of the webcam")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).is_file():
        print(f"error: no Chromium at {CHROMIUM}; apt-get install chromium, or set FER_CHROMIUM", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="fer-memory-") as tmp:
        root = Path(tmp)
        video = write_y4m(root / "face.y4m", cv2.imread(str(PHOTO)))
        results = asyncio.run(measure(list(dict.fromkeys(args.engines)), Path(args.model).resolve(), args.full,
                                      root, video))
    if args.json:
        print(json.dumps({"engines": results, **ratios(results)}, indent=2))
    else:
        print_report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
