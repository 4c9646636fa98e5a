"""End to end: "Calibrate to my face" on the live page, with Chromium's fake camera showing a real face.

Uses the fixtures and helpers of test_e2e_browser (its own server and browser, started for this
module). On the shipped model (``FER_E2E_MODEL=models/fer_default.keras``) it also copies the
model's replay file, so the report shows the FER2013 public test accuracy before and after, and
writes docs/screenshots/calibrate.png.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

from test_e2e_browser import (  # noqa: F401 - fixtures
    browser,
    metric,
    metrics,
    model_choice,
    no_exception,
    open_page,
    page,
    pytestmark,
    server,
    shot,
    shots,
    sync_api,
    wait_idle,
)

from fer.calibrate import replay_path
from fer.modelfile import read_card

expect = sync_api.expect


def start_camera(page) -> None:
    frame = page.frame_locator("iframe[title*='webrtc_streamer']")
    frame.get_by_role("button", name=re.compile("^start$", re.I)).click()
    deadline, shown = time.time() + 90, {}
    while time.time() < deadline:
        shown = metrics(page)  # one snapshot: the panel is redrawn every second
        if float(shown.get("Processed frames/s", "0")) > 0 and shown.get("Faces", "0") not in ("0", "–"):
            return
        page.wait_for_timeout(500)
    raise AssertionError(f"the camera stream did not start; the panel showed {shown}")


def wait_text(page, server, text: str, timeout: float = 90_000) -> None:
    """Wait for ``text``; on a timeout keep a screenshot and the server log's tail for the failure message."""
    try:
        page.get_by_text(text).wait_for(timeout=timeout)
    except sync_api.TimeoutError:
        page.screenshot(path=str(server["root"] / "calibrate_failure.png"), full_page=True)
        raise AssertionError(f"no {text!r} on the page (screenshot {server['root']}/calibrate_failure.png); "
                             f"server log: {server['log'].read_text()[-2000:]}") from None


def test_calibrate_to_my_face(page, server, shots, model_path):
    source = Path(os.environ.get("FER_E2E_MODEL") or model_path)
    if replay_path(source).is_file():
        shutil.copyfile(replay_path(source), server["models"] / "fer_default.replay.npz")
    open_page(page, server, "live")
    start_camera(page)
    wait_idle(page)
    page.get_by_text("Calibrate to my face").click()
    page.get_by_role("button", name="Start capture").click()
    wait_text(page, server, "5 snapshots of happy taken.")
    wait_idle(page)
    page.get_by_role("button", name="Next emotion").click()
    wait_text(page, server, "5 snapshots of surprise taken.")
    wait_idle(page)
    page.get_by_role("button", name="Retake surprise").wait_for()
    expect(page.get_by_test_id("stExpander").get_by_test_id("stImage")).to_have_count(10)  # the gallery
    page.get_by_role("button", name="Calibrate on 10 snapshot(s)").click()
    page.get_by_text(re.compile(r"^Calibration of ")).wait_for(timeout=180_000)
    wait_idle(page)
    no_exception(page)
    assert re.match(r"^\d+%$", metric(page, "Held-out snapshots (4)"))
    public = metric(page, "FER2013 public test")
    assert re.match(r"^\d+\.\d%$", public) if replay_path(source).is_file() else public == "not measured"
    with page.expect_download() as dl:
        page.get_by_role("button", name="Save the snapshots as a dataset (zip)").click()
    assert Path(dl.value.path()).stat().st_size > 1000
    page.get_by_role("button", name="Save as personal model").click()
    page.get_by_text("Saved as fer_personal_v1.keras").wait_for()
    saved = server["models"] / "fer_personal_v1.keras"
    assert saved.is_file() and "with 10 webcam snapshots" in read_card(saved).notes
    wait_idle(page)
    shot(page, shots, "calibrate.png")
    page.get_by_role("button", name="Use it now").click()
    wait_idle(page)
    assert model_choice(page).startswith("fer_personal_v1 (vgg")
    no_exception(page)
