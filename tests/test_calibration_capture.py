"""The guided capture's state machine, the snapshot zip and the personal-model file names (no Streamlit)."""

from __future__ import annotations

import numpy as np
import pytest

from fer.labels import EMOTIONS
from ui.calibration import CaptureSession, next_personal_path, snapshots_zip


def face(value: int) -> np.ndarray:
    return np.full((48, 48), value, np.uint8)


def run_take(s: CaptureSession, t0: float, fps: float = 10.0, seconds: float = 6.0) -> float:
    """Feed a camera at ``fps`` from ``t0`` until the take is over; returns the time it ended."""
    t = t0
    while s.active and t < t0 + seconds:
        t += 1 / fps
        s.tick(t, (face(int(t * 10) % 256), t))
    return t


def test_countdown_then_k_snapshots_spaced_then_review():
    s = CaptureSession(shots=3, countdown_s=3.0, interval_s=0.3)
    assert s.current == "happy" and s.phase == "idle"
    s.start(100.0)
    assert s.phase == "countdown" and s.active
    assert [s.countdown_left(t) for t in (100.0, 101.2, 102.5)] == [3, 2, 1]
    assert not s.tick(102.9, (face(1), 102.9))  # still counting: nothing taken
    assert s.snapshots["happy"] == []
    end = run_take(s, 103.0)
    assert s.phase == "review" and "3 snapshots of happy" in s.message
    times = [snap.t for snap in s.snapshots["happy"]]
    assert len(times) == 3 and all(b - a >= 0.3 - 1e-9 for a, b in zip(times, times[1:]))
    assert end < 104.5
    assert s.counts()["happy"] == 3 and s.total() == 3


def test_same_frame_and_stale_faces_are_not_taken_twice():
    s = CaptureSession(shots=2, countdown_s=0.0, interval_s=0.0, max_age_s=1.0)
    s.start(0.0)
    s.tick(0.0, (face(1), 0.0))
    s.tick(0.5, (face(1), 0.0))  # the same frame again: the camera stalled
    s.tick(2.0, (face(2), 0.5))  # a frame 1.5 s old: stale
    assert len(s.snapshots["happy"]) == 1
    assert s.tick(2.1, (face(3), 2.05))
    assert [int(x.crop[0, 0]) for x in s.snapshots["happy"]] == [1, 3]


def test_no_face_gives_up_with_a_message():
    s = CaptureSession(countdown_s=0.0, give_up_s=5.0)
    s.start(0.0)
    assert not s.tick(1.0, None)
    assert s.tick(5.5, None)
    assert s.phase == "review" and "No face" in s.message and s.total() == 0


def test_next_skip_retake_delete_and_finish():
    s = CaptureSession(order=("happy", "sad", "neutral"), shots=2, countdown_s=0.0, interval_s=0.0)
    s.start(0.0)
    run_take(s, 0.0)
    s.next(10.0)
    assert s.current == "sad" and s.phase == "countdown"
    s.skip(11.0)
    assert "sad" in s.skipped and s.current == "neutral" and s.phase == "countdown"
    run_take(s, 11.0)
    s.next(20.0)
    assert s.current is None and s.phase == "finished"
    first = s.snapshots["happy"][0]
    assert s.delete("happy", first.id) and not s.delete("happy", first.id)
    assert s.counts() == {"happy": 1, "sad": 0, "neutral": 2}
    s.retake("sad", now=30.0)
    assert s.current == "sad" and s.phase == "countdown" and "sad" not in s.skipped
    run_take(s, 30.0)
    s.retake(now=40.0)  # the current emotion: its snapshots go, a new take starts
    assert s.snapshots["sad"] == [] and s.phase == "countdown"
    s.stop(41.0)
    assert s.phase == "review" and not s.active


def test_a_click_delivered_twice_does_not_skip_an_emotion():
    s = CaptureSession(order=("happy", "sad", "neutral"), countdown_s=0.0)
    s.next(0.0, expect="happy")
    s.next(0.1, expect="happy")  # the same button's click again, after a rerun
    assert s.current == "sad"
    s.skip(0.2, expect="sad")
    s.skip(0.3, expect="sad")
    assert s.current == "neutral" and s.skipped == {"sad"}


def test_dataset_is_in_label_order_and_capture_order():
    s = CaptureSession(order=("surprise", "angry"), shots=2, countdown_s=0.0, interval_s=0.0)
    s.start(0.0)
    run_take(s, 0.0)
    s.next(5.0)
    run_take(s, 5.0)
    x, y = s.dataset()
    assert x.shape == (4, 48, 48) and x.dtype == np.uint8
    assert y.tolist() == [EMOTIONS.index("angry")] * 2 + [EMOTIONS.index("surprise")] * 2
    assert x[2, 0, 0] < x[3, 0, 0]  # surprise's two snapshots in capture order
    s.reset()
    assert s.total() == 0 and s.dataset()[0].shape == (0, 48, 48) and s.current == "surprise"


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="unknown emotion"):
        CaptureSession(order=("happy", "bored"))
    s = CaptureSession(order=("happy",))
    with pytest.raises(ValueError, match="cannot retake 'sad'"):
        s.retake("sad")
    s.start(0.0)
    s.tick(3.0, None)
    with pytest.raises(ValueError, match=r"expected \(48, 48\) uint8"):
        s.tick(3.1, (np.zeros((48, 48, 3), np.uint8), 3.1))


def test_zip_is_a_class_tree_the_train_page_reads(tmp_path):
    from fer.app_services.archive import dataset_root, safe_extract
    from fer.data import load_dataset

    s = CaptureSession(order=("happy", "fear"), shots=3, countdown_s=0.0, interval_s=0.0)
    s.start(0.0)
    run_take(s, 0.0)
    s.next(5.0)
    run_take(s, 5.0)
    root = dataset_root(safe_extract(snapshots_zip(s), tmp_path / "x", max_bytes=10**7, max_files=100))
    assert sorted(p.name for p in root.iterdir()) == ["fear", "happy"]
    data = load_dataset(root, use_cache=False)
    got = data.split("all")
    x, y = s.dataset()
    assert sorted(got.y.tolist()) == sorted(y.tolist())
    assert sorted(img.tobytes() for img in got.x) == sorted(img.tobytes() for img in x)  # lossless PNGs


def test_personal_model_names_count_up(tmp_path):
    assert next_personal_path(tmp_path).name == "fer_personal_v1.keras"
    (tmp_path / "fer_personal_v1.keras").write_bytes(b"x")
    (tmp_path / "fer_personal_v7.json").write_text("{}")
    (tmp_path / "fer_app_v9.keras").write_bytes(b"x")
    assert next_personal_path(tmp_path).name == "fer_personal_v8.keras"
