"""fer.video, ui.video and the "Analyze video" page, on real faces pasted into generated clips."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import cv2
import numpy as np
import pytest

import scenes
from fer.faces import Face
from fer.labels import EMOTIONS
from fer.video import (
    CSV_FIELDS,
    VideoInfo,
    VideoLimits,
    analyze_video,
    interpolate_face,
    pair_faces,
    probe_video,
    write_video,
)

FRAMES, FPS, SIZE = 20, 10.0, (320, 240)


def clip_frames(frames: int = FRAMES, size=SIZE, second_from: int = 9) -> list[np.ndarray]:
    """Grace Hopper drifting right; the astronaut appears at frame ``second_from``."""
    out = []
    for i in range(frames):
        canvas = scenes.background(size)
        scenes.paste(canvas, "grace_hopper.jpg", (90 + 4 * i, 120), 70)
        if i >= second_from:
            scenes.paste(canvas, "astronaut.jpg", (250, 110), 55)
        out.append(canvas)
    return out


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", clip_frames(), FPS)


def read_back(path: Path) -> list[np.ndarray]:
    cap, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def test_written_video_is_h264_and_decodes_back(clip, tmp_path):
    import av

    with av.open(str(clip)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    frames = read_back(clip)
    assert len(frames) == FRAMES and frames[0].shape == (240, 320, 3)
    assert np.abs(frames[5].astype(int) - clip_frames()[5]).mean() < 6  # lossy, but the same picture
    odd = write_video(tmp_path / "odd.webm", [np.full((51, 75, 3), 128, np.uint8)] * 3, 5)
    with av.open(str(odd)) as container:
        assert container.streams.video[0].codec_context.name == "vp8"
    assert [f.shape for f in read_back(odd)] == [(52, 76, 3)] * 3  # padded to even sizes
    with pytest.raises(ValueError, match="ending in .mp4 or .webm"):
        write_video(tmp_path / "x.avi", clip_frames(1), 5)


def test_analyze_video_tracks_classifies_and_annotates(recognizer, clip, tmp_path):
    calls = []
    out = tmp_path / "annotated.mp4"
    result = analyze_video(recognizer, clip, out, progress=lambda done, total: calls.append((done, total)))
    assert result.frames == FRAMES and not result.cancelled and result.output == out
    assert FRAMES // 3 <= result.detected_frames < FRAMES  # key frames, plus the gap where a face appeared
    naive = [len(recognizer.detect(f)) for f in read_back(clip)]
    per_frame = [sum(r[0] == i for r in result.rows) for i in range(FRAMES)]
    assert per_frame == naive and naive[0] == 1 and naive[-1] == 2
    moving = {r[2] for r in result.rows if r[3] < 200}
    assert moving == {1} and {r[2] for r in result.rows if r[3] >= 200} == {2}
    for r in result.rows:  # each face's probabilities come from its own crop on that frame
        assert r[7] == EMOTIONS[int(np.argmax(r[9:]))] and abs(sum(r[9:]) - 1) < 1e-4
    assert calls[-1] == (FRAMES, FRAMES) and [c[0] for c in calls] == sorted(c[0] for c in calls)
    annotated = read_back(out)
    assert len(annotated) == FRAMES and np.abs(annotated[0].astype(int) - read_back(clip)[0]).mean() > 0.5


def test_key_frame_faces_follow_the_detector(recognizer, clip):
    """Interpolated boxes stay close to what the detector finds on those frames."""
    from fer.inference import iou_matrix

    result = analyze_video(recognizer, clip, detect_every=4)
    every = analyze_video(recognizer, clip, detect_every=1)
    assert every.detected_frames == FRAMES and result.detected_frames < FRAMES
    assert len(result.rows) == len(every.rows)
    for a, b in zip(result.rows, every.rows):
        assert a[:3] == b[:3]
        assert iou_matrix(np.array([a[3:7]]), np.array([b[3:7]]))[0, 0] > 0.8


def test_summary_csv_and_timeline(recognizer, clip):
    result = analyze_video(recognizer, clip)
    summary = result.summary()
    assert [s["face"] for s in summary] == [1, 2]
    assert summary[0]["frames"] == FRAMES and summary[1]["frames"] == FRAMES - 9
    assert summary[1]["seconds"] == pytest.approx((FRAMES - 9) / FPS) and summary[1]["first_s"] == 0.9
    for s in summary:
        assert sum(s[e] for e in EMOTIONS) == pytest.approx(1.0)
        labels = [r[7] for r in result.rows if r[2] == s["face"]]
        assert s[s["main emotion"]] == max(labels.count(e) for e in EMOTIONS) / len(labels)
    rows = list(csv.DictReader(io.StringIO(result.csv_text())))
    assert list(rows[0]) == CSV_FIELDS and len(rows) == len(result.rows)
    assert float(rows[-1]["time_s"]) == pytest.approx((FRAMES - 1) / FPS)
    times, scores = result.timeline(2)
    assert times[0] == 0.9 and len(scores) == FRAMES - 9 and set(scores[0]) == set(EMOTIONS)


def test_limits_refuse_before_any_work(recognizer, clip, tmp_path):
    info = probe_video(clip)
    assert (info.width, info.height, info.frames) == (320, 240, FRAMES) and info.fps == pytest.approx(FPS)
    assert info.duration_s == pytest.approx(2.0) and 0 < info.size_mb < 1
    out, calls = tmp_path / "never.mp4", []
    cases = [(VideoLimits(max_mb=info.size_mb / 2), "MB limit"), (VideoLimits(max_seconds=1.5), "1.5 s limit"),
             (VideoLimits(max_frames=10), "10 frame limit")]
    for limits, message in cases:
        with pytest.raises(ValueError, match=message):
            analyze_video(recognizer, clip, out, limits=limits, progress=lambda *a: calls.append(a))
    assert not calls and not out.exists()
    with pytest.raises(ValueError, match="20 frames, over the 12 frame limit"):
        VideoLimits(max_frames=12).check_running(20, FPS)  # a container that understated its length


def test_cancel_bad_files_and_arguments(recognizer, clip, tmp_path):
    result = analyze_video(recognizer, clip, tmp_path / "part.mp4", cancel=lambda: True)
    assert result.cancelled and 0 < result.frames < FRAMES and len(read_back(tmp_path / "part.mp4")) == result.frames
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(ValueError, match="cannot open video notes.mp4"):
        analyze_video(recognizer, text)
    with pytest.raises(ValueError, match="no such file"):
        probe_video(tmp_path / "missing.mp4")
    with pytest.raises(ValueError, match="detect_every=0"):
        analyze_video(recognizer, clip, detect_every=0)
    with pytest.raises(ValueError, match="ending in .mp4 or .webm"):
        analyze_video(recognizer, clip, tmp_path / "out.avi")


def test_pairing_and_interpolation():
    a = Face((100, 100, 50, 60), 0.9, ((110.0, 120.0), (140.0, 120.0)), ((110.0, 120.0), (140.0, 120.0)))
    b = Face((110, 104, 50, 60), 0.7, ((120.0, 124.0), (150.0, 124.0)), ((120.0, 124.0), (150.0, 124.0)))
    far = Face((300, 100, 50, 60), 0.9)
    mid = interpolate_face(a, b, 0.5)
    assert mid.box == (105, 102, 50, 60) and mid.score == pytest.approx(0.8)
    assert mid.eyes == ((115.0, 122.0), (145.0, 122.0)) and mid.landmarks == mid.eyes
    assert pair_faces([a, far], [far, b]) == [(a, b), (far, far)]
    assert pair_faces([a], [far]) is None and pair_faces([a], [a, far]) is None and pair_faces([], []) == []


# ---------------------------------------------------------------- the app's side


def test_ui_limits_from_secrets_and_env():
    from fer.app_services.settings import Settings

    def limits(secrets, env):
        return Settings.load(secrets, env).video_limits

    assert limits({}, {}) == VideoLimits(max_mb=200, max_seconds=300)
    assert limits({"fer_max_video_mb": 5}, {"FER_MAX_VIDEO_MB": "9", "FER_MAX_VIDEO_SECONDS": "30"}) == \
        VideoLimits(max_mb=5, max_seconds=30)
    with pytest.raises(ValueError, match="FER_MAX_VIDEO_SECONDS must be positive"):
        limits({}, {"FER_MAX_VIDEO_SECONDS": "0"})
    with pytest.raises(ValueError, match="FER_MAX_VIDEO_MB must be a number"):
        limits({}, {"FER_MAX_VIDEO_MB": "lots"})


def test_process_upload_leaves_no_files(recognizer, clip, tmp_path, monkeypatch):
    import tempfile

    from ui import video as videos

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    outcome = videos.process_upload(recognizer, "../../etc/holiday.MOV", clip.read_bytes(),
                                    VideoLimits(max_mb=10, max_seconds=10))
    assert list(tmp_path.iterdir()) == []  # the working folder is gone
    assert outcome.video_name == "holiday_annotated.mp4" and outcome.csv_name == "holiday_emotions.csv"
    assert len(read_back_bytes(outcome.video, tmp_path)) == FRAMES
    assert outcome.csv.decode().splitlines()[0] == ",".join(CSV_FIELDS)
    assert [r["face"] for r in videos.summary_rows(outcome)] == ["#1", "#2"]
    assert list(videos.busiest_tracks(outcome, 1)) == [1]
    with pytest.raises(ValueError, match="over the 0.001 MB limit"):
        videos.process_upload(recognizer, "big.mp4", clip.read_bytes(), VideoLimits(max_mb=0.001))
    with pytest.raises(ValueError, match="cannot open video x.mp4"):
        videos.process_upload(recognizer, "x.mp4", b"\x00" * 100, VideoLimits())
    assert list(tmp_path.iterdir()) == [] and isinstance(outcome.info, VideoInfo)


def read_back_bytes(data: bytes, folder: Path) -> list[np.ndarray]:
    path = folder / "check.mp4"
    path.write_bytes(data)
    try:
        return read_back(path)
    finally:
        path.unlink()


def test_video_page_analyses_an_upload_and_refuses_long_ones(app_with_model, monkeypatch, clip):
    import json

    from streamlit.testing.v1 import AppTest

    from app_helpers import REPO

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=240).run()
    at.switch_page("app_pages/video.py").run()
    assert not at.exception and "Upload a video" in at.info[0].value
    assert any("never stored" in c.value for c in at.caption)
    at.file_uploader(key="video_upload").set_value(("clip.mp4", clip.read_bytes(), "video/mp4")).run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error
    assert {m.label: m.value for m in at.metric}["Faces tracked"] == "2"
    assert len(at.get("video")) == 1
    assert [b.label for b in at.get("download_button")] == ["Download the annotated video", "Per-frame emotions (CSV)"]
    table = at.dataframe[0].value
    assert list(table["face"]) == ["#1", "#2"] and set(EMOTIONS) <= set(table.columns)
    (timeline,) = [json.loads(el.proto.spec) for el in at.get("plotly_chart")]
    assert len(timeline["data"]) == 2 * len(EMOTIONS)  # 7 lines per tracked face
    monkeypatch.setenv("FER_MAX_VIDEO_SECONDS", "1")
    at.file_uploader(key="video_upload").set_value(("again.mp4", clip.read_bytes(), "video/mp4")).run()
    assert not at.exception
    assert "over the 1 s limit" in at.error[0].value and not at.get("video")
