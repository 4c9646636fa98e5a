"""End to end in Chromium: "Why this label?" on the photo page, and the "Analyze video" page.

Same set-up as test_e2e_browser.py (its fixtures and helpers are imported from there): a
``streamlit run app.py`` server on the small test model, Debian's Chromium through Playwright.
``FER_E2E_MODEL=models/fer_default.keras python -m pytest tests/e2e/test_e2e_video_explain.py``
writes docs/screenshots/explain.png and video.png.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from test_e2e_browser import browser, expect, no_exception, open_page, page, pytestmark, server, shot, shots, wait_idle  # noqa: F401

import scenes
from app_helpers import face_photo
from fer.labels import EMOTIONS
from fer.video import CSV_FIELDS, write_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """4 s at 10 frames/s, 640x480: two real faces, the astronaut drifting, Grace Hopper from 1.5 s."""
    frames = []
    for i in range(40):
        canvas = scenes.background((640, 480))
        scenes.paste(canvas, "astronaut.jpg", (220 + 40 * np.sin(i / 6), 230), 130)
        if i >= 15:
            scenes.paste(canvas, "grace_hopper.jpg", (470, 220), 110)
        frames.append(canvas)
    return write_video(tmp_path_factory.mktemp("clip") / "two_faces.mp4", frames, 10.0)


def test_why_this_label_shows_an_overlay_per_face(page, server, shots):
    open_page(page, server, "analyze")
    page.get_by_text("Why this label?").click()
    wait_idle(page)
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(face_photo()))
    why = page.get_by_text(re.compile(r"^why (angry|disgust|fear|happy|sad|surprise|neutral): red = what drove it$"))
    why.wait_for(timeout=180_000)
    wait_idle(page)
    no_exception(page)
    expect(why).to_have_count(1)
    card = page.get_by_text(re.compile(r"^(angry|disgust|fear|happy|sad|surprise|neutral) · \d+%"))
    assert why.inner_text().split()[1].rstrip(":") == card.inner_text().split()[0]  # explains the shown label
    images = page.get_by_test_id("stImage")
    expect(images).to_have_count(3)  # the annotated photo, the overlay, the face crop
    overlay = images.nth(1).locator("img")
    expect(overlay).to_have_js_property("naturalWidth", 144)  # loaded, full size
    page.locator(".js-plotly-plot .barlayer").first.wait_for()
    shot(page, shots, "explain.png")


def test_analyze_a_video_file(page, server, shots, clip):
    open_page(page, server, "video")
    expect(page.get_by_text(re.compile("never stored"))).to_be_visible()
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(clip))
    page.get_by_role("button", name="Download the annotated video").wait_for(timeout=300_000)
    wait_idle(page)
    no_exception(page)
    video = page.locator("video")
    expect(video).to_have_count(1)
    page.wait_for_function("() => document.querySelector('video').readyState >= 2", timeout=30_000)
    assert video.evaluate("v => [v.videoWidth, v.videoHeight]") == [640, 480]  # Chromium decodes it
    assert video.evaluate("v => v.duration") == pytest.approx(4.0, abs=0.2)
    video.evaluate("v => { v.muted = true; return v.play(); }")
    page.wait_for_function("() => document.querySelector('video').currentTime > 0.3", timeout=30_000)
    expect(page.get_by_test_id("stMetricValue").filter(has_text=re.compile("^2$"))).to_have_count(1)  # 2 faces
    page.locator(".js-plotly-plot .scatterlayer").first.wait_for()  # the timeline
    expect(page.locator(".js-plotly-plot .scatterlayer .trace")).to_have_count(2 * len(EMOTIONS))
    expect(page.get_by_test_id("stDataFrame")).to_have_count(1)  # the per-face summary
    with page.expect_download() as dl:
        page.get_by_role("button", name="Per-frame emotions (CSV)").click()
    lines = Path(dl.value.path()).read_text().splitlines()
    assert lines[0] == ",".join(CSV_FIELDS) and len(lines) == 1 + 40 + 25  # one row per face per frame
    video.evaluate("v => { v.pause(); v.currentTime = 2.5; }")
    page.wait_for_timeout(1000)
    shot(page, shots, "video.png")
