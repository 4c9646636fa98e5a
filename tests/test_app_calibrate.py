"""The live page's "Calibrate to my face" section through AppTest, on the small test model.

AppTest has no browser, so no camera: the snapshots come from the page's own LiveProcessor fed a
real photograph (what the frame callback does), through the capture state machine.
"""

from pathlib import Path

import cv2

from app_helpers import face_photo, write_fer_folder
from fer.modelfile import read_card
from test_app_pages import app, env, metrics, no_crash  # noqa: F401 - env is a fixture

__all__ = ["env"]


def capture(at, emotions=("happy", "surprise"), shots=3) -> None:
    """Take ``shots`` snapshots per emotion of the face in the test photo, as the page's fragment would."""
    processor, session = at.session_state["live_processor"], at.session_state["calib_capture"]
    frame = cv2.imread(str(face_photo()))
    t = 1000.0
    for emotion in emotions:
        session.retake(emotion, now=t)
        while session.active:
            t += 0.5
            processor.process(frame)
            crop, _ = processor.latest_face()
            session.tick(t, (crop, t))
        assert len(session.snapshots[emotion]) == shots


def test_capture_calibrate_save_and_use(env):
    at = app("live")
    no_crash(at)
    assert any("never stored" in c.value for c in at.caption)  # the privacy note
    assert at.button(key="calib_start").disabled  # no camera under AppTest
    assert at.button(key="calib_run").disabled  # nothing captured yet
    at.session_state["calib_capture"].shots = 3
    capture(at)
    at.run()
    no_crash(at)
    assert at.button(key="calib_run").label == "Calibrate on 6 snapshot(s)"
    assert len([b for b in at.button if b.key and b.key.startswith("calib_del_")]) == 6
    assert any("No FER2013 replay matches this model" in w.value for w in at.warning)

    at.button(key="calib_run").click().run()
    no_crash(at)
    shown = metrics(at)
    assert shown["Held-out snapshots (2)"].endswith("%") and shown["FER2013 public test"] == "not measured"

    # a replay from the data folder: then the public test accuracy is measured before and after
    write_fer_folder(Path(env["FER_DATA_DIR"]))
    at.run()
    at.button(key="calib_make_replay").click().run()
    no_crash(at)
    assert (env["models"] / "fer_default.replay.npz").is_file()
    at.button(key="calib_run").click().run()
    no_crash(at)
    public = metrics(at)["FER2013 public test"]
    assert public.endswith("%"), public

    at.button(key="calib_save").click().run()
    no_crash(at)
    saved = env["models"] / "fer_personal_v1.keras"
    assert saved.is_file() and "Personal calibration of fer_default.keras with 6" in read_card(saved).notes
    assert any("fer_personal_v1.keras" in s.value for s in at.success)
    at.button(key="calib_use").click().run()
    no_crash(at)
    assert at.session_state["model_path"] == str(saved)
    assert at.sidebar.selectbox[0].value == str(saved)


def test_delete_retake_and_zip(env):
    at = app("live")
    at.session_state["calib_capture"].shots = 2
    capture(at, emotions=("sad",), shots=2)
    at.run()
    dels = [b for b in at.button if b.key and b.key.startswith("calib_del_")]
    assert len(dels) == 2
    dels[0].click().run()
    no_crash(at)
    assert at.session_state["calib_capture"].counts()["sad"] == 1
    labels = [b.proto.label for b in at.get("download_button")]  # the timeline's CSV comes first
    assert any(label.startswith("Save the snapshots as a dataset") for label in labels), labels
    at.button(key="calib_reset").click().run()
    assert at.session_state["calib_capture"].total() == 0
