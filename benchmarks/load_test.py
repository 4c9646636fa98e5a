"""Load test: N browser sessions analysing photos at once while a training runs and a webcam streams.

    python benchmarks/load_test.py [--sessions 8] [--uploads 3] [--time-limit 900] [--url URL] [--json OUT]

Without ``--url`` it starts ``streamlit run app.py`` on a free loopback port (shipped model, a
generated 7-class dataset as the data folder, host-only WebRTC); with ``--url`` it drives a server
that is already running (its data folder must hold a dataset, and its Train page must be open to
this client). Only loopback or the given URL is contacted.

One headless Chromium (Debian's, ``/usr/bin/chromium`` or ``FER_CHROMIUM``) with a fake camera, one
browser context per visitor:

1. baseline: one session uploads ``--baseline-uploads`` photos on Analyze, one after another;
2. load: one session starts a training on the Train page (``--epochs``, cancelled when the test
   ends) and waits for it to run, one session streams the fake camera on Live webcam, then ``--sessions``
   sessions upload ``--uploads`` photos each, all at once.

Every upload is a fresh copy of the photo (one pixel changed, its own name) on a freshly loaded
page, so the app's result cache never answers it. The time per photo runs from handing the file to
the page until its annotated result is shown and the script run has finished. The report: p50/p95
seconds per photo for 1 session and for N sessions, uploads answered, errors (page errors, Streamlit
exceptions, timeouts), and whether the training and the webcam stayed alive throughout. The run is
bounded: ``--time-limit`` seconds in all, ``--upload-timeout`` per photo.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from streamlit_server import app_command, streamlit_server, wait_healthy  # noqa: E402

CHROMIUM = os.environ.get("FER_CHROMIUM", "/usr/bin/chromium")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream"]
RESULT = re.compile(r"\d+×\d+ px · \d+ face\(s\)")
IDLE_JS = ("['notRunning', 'initial'].includes(document.querySelector('[data-testid=stApp]')"
           ".getAttribute('data-test-script-state'))")


@dataclass
class Phase:
    sessions: int
    planned: int
    times_s: list[float] = field(default_factory=list)
    attempted: int = 0
    answered: int = 0
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def summary(self) -> dict:
        t = sorted(self.times_s)
        return {"sessions": self.sessions, "planned": self.planned, "uploads": self.attempted,
                "answered": self.answered,
                "errors": len(self.errors), "p50_s": percentile(t, 50), "p95_s": percentile(t, 95),
                "max_s": round(t[-1], 2) if t else None, "wall_s": round(self.wall_s, 1),
                "photos_per_min": round(60 * self.answered / self.wall_s, 1) if self.wall_s else None}


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile of sorted ``values`` (None when empty)."""
    if not values:
        return None
    return round(float(np.percentile(values, q)), 2)


# ---------------------------------------------------------------- the server under test


def server_env(root: Path, model: Path) -> dict[str, str]:
    """The app's environment for the test: ``model`` as the default, a generated dataset as its data folder."""
    from synth import make_split, write_kaggle_folders

    data = write_kaggle_folders(root / "data", {"train": make_split(30, 1), "public_test": make_split(4, 2)})
    env = {**os.environ, "FER_DEFAULT_MODEL": str(model), "FER_MODELS_DIR": str(root / "models"),
           "FER_DATA_DIR": str(data), "FER_WORK_DIR": str(root / "work"), "FER_CACHE_DIR": str(root / "cache"),
           "FER_ICE_SERVERS": "[]", "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("FER_ADMIN_TOKEN", None)
    env.pop("FER_TRAINING", None)
    return env


# ---------------------------------------------------------------- inputs


def photo_copies(photo: Path, folder: Path, n: int) -> list[Path]:
    """``n`` distinct copies of ``photo`` (one pixel changed each), so no upload is a cache hit."""
    image = cv2.imread(str(photo))
    if image is None:
        raise ValueError(f"cannot read the photo {photo}; pass --photo with a JPEG or PNG of a face")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        copy = image.copy()
        copy[i // copy.shape[1] % copy.shape[0], i % copy.shape[1], 0] ^= 1
        path = folder / f"visitor_photo_{i:03d}.png"
        cv2.imwrite(str(path), copy)
        paths.append(path)
    return paths


def write_y4m(path: Path, image_bgr: np.ndarray, frames: int = 12, size=(640, 480)) -> Path:
    """A short Y4M video of the photo drifting a few pixels, for Chromium's fake camera."""
    w, h = size
    ih, iw = image_bgr.shape[:2]
    scale = min((h - 20) / ih, (w - 40) / iw)
    small = cv2.resize(image_bgr, (int(iw * scale), int(ih * scale)), interpolation=cv2.INTER_AREA)
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            canvas = np.full((h, w, 3), 90, np.uint8)
            x0, y0 = (w - small.shape[1]) // 2 + (i % 6) * 2, (h - small.shape[0]) // 2
            canvas[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
            f.write(b"FRAME\n" + cv2.cvtColor(canvas, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


# ---------------------------------------------------------------- browser sessions


async def new_page(browser, errors: list[str], name: str):
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["camera"])
    page = await context.new_page()
    page.set_default_timeout(120_000)
    page.on("pageerror", lambda exc: errors.append(f"{name}: page error: {exc}")
            if "ResizeObserver" not in str(exc) else None)
    return context, page


async def wait_idle(page, timeout_s: float) -> None:
    await page.wait_for_timeout(300)
    await page.wait_for_function(IDLE_JS, timeout=timeout_s * 1000)


async def open_app(page, url: str, path: str, timeout_s: float) -> None:
    await page.goto(f"{url}/{path}", timeout=timeout_s * 1000)
    await page.get_by_test_id("stApp").wait_for(timeout=timeout_s * 1000)
    await wait_idle(page, timeout_s)


async def analyze_once(page, url: str, photo: Path, timeout_s: float) -> float:
    """Upload one photo on a fresh Analyze page; seconds until its result is shown and the run ends."""
    await open_app(page, url, "analyze", timeout_s)
    start = time.perf_counter()
    await page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(photo))
    await page.get_by_text(RESULT).first.wait_for(timeout=timeout_s * 1000)
    await wait_idle(page, timeout_s)
    elapsed = time.perf_counter() - start
    if await page.get_by_test_id("stException").count():
        raise RuntimeError("the page shows an exception")
    return elapsed


async def visitor(browser, url: str, name: str, photos: list[Path], phase: Phase, deadline: float,
                  timeout_s: float) -> None:
    context, page = await new_page(browser, phase.errors, name)
    try:
        for photo in photos:
            if time.time() + 5 > deadline:
                break
            phase.attempted += 1
            try:
                phase.times_s.append(await analyze_once(page, url, photo, min(timeout_s, deadline - time.time())))
                phase.answered += 1
                progress(f"{name}: {photo.name} answered in {phase.times_s[-1]:.1f} s")
            except Exception as exc:  # noqa: BLE001 - counted and reported, the others go on
                phase.errors.append(f"{name}: {photo.name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    finally:
        await context.close()


async def run_phase(browser, url: str, sessions: int, photos: list[Path], uploads: int, deadline: float,
                    timeout_s: float) -> Phase:
    phase = Phase(sessions, sessions * uploads)
    start = time.perf_counter()
    await asyncio.gather(*(visitor(browser, url, f"visitor {i + 1}", photos[i * uploads:(i + 1) * uploads],
                                   phase, deadline, timeout_s) for i in range(sessions)))
    phase.wall_s = time.perf_counter() - start
    return phase


async def metric(page, label: str) -> str:
    name = page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    box = page.get_by_test_id("stMetric").filter(has=name)
    return (await box.get_by_test_id("stMetricValue").inner_text(timeout=5000)).strip()


async def start_training(browser, url: str, epochs: int, errors: list[str], timeout_s: float):
    """A trainer session: start a training from the data folder and wait until it is running."""
    context, page = await new_page(browser, errors, "trainer")
    await open_app(page, url, "train", timeout_s)
    field_ = page.get_by_role("spinbutton", name="Epochs")
    await field_.fill(str(epochs))
    await field_.press("Enter")
    await wait_idle(page, timeout_s)
    await page.get_by_role("button", name="Start training").click()
    await page.get_by_role("button", name="Cancel").wait_for(timeout=timeout_s * 1000)
    return context, page


async def training_state(page) -> str:
    if await page.get_by_role("button", name="Cancel").count():
        return "running"
    if await page.get_by_text("Training finished").count():
        return "finished"
    if await page.get_by_text("Training failed").count():
        return "failed"
    return "unknown"


async def start_webcam(browser, url: str, errors: list[str], timeout_s: float):
    """A viewer session streaming the fake camera on the Live page; waits for the first analysed frames."""
    context, page = await new_page(browser, errors, "webcam")
    await open_app(page, url, "live", timeout_s)
    frame = page.frame_locator("iframe[title*='webrtc_streamer']")
    await frame.get_by_role("button", name=re.compile("^start$", re.IGNORECASE)).click()
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if await webcam_fps(page) > 0:
            return context, page
        await page.wait_for_timeout(1000)
    raise RuntimeError("the live webcam did not start streaming")


async def webcam_fps(page) -> float:
    try:
        return float(await metric(page, "Frames per second"))
    except Exception:  # noqa: BLE001 - the fragment is being redrawn
        return 0.0


async def load_test(args, url: str, photos: list[Path], video: Path) -> dict:
    from playwright.async_api import async_playwright

    deadline = time.time() + args.time_limit
    report: dict = {"url": url, "sessions": args.sessions, "uploads_per_session": args.uploads}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                          args=[*BROWSER_ARGS, f"--use-file-for-fake-video-capture={video}"])
        warm = await run_phase(browser, url, 1, photos[:1], 1, deadline, args.upload_timeout)  # model load
        report["warm_up_s"] = round(warm.times_s[0], 1) if warm.times_s else None
        n_base = args.baseline_uploads
        base = await run_phase(browser, url, 1, photos[1:1 + n_base], n_base, deadline, args.upload_timeout)
        errors: list[str] = []
        progress("baseline done; starting the training and the webcam")
        trainer, train_page = await start_training(browser, url, args.epochs, errors, args.upload_timeout)
        webcam, live_page = await start_webcam(browser, url, errors, args.upload_timeout)
        fps_before = await webcam_fps(live_page)
        progress(f"training running, webcam at {fps_before} frames/s; {args.sessions} sessions start uploading")
        load = await run_phase(browser, url, args.sessions, photos[1 + n_base:], args.uploads, deadline,
                               args.upload_timeout)
        report["training_during_load"] = await training_state(train_page)
        report["webcam_fps_before_after"] = [fps_before, await webcam_fps(live_page)]
        if await train_page.get_by_role("button", name="Cancel").count():
            await train_page.get_by_role("button", name="Cancel").click()
        await live_page.frame_locator("iframe[title*='webrtc_streamer']").get_by_role(
            "button", name=re.compile("^stop$", re.IGNORECASE)).click()
        await trainer.close()
        await webcam.close()
        await browser.close()
    load.errors.extend(errors)
    report["one_session"], report["n_sessions"] = base.summary(), load.summary()
    report["errors"] = base.errors + load.errors
    return report


def print_report(r: dict) -> None:
    print(f"\nLoad test against {r['url']} (first upload, model load: {r['warm_up_s']} s)")
    print("| sessions | planned | uploaded | answered | errors | p50 s/photo | p95 s/photo | max s | photos/min |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key in ("one_session", "n_sessions"):
        s = r[key]
        print(f"| {s['sessions']} | {s['planned']} | {s['uploads']} | {s['answered']} | {s['errors']} | {s['p50_s']} | "
              f"{s['p95_s']} | {s['max_s']} | {s['photos_per_min']} |")
    print(f"training during the load: {r['training_during_load']}; "
          f"webcam frames/s before and after: {r['webcam_fps_before_after']}")
    for e in r["errors"]:
        print(f"error: {e}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=8, help="simultaneous Analyze sessions (default 8)")
    ap.add_argument("--uploads", type=int, default=3, help="photos per session (default 3)")
    ap.add_argument("--baseline-uploads", type=int, default=6, help="photos of the one-session baseline (default 6)")
    ap.add_argument("--epochs", type=int, default=200,
                    help="epochs of the background training (1-200; it is cancelled when the test ends)")
    ap.add_argument("--time-limit", type=float, default=900, help="seconds for the whole test (default 900)")
    ap.add_argument("--upload-timeout", type=float, default=300, help="seconds allowed per photo (default 300)")
    ap.add_argument("--photo", type=Path, default=ROOT / "tests" / "data" / "astronaut.jpg")
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "fer_default.keras")
    ap.add_argument("--url", help="a running app to test instead of starting one on loopback")
    ap.add_argument("--json", type=Path, help="also write the report here")
    args = ap.parse_args(argv)
    if not (1 <= args.sessions <= 64 and 1 <= args.uploads <= 50 and 1 <= args.baseline_uploads <= 50
            and 1 <= args.epochs <= 200):
        ap.error("--sessions must be 1-64, --uploads and --baseline-uploads 1-50, --epochs 1-200")
    if not Path(CHROMIUM).is_file():
        ap.error(f"no Chromium at {CHROMIUM}: apt-get install chromium, or set FER_CHROMIUM")
    root = Path(tempfile.mkdtemp(prefix="fer-load-"))
    try:
        photos = photo_copies(args.photo, root / "photos", 1 + args.baseline_uploads + args.uploads * args.sessions)
        video = write_y4m(root / "face.y4m", cv2.imread(str(args.photo)))
        with contextlib.ExitStack() as stack:
            if args.url:
                url = args.url.rstrip("/")
                wait_healthy(url, timeout=30)
            else:
                url = stack.enter_context(streamlit_server(app_command(), cwd=ROOT, env=server_env(root, args.model),
                                                           log=root / "server.log"))
            report = asyncio.run(load_test(args, url, photos, video))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    ok = not report["errors"] and all(report[k]["answered"] == report[k]["planned"]
                                      for k in ("one_session", "n_sessions"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
