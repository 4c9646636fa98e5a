"""End to end: the Live page's "In your browser" mode in Debian's Chromium, with a fake camera playing a real face.

It checks what the mode promises: labels drawn in the page with no WebRTC at all (``RTCPeerConnection``
replaced by a stub that throws and counts its calls), nothing image-sized sent over the page's
websocket, the metrics row fed by the component's summaries, and the same answer as the server:
the same recorded frames through the page's pipeline and through ``EmotionRecognizer(profile="live")``.
Runs on the shipped model (its ONNX conversion is cached in ``~/.cache/fer``).
"""

from __future__ import annotations

import base64
import os
import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from app_helpers import REPO, face_photo
from camera_video import face_frames, write_y4m
from streamlit_server import app_command, streamlit_server

CHROMIUM = os.environ.get("FER_CHROMIUM", "/usr/bin/chromium")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream"]
NO_WEBRTC = """(() => {
  window.__rtcCalls = 0;
  function blockedRTCPeerConnection() {
    window.__rtcCalls += 1;
    throw new Error("RTCPeerConnection is blocked by this test");
  }
  window.RTCPeerConnection = blockedRTCPeerConnection;
  window.webkitRTCPeerConnection = blockedRTCPeerConnection;
})();"""
IMAGE_BYTES = 16_000
"""Larger than any summary the page sends; smaller than any camera frame (a 640x480 JPEG is 30 KB or more)."""
LABEL = r"^(angry|disgust|fear|happy|sad|surprise|neutral) \d+%$"

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (its Python API only)")
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                                                   reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")]


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return face_frames(cv2.imread(str(face_photo())), n=24)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``streamlit run app.py`` on the shipped model, on a free localhost port."""
    root = tmp_path_factory.mktemp("browser_live")
    env = {**os.environ, "FER_MODELS_DIR": str(root / "models"), "FER_WORK_DIR": str(root / "work"),
           "FER_ICE_SERVERS": "[]", "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("FER_DEFAULT_MODEL", None)
    (root / "models").mkdir()
    with streamlit_server(app_command(), cwd=REPO, env=env, log=root / "server.log", timeout=90) as url:
        yield {"url": url, "log": root / "server.log"}


@pytest.fixture(scope="module")
def page(server, frames, tmp_path_factory):
    video = write_y4m(tmp_path_factory.mktemp("camera") / "face.y4m", frames)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=[*BROWSER_ARGS, f"--use-file-for-fake-video-capture={video}"])
        context = browser.new_context(viewport={"width": 1300, "height": 1100}, permissions=["camera"])
        context.add_init_script(NO_WEBRTC)  # runs in the component's frame too
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        pg.sent = []  # sizes of what the page sends the server over its websockets
        pg.errors = []
        pg.on("websocket", lambda ws: ws.on("framesent", lambda payload: pg.sent.append(len(payload))))
        pg.on("pageerror", lambda exc: pg.errors.append(str(exc)))
        yield pg
        context.close()
        browser.close()


def metric(page, label: str) -> str:
    name = page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    box = page.get_by_test_id("stMetric").filter(has=name)
    return box.get_by_test_id("stMetricValue").inner_text(timeout=2000).strip()


def component(page):
    page.wait_for_selector("iframe[title*='browser_live']", timeout=60_000)
    return next(f for f in page.frames if "browser_live" in f.url)


def browser_mode(page, server):
    """The component's frame, the Live page in the browser mode with the camera started. Each test may be
    the first on its page: ``-n 2`` spreads a module's tests over two workers, each with its own fixtures."""
    if "/live" in page.url:
        return component(page)
    page.goto(f"{server['url']}/live")
    page.get_by_text("In your browser", exact=True).click()  # localhost defaults to the server mode
    frame = component(page)
    start = frame.get_by_role("button", name="Start")
    sync_api.expect(start).to_be_enabled(timeout=60_000)  # the models arrived
    start.click()
    return frame


def test_browser_mode_draws_labels_without_webrtc(page, server):
    frame = browser_mode(page, server)
    deadline, fps, main = time.time() + 40, 0.0, ""
    while time.time() < deadline:
        try:
            fps, main = float(metric(page, "Processed frames/s")), metric(page, "Main face")
        except (ValueError, sync_api.Error):  # the panel is being redrawn
            fps, main = 0.0, ""
        if fps > 0 and re.match(LABEL, main):
            break
        page.wait_for_timeout(500)
    assert fps > 0 and re.match(LABEL, main), server["log"].read_text()[-3000:]
    assert frame.evaluate("window.ferLive.drawn") > 0  # boxes and labels drawn on the page's canvas
    sync_api.expect(page.get_by_text("The shipped model runs here as its 8-bit copy")).to_be_visible()
    assert frame.evaluate("window.RTCPeerConnection.name") == "blockedRTCPeerConnection"
    assert page.evaluate("window.__rtcCalls") == 0 and frame.evaluate("window.__rtcCalls") == 0
    assert page.sent, "the page sent nothing over its websocket"
    assert max(page.sent) < IMAGE_BYTES, f"the page sent {max(page.sent)} bytes in one message"
    assert not [e for e in page.errors if "ResizeObserver" not in e], page.errors


def test_calibration_snapshots_from_the_browser_mode(page, server):
    """Only while capturing do the summaries carry the main face's 48x48 crop: the snapshots arrive."""
    browser_mode(page, server)
    page.get_by_text("Calibrate to my face").click()
    page.get_by_role("button", name="Start capture").click()
    calibrate = page.get_by_role("button", name="Calibrate on 5 snapshot(s)")
    sync_api.expect(calibrate).to_be_visible(timeout=40_000)  # the first emotion's five snapshots arrived
    assert max(page.sent) < IMAGE_BYTES and page.evaluate("window.__rtcCalls") == 0


def test_browser_mode_gives_the_servers_answer(page, server, frames):
    """The recorded frames through the page's own pipeline and through the same recipe in Python (the live
    profile's first model alone, :func:`fer.browser_models.browser_profile`)."""
    import fer
    from fer.browser_models import browser_profile
    from fer.results import iou_matrix

    frame = browser_mode(page, server)
    frame.get_by_role("button", name="Stop").click()  # the camera's pipeline would share the CPU
    js = []
    for f in frames:
        rgba = cv2.cvtColor(f, cv2.COLOR_BGR2RGBA)
        js.append(frame.evaluate(
            """async ([b64, w, h]) => {
                const data = await fetch(`data:application/octet-stream;base64,${b64}`);
                const bytes = new Uint8Array(await data.arrayBuffer());
                return (await window.ferLive.analyse(bytes, w, h)).raw;
            }""", [base64.b64encode(rgba.tobytes()).decode(), f.shape[1], f.shape[0]]))
    stream = fer.EmotionRecognizer(browser_profile(), profile="live").stream()
    n = same = 0
    worst = 0.0
    for f, faces in zip(frames, js):
        found = stream.process(f)
        assert len(found) == len(faces), ([r.box for r in found], [j["box"] for j in faces])
        for r in found:
            overlaps = [iou_matrix(np.array([r.box]), np.array([j["box"]]))[0, 0] for j in faces]
            assert overlaps and max(overlaps) >= 0.8, (r.box, [j["box"] for j in faces])
            j = faces[int(np.argmax(overlaps))]
            n, same = n + 1, same + (j["emotion"] == r.emotion)
            worst = max(worst, float(np.abs(np.array(j["probs"]) - [r.scores[e] for e in fer.EMOTIONS]).max()))
    print(f"parity: {n} faces, same label on {same} ({same / max(n, 1):.1%}), "
          f"largest probability difference {worst:.4f}")
    assert n >= len(frames) and same >= 0.97 * n
