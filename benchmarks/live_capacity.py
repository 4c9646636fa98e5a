"""How many webcams one server holds: N headless Chromium fake cameras against one ``streamlit run app.py``.

    python benchmarks/live_capacity.py [--streams 1 2 4] [--seconds 30] [--fps 30]

Everything runs on this machine: the app (shipped model, live profile), and one headless Debian
Chromium (``/usr/bin/chromium``, or ``FER_CHROMIUM``; driven by Playwright) with one page per
stream, each sending a fake camera: a Y4M loop of one face moving over a real background (640x480,
``--fps``). For each N, once every page shows processed frames, the pages' live panels are read
every 2 s for ``--seconds``: processed frames/s, camera frames/s, frames skipped and latency (how
far the labels are behind the camera on the server), as the page shows them. Printed per N: the
median over streams and samples of each, the worst stream, and the CPU each side took (seconds of
CPU per second, from /proc; 2.0 = both cores of a 2-core machine) for the server and for the
browsers, whose cost counts against the server when they share its machine.

Target (issue 28): >= 4 streams at >= 15 processed frames/s each, labels <= 150 ms behind.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import cv2  # noqa: E402

import scenes  # noqa: E402
from streamlit_server import free_port, wait_healthy  # noqa: E402
from streamlit_server import stop as stop_server  # noqa: E402

CHROMIUM = os.environ.get("FER_CHROMIUM", "/usr/bin/chromium")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream", "--autoplay-policy=no-user-gesture-required"]
METRICS = ("Processed frames/s", "Camera frames/s", "Frames skipped", "Latency")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- CPU from /proc

def proc_table() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command name, CPU seconds used so far) for every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(entry)] = (int(fields[1]), name, (int(fields[11]) + int(fields[12])) / CLK_TCK)
    return out


def tree_cpu(root: int, table: dict, name_filter: str | None = None) -> float:
    """CPU seconds of ``root`` and its descendants (only those whose name contains ``name_filter``)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in table and (name_filter is None or name_filter in table[pid][1].lower()):
            total += table[pid][2]
        todo.extend(children.get(pid, []))
    return total


# ---------------------------------------------------------------- the camera, the server, the pages

def write_camera(path: Path, fps: int, frames: int = 150) -> Path:
    """A Y4M loop of one moving face (tests/scenes.py: moving_face) for Chromium's fake camera."""
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W640 H480 F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        seq = scenes.moving_face(frames // 2, fps=fps)
        for scene in seq + seq[::-1]:  # forth and back: the loop has no jump
            f.write(b"FRAME\n" + cv2.cvtColor(scene.image, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def start_server(root: Path, model: Path, settings: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """``streamlit run app.py`` on ``model`` in a folder of its own (``settings``: more FER_* variables)."""
    port = free_port()
    env = {**os.environ, "FER_DEFAULT_MODEL": str(model), "FER_MODELS_DIR": str(root / "models"),
           "FER_DATA_DIR": str(root / "fer_data"), "FER_WORK_DIR": str(root / "work"),
           "FER_CACHE_DIR": str(root / "cache"), "FER_ICE_SERVERS": "[]", "TF_CPP_MIN_LOG_LEVEL": "3",
           **(settings or {})}
    (root / "models").mkdir(parents=True, exist_ok=True)
    log = open(root / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, root / "server.log", timeout=120)
    except RuntimeError:
        stop_server(proc)
        raise
    return proc, url


def metric(page, label: str) -> str:
    name = page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    box = page.get_by_test_id("stMetric").filter(has=name)
    return box.get_by_test_id("stMetricValue").inner_text(timeout=3000).strip()


def number(text: str) -> float | None:
    m = re.search(r"-?\d+(\.\d+)?", text)
    return float(m.group()) if m else None


def read_panel(page) -> dict[str, float | None]:
    out = {}
    for label in METRICS:
        try:
            out[label] = number(metric(page, label))
        except Exception:  # noqa: BLE001 - the panel is being redrawn
            out[label] = None
    return out


def start_stream(browser, url: str):
    context = browser.new_context(viewport={"width": 1200, "height": 900}, permissions=["camera"])
    page = context.new_page()
    page.set_default_timeout(90_000)
    page.goto(f"{url}/live")
    page.get_by_test_id("stApp").wait_for()
    frame = page.frame_locator("iframe[title*='webrtc_streamer']")
    frame.get_by_role("button", name=re.compile("^start$", re.I)).click()
    return context, page


def wait_streaming(pages, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    for page in pages:
        while (read_panel(page)["Processed frames/s"] or 0) <= 0:
            if time.time() > deadline:
                raise RuntimeError("a stream never showed processed frames (see the server log)")
            page.wait_for_timeout(500)


def measure(pages, seconds: float, server_pid: int) -> dict:
    """Read every page's panel every 2 s for ``seconds``; CPU of the server and of the browsers meanwhile."""
    samples: list[list[dict]] = [[] for _ in pages]
    before, t0 = proc_table(), time.time()
    while time.time() - t0 < seconds:
        for i, page in enumerate(pages):
            samples[i].append(read_panel(page))
        pages[0].wait_for_timeout(2000)
    after, dt = proc_table(), time.time() - t0
    me = os.getpid()
    return {
        "samples": samples,
        "server_cpu": (tree_cpu(server_pid, after) - tree_cpu(server_pid, before)) / dt,
        "browser_cpu": (tree_cpu(me, after, "chrom") - tree_cpu(me, before, "chrom")) / dt,
        "seconds": dt,
    }


def summarise(n: int, result: dict) -> dict:
    per_stream = []
    for s in result["samples"]:
        col = {k: [x[k] for x in s if x[k] is not None] for k in METRICS}
        per_stream.append({k: statistics.median(v) if v else float("nan") for k, v in col.items()}
                          | {"skipped_during": (col["Frames skipped"][-1] - col["Frames skipped"][0])
                             if len(col["Frames skipped"]) > 1 else float("nan")})
    med = {k: statistics.median(p[k] for p in per_stream) for k in (*METRICS, "skipped_during")}
    return {"n": n, "median": med, "worst_fps": min(p["Processed frames/s"] for p in per_stream),
            "worst_latency": max(p["Latency"] for p in per_stream),
            "server_cpu": result["server_cpu"], "browser_cpu": result["browser_cpu"], "seconds": result["seconds"]}


def report(rows: list[dict]) -> None:
    print("\n| streams | processed frames/s (median, worst) | camera frames/s | skipped / s | latency ms "
          "(median, worst) | server CPU | browsers' CPU |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        m = r["median"]
        print(f"| {r['n']} | {m['Processed frames/s']:.1f}, {r['worst_fps']:.1f} | {m['Camera frames/s']:.1f} | "
              f"{m['skipped_during'] / r['seconds']:.1f} | {m['Latency']:.0f}, {r['worst_latency']:.0f} | "
              f"{r['server_cpu']:.2f} | {r['browser_cpu']:.2f} |")
    print(f"(CPU in seconds per second: {os.cpu_count()} = every core of this machine)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--fps", type=int, default=30, help="the fake cameras' frame rate")
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "fer_default.keras")
    args = parser.parse_args()
    if not Path(CHROMIUM).is_file():
        print(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set FER_CHROMIUM)")
        return 2
    from playwright.sync_api import sync_playwright

    print(f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} before the run")
    root = Path(tempfile.mkdtemp(prefix="fer-capacity-"))
    rows = []
    proc, url = start_server(root, args.model.resolve())
    try:
        camera = write_camera(root / "camera.y4m", args.fps)
        with sync_playwright() as p:
            for n in args.streams:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                            args=[*BROWSER_ARGS, f"--use-file-for-fake-video-capture={camera}"])
                try:
                    streams = [start_stream(browser, url) for _ in range(n)]
                    pages = [pg for _, pg in streams]
                    wait_streaming(pages)
                    pages[0].wait_for_timeout(5000)  # let the moving averages settle
                    rows.append(summarise(n, measure(pages, args.seconds, proc.pid)))
                    print(f"{n} stream(s): {rows[-1]['median']}", flush=True)
                finally:
                    browser.close()
    finally:
        stop_server(proc)
        shutil.rmtree(root, ignore_errors=True)
    report(rows)
    print(f"load average {os.getloadavg()[0]:.1f} after the run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
