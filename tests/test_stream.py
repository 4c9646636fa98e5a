"""The live path: EmotionRecognizer(profile="live").stream().process(frame) over sequences of frames."""

from __future__ import annotations

import numpy as np
import pytest

import scenes
from fer.labels import EMOTIONS


@pytest.fixture(scope="module")
def live():
    from fer.inference import EmotionRecognizer

    return EmotionRecognizer(profile="live")


@pytest.fixture(scope="module")
def moving():
    return scenes.moving_face(40)


def test_stream_follows_a_moving_face_with_one_id_and_few_detections(live, moving):
    stream = live.stream(detect_every=5)
    results = [stream.process(s.image) for s in moving]
    assert all(len(r) == 1 for r in results)
    assert {r[0].track_id for r in results} == {1}
    ious = [scenes.iou(r[0].box, s.boxes[0]) for r, s in zip(results, moving)]
    assert min(ious) >= 0.5, ious
    assert stream.stats.frames == 40 and stream.stats.detections <= 40 // 5 + 2
    assert stream.stats.refine_skipped >= 1  # the eyes were stable at some scheduled detection


def test_stream_gives_analyze_results(live, moving):
    from fer.inference import FaceResult

    stream = live.stream()
    for scene in moving[:10]:
        got, want = stream.process(scene.image), live.analyze(scene.image)
        assert len(got) == len(want) == 1
        g, w = got[0], want[0]
        assert isinstance(g, FaceResult) and list(g.scores) == list(EMOTIONS)
        assert g.crop.shape == (48, 48) and g.crop.dtype == np.uint8
        assert abs(sum(g.scores.values()) - 1) < 1e-4 and g.emotion == max(g.scores, key=g.scores.get)
        assert scenes.iou(g.box, w.box) >= 0.7
        assert np.hypot(*np.subtract(g.eyes[0], w.eyes[0])) <= 0.05 * w.box[2]


def test_onnx_and_keras_backends_agree(live, moving):
    a, b = live.stream(backend="onnx"), live.stream(backend="keras")
    for scene in moving[:8]:
        pa, pb = a.process(scene.image)[0], b.process(scene.image)[0]
        assert pa.box == pb.box
        assert max(abs(pa.scores[e] - pb.scores[e]) for e in EMOTIONS) <= 1e-3


def test_lost_track_is_detected_again_on_the_same_frame(live):
    left, right = scenes.background(), scenes.background()
    box_left = scenes.paste(left, "grace_hopper.jpg", (200, 240), 170)
    box_right = scenes.paste(right, "grace_hopper.jpg", (460, 240), 170)
    stream = live.stream(detect_every=30)
    assert scenes.iou(stream.process(left)[0].box, box_left) >= 0.5
    jumped = stream.process(right)  # the face jumps 260 px: optical flow cannot follow it
    assert stream.stats.redetections == 1 and stream.stats.detections == 2
    assert len(jumped) == 1 and scenes.iou(jumped[0].box, box_right) >= 0.5


def test_a_face_that_leaves_is_gone_by_the_next_detection(live, moving):
    stream = live.stream(detect_every=3)
    for scene in moving[:4]:
        stream.process(scene.image)
    empty = [stream.process(scenes.background()) for _ in range(3)]
    assert empty[-1] == []


def test_small_faces_fall_back_to_the_larger_detector_input(live):
    scene = scenes.grid(40, 4, 2)  # 40 px faces: too small for CenterFace at 160x120
    stream = live.stream(detect_size=160)
    found = stream.process(scene.image)
    assert stream.stats.fallbacks == 1
    assert scenes.match([r.box for r in found], scene.boxes)[0] >= 6


def test_every_face_of_a_frame_in_one_stream(live):
    scene = scenes.group(1)
    stream = live.stream()
    first = stream.process(scene.image)
    second = stream.process(scene.image)
    assert len(first) == len(second) == len(scene.boxes)
    assert sorted(r.track_id for r in first) == sorted(r.track_id for r in second) == list(range(1, 6))


def test_a_new_frame_size_starts_afresh(live, moving):
    stream = live.stream()
    stream.process(moving[0].image)
    small = np.ascontiguousarray(moving[1].image[::2, ::2])
    out = stream.process(small)
    assert len(out) == 1 and stream.stats.detections == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"detect_every": 0}, "detect_every=0 must be 1 or more"),
    ({"detect_size": 8}, "detect_size=8 is too small"),
    ({"backend": "tensorrt"}, "backend='tensorrt' is unknown"),
    ({"min_score": 0}, "min_score=0.0 is outside"),
])
def test_bad_options_say_what_to_use(live, kwargs, message):
    with pytest.raises(ValueError, match=message):
        live.stream(**kwargs)


def test_frames_without_a_face_run_the_detector_every_nth_frame_only(live, moving):
    stream = live.stream(detect_every=4)
    empty = [stream.process(scenes.background()) for _ in range(8)]
    assert empty == [[]] * 8 and stream.stats.detections == 2  # frames 1 and 5
    found = [stream.process(s.image) for s in moving[:4]]  # a face walks in
    assert found[-1] and stream.stats.detections == 3
