"""End to end: Debian's Chromium, driven by Playwright, against ``streamlit run app.py`` on localhost.

Needs the ``chromium`` Debian package (/usr/bin/chromium, or FER_CHROMIUM) and the ``playwright``
Python package; Playwright's own browser downloads are not used. Skipped when either is missing.
The tests run on the small test model and take a screenshot of every page into a temporary
folder. To refresh the documentation's screenshots, run them on the shipped model:
``FER_E2E_MODEL=models/fer_default.keras python -m pytest tests/e2e`` writes docs/screenshots/
(``FER_SCREENSHOTS=DIR`` picks another folder).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from app_helpers import REPO, app_env, class_zip, face_photo
from fer.modelfile import card_path, read_card
from streamlit_server import app_command, streamlit_server

CHROMIUM = os.environ.get("FER_CHROMIUM", "/usr/bin/chromium")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream"]

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (its Python API only)")
expect = sync_api.expect
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                                                   reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")]


def write_y4m(path: Path, image_bgr: np.ndarray, frames: int = 12, size=(640, 480)) -> Path:
    """A short Y4M video of a photo drifting a few pixels, for Chromium's fake camera."""
    w, h = size
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            canvas = np.full((h, w, 3), 90, np.uint8)
            ih, iw = image_bgr.shape[:2]
            scale = min((h - 20) / ih, (w - 40) / iw)
            small = cv2.resize(image_bgr, (int(iw * scale), int(ih * scale)), interpolation=cv2.INTER_AREA)
            x0, y0 = (w - small.shape[1]) // 2 + (i % 6) * 2, (h - small.shape[0]) // 2
            canvas[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
            f.write(b"FRAME\n" + cv2.cvtColor(canvas, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_path):
    """``streamlit run app.py`` on a free localhost port, on a copy of the small test model."""
    root = tmp_path_factory.mktemp("e2e")
    source = Path(os.environ.get("FER_E2E_MODEL") or model_path)
    default = root / "models" / "fer_default.keras"
    default.parent.mkdir(parents=True)
    shutil.copyfile(source, default)
    shutil.copyfile(card_path(source), card_path(default))
    env = {**os.environ, **app_env(root, default), "TF_CPP_MIN_LOG_LEVEL": "2"}
    with streamlit_server(app_command(), cwd=REPO, env=env, log=root / "server.log", timeout=90) as url:
        yield {"url": url, "root": root, "models": default.parent, "default": default, "log": root / "server.log"}


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    if os.environ.get("FER_SCREENSHOTS"):
        return Path(os.environ["FER_SCREENSHOTS"])
    if os.environ.get("FER_E2E_MODEL"):
        return REPO / "docs" / "screenshots"
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    video = write_y4m(tmp_path_factory.mktemp("camera") / "face.y4m", cv2.imread(str(face_photo())))
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=[*BROWSER_ARGS, f"--use-file-for-fake-video-capture={video}"])
        yield b
        b.close()


@pytest.fixture()
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, permissions=["camera"])
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not [e for e in errors if "ResizeObserver" not in e], errors


def open_page(page, server, path: str = "") -> None:
    page.goto(f"{server['url']}/{path}")
    page.get_by_test_id("stApp").wait_for()
    wait_idle(page)


def wait_idle(page, timeout: float = 120) -> None:
    """Wait until the current script run has finished (Streamlit marks its state on the app root)."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        "['notRunning', 'initial'].includes(document.querySelector('[data-testid=stApp]')"
        ".getAttribute('data-test-script-state'))", timeout=timeout * 1000)


def metric(page, label: str, timeout: float = 30_000) -> str:
    name = page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    box = page.get_by_test_id("stMetric").filter(has=name)
    return box.get_by_test_id("stMetricValue").inner_text(timeout=timeout).strip()


def metrics(page) -> dict[str, str]:
    """Every metric on the page, ``{label: value}``, read at one moment (one script in the page)."""
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('[data-testid=stMetric]')]
        .map(m => [m.querySelector('[data-testid=stMetricLabel]')?.innerText.trim(),
                   m.querySelector('[data-testid=stMetricValue]')?.innerText.trim()]))""")


def model_choice(page) -> str:
    return page.get_by_test_id("stSidebar").get_by_role("combobox", name="Model").input_value()


def shot(page, folder: Path, name: str) -> None:
    """Screenshot of the whole page: the app scrolls inside its main area, so grow the viewport to fit it."""
    folder.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    height = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": min(max(size["height"], height + 40), 5000)})
    page.wait_for_timeout(800)
    page.screenshot(path=str(folder / name))
    assert (folder / name).stat().st_size > 10_000
    page.set_viewport_size(size)


def no_exception(page) -> None:
    assert page.get_by_test_id("stException").count() == 0


def test_home_shows_the_model_card(page, server, shots):
    open_page(page, server)
    page.get_by_role("heading", name="Active model").wait_for()
    card = read_card(server["default"])
    assert metric(page, "Architecture") == "vgg"
    assert metric(page, "Accuracy (public test)") == f"{card.metrics['public_test']['accuracy']:.1%}"
    page.locator(".js-plotly-plot .heatmaplayer").first.wait_for()  # the confusion matrix is drawn
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(4)  # camera conditions, recall, confusion, curves
    expect(page.get_by_role("heading", name="Under camera conditions")).to_be_visible()
    assert model_choice(page).startswith("shipped default (vgg")
    no_exception(page)
    shot(page, shots, "home.png")


def test_analyze_a_face_photo(page, server, shots):
    open_page(page, server, "analyze")
    photo = face_photo()
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(photo))
    caption = page.get_by_text(re.compile(r"\d+×\d+ px · \d+ face\(s\)"))
    caption.wait_for(timeout=120_000)
    page.get_by_role("button", name="Annotated images (zip)").wait_for()
    wait_idle(page)
    no_exception(page)
    expect(caption).to_have_text("512×512 px · 1 face(s)")
    expect(page.get_by_test_id("stImage")).to_have_count(2)  # the annotated photo and the face crop
    annotated = page.get_by_test_id("stImage").first.locator("img")
    expect(annotated).to_have_js_property("naturalWidth", 512)  # full size, loaded
    card = page.get_by_text(re.compile(r"^(angry|disgust|fear|happy|sad|surprise|neutral) · \d+%"))
    expect(card).to_have_count(1)
    expect(card).to_be_visible()
    page.locator(".js-plotly-plot .barlayer").first.wait_for()  # the 7 probabilities are drawn
    for label in ("Download the annotated image", "Results as CSV", "Results as JSON", "Annotated images (zip)"):
        expect(page.get_by_role("button", name=label)).to_be_visible()
    with page.expect_download() as dl:
        page.get_by_role("button", name="Results as CSV").click()
    text = Path(dl.value.path()).read_text()
    assert text.splitlines()[0].startswith("image,face,emotion,score") and f"{photo.name},1," in text
    shot(page, shots, "analyze.png")


def test_live_webcam_with_a_fake_camera(page, server, shots):
    open_page(page, server, "live")
    no_exception(page)
    frame = page.frame_locator("iframe[title*='webrtc_streamer']")
    frame.get_by_role("button", name=re.compile("^start$", re.I)).click()
    label = re.compile(r"^(angry|disgust|fear|happy|sad|surprise|neutral) \d+%$")
    deadline, shown = time.time() + 90, {}
    while time.time() < deadline:
        shown = metrics(page)  # one snapshot: the panel is redrawn every second
        if (shown.get("Faces") == "1" and label.match(shown.get("Main face", ""))
                and float(shown.get("Processed frames/s", "0")) > 0):
            break
        page.wait_for_timeout(500)
    else:
        raise AssertionError(f"no labelled face in 90 s; the panel showed {shown}\n"
                             + server["log"].read_text()[-3000:])
    page.wait_for_timeout(6000)  # a few seconds of timeline
    video = frame.locator("video")
    assert video.evaluate("v => v.videoWidth") == 640  # the processed stream is playing
    no_exception(page)
    shot(page, shots, "live.png")
    frame.get_by_role("button", name=re.compile("^stop$", re.I)).click()


def test_quick_training_run_in_the_browser(page, server, shots, tmp_path):
    zip_path = tmp_path / "my_faces.zip"
    zip_path.write_bytes(class_zip(12))
    open_page(page, server, "train")
    page.get_by_text("Upload a zip of class folders").click()
    wait_idle(page)
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(zip_path))
    wait_idle(page)
    epochs = page.get_by_role("spinbutton", name="Epochs")
    epochs.fill("3")
    epochs.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Start training").click()
    # while it runs (the worker needs well over 10 s to start TensorFlow and compile): progress and Cancel
    expect(page.get_by_role("button", name="Cancel")).to_be_visible()
    expect(page.get_by_test_id("stProgress")).to_have_count(1)
    expect(page.get_by_test_id("stMetricLabel").get_by_text("Remaining (estimate)")).to_have_count(1)
    expect(page.get_by_role("button", name="Start training")).to_be_disabled()
    # first epoch's curves; while a rerun redraws the chart, the old and the new plot can both be in the page
    page.get_by_text("Loss and accuracy per epoch").filter(visible=True).first.wait_for(timeout=400_000)
    if page.get_by_role("button", name="Cancel").count():  # still running: picture it
        shot(page, shots, "train_running.png")
    page.get_by_text("Training finished").first.wait_for(timeout=300_000)
    page.get_by_role("heading", name="Evaluation of the best epoch").wait_for()
    wait_idle(page)
    no_exception(page)
    expect(page.locator(".js-plotly-plot .heatmaplayer")).to_have_count(1)
    assert metric(page, "Images") == "7"  # one per class carved out for validation
    shot(page, shots, "train.png")
    page.get_by_role("button", name="Save as new model").click()
    page.get_by_text("Saved as").first.wait_for()
    saved = server["models"] / "fer_app_v1.keras"
    assert saved.is_file() and read_card(saved).epochs == 3
    page.get_by_role("button", name="Use this model").click()
    page.get_by_text("Every page and every session now uses fer_app_v1.keras").wait_for()
    wait_idle(page)
    assert model_choice(page).startswith("fer_app_v1 (vgg")
