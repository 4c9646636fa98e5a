"""EmotionRecognizer (photo/frame -> per-face emotions) and FaceTracker (video smoothing)."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scenes
from fer.faces import crop_faces, detect_faces
from fer.inference import EmotionRecognizer, FaceResult, FaceTracker, iou_matrix
from fer.labels import EMOTIONS
from fer.modelfile import DEFAULT_MODEL
from test_faces import exif_rotated_jpeg


def probs_of(result: FaceResult) -> np.ndarray:
    return np.array([result.scores[e] for e in EMOTIONS])


def test_one_face_result_fields(recognizer):
    image = scenes.load("astronaut.jpg")
    (r,) = recognizer.analyze(image)
    assert scenes.iou(r.box, scenes.FACES["astronaut.jpg"]) >= 0.5
    assert all(isinstance(v, int) for v in r.box)
    assert r.eyes is not None and r.eyes[0][0] < r.eyes[1][0]
    assert 0.5 <= r.detector_score <= 1
    assert list(r.scores) == list(EMOTIONS)
    assert sum(r.scores.values()) == pytest.approx(1.0, abs=1e-4)
    assert r.emotion == max(r.scores, key=r.scores.get) and r.score == r.scores[r.emotion]
    assert r.crop.shape == (48, 48) and r.crop.dtype == np.uint8
    assert r.track_id is None
    d = json.loads(json.dumps(r.to_dict()))
    assert set(d) == {"box", "eyes", "detector_score", "emotion", "score", "scores", "track_id"}
    assert d["box"] == list(r.box)


def test_no_face_gives_empty_list(recognizer):
    assert recognizer.analyze(scenes.load("coffee.jpg")) == []
    assert recognizer.analyze(np.zeros((480, 640, 3), np.uint8)) == []


def test_all_faces_classified_in_one_batch_matching_each_crop(recognizer):
    scene = scenes.group(2)
    results = recognizer.analyze(scene.image)
    assert scenes.match([r.box for r in results], scene.boxes) == (5, 0)
    batch = np.stack([r.crop for r in results])
    one_by_one = np.concatenate([recognizer.classify(c[None]) for c in batch])
    got = np.stack([probs_of(r) for r in results])
    np.testing.assert_allclose(got, one_by_one, atol=1e-5)
    # the crops are those of the faces module, in the same order
    np.testing.assert_array_equal(batch, crop_faces(scene.image, detect_faces(scene.image)))
    # different faces really get different probabilities (so a mix-up would show)
    assert np.abs(got[:, None] - got[None]).sum(-1)[np.triu_indices(5, 1)].min() > 1e-3


def test_classify_checks_shapes_and_handles_empty(recognizer):
    assert recognizer.classify(np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)
    assert recognizer.classify(np.zeros((2, 48, 48, 1), np.uint8)).shape == (2, 7)
    with pytest.raises(ValueError, match=r"\(n, 48, 48\)"):
        recognizer.classify(np.zeros((2, 64, 64), np.uint8))


def test_gray_bgra_and_rgb_frames(recognizer):
    bgr = scenes.load("grace_hopper.jpg")
    ref = recognizer.analyze(bgr)[0]
    for image, kw in [(cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA), {}), (bgr[..., ::-1].copy(), {"channels": "rgb"})]:
        (r,) = recognizer.analyze(image, **kw)
        assert r.box == ref.box
        np.testing.assert_allclose(probs_of(r), probs_of(ref), atol=1e-5)
    (g,) = recognizer.analyze(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    assert scenes.iou(g.box, ref.box) > 0.85


def test_small_faces_in_big_photos_are_found_by_default_or_a_bigger_input_size(recognizer):
    scene = scenes.grid(80, 5, 2, size=(1920, 1440))  # 80 px faces in a 1920 px photo
    one_pass = recognizer.analyze(scene.image, min_face=0)  # 320 alone: the faces shrink to ~13 px
    assert scenes.match([r.box for r in one_pass], scene.boxes)[0] < 10
    for results in (recognizer.analyze(scene.image), recognizer.analyze(scene.image, input_size=960, min_face=0)):
        assert scenes.match([r.box for r in results], scene.boxes) == (10, 0)  # the finer pass, or a bigger first


def test_min_score_is_checked_and_used(recognizer):
    image = scenes.load("astronaut.jpg")
    with pytest.raises(ValueError, match="min_score"):
        recognizer.analyze(image, min_score=1.5)
    assert recognizer.analyze(image, min_score=0.999) == []


def test_analyze_file_applies_exif_orientation(recognizer, tmp_path):
    path = tmp_path / "sideways.jpg"
    path.write_bytes(exif_rotated_jpeg(scenes.load("grace_hopper.jpg")))
    (r,) = recognizer.analyze_file(path)
    assert scenes.iou(r.box, scenes.FACES["grace_hopper.jpg"]) >= 0.5
    with pytest.raises(ValueError, match="not an image: the format is not recognised"):
        recognizer.analyze_file(b"not an image")


def test_concurrent_calls_from_many_threads_give_the_sequential_results(recognizer):
    images = [scenes.load("astronaut.jpg"), scenes.group(1).image, scenes.load("coffee.jpg"),
              scenes.portrait("grace_hopper.jpg", 90, 20).image]
    expected = [[(r.box, probs_of(r)) for r in recognizer.analyze(im)] for im in images]
    jobs = [i % len(images) for i in range(16)]
    start = threading.Barrier(4)

    def work(i: int):
        if i < 4:
            start.wait()  # the first four really start together
        return [(r.box, probs_of(r)) for r in recognizer.analyze(images[i % len(images)])]

    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(work, range(len(jobs))))
    for i, results in zip(jobs, got):
        assert [b for b, _ in results] == [b for b, _ in expected[i]]
        for (_, p), (_, q) in zip(results, expected[i]):
            np.testing.assert_allclose(p, q, atol=1e-5)


def test_model_argument_forms(model_path):
    from fer.modelfile import load_model

    model, card = load_model(model_path)
    rec = EmotionRecognizer((model, card))
    assert rec.card.architecture == "vgg"
    assert EmotionRecognizer(model).card.architecture == model.name
    with pytest.raises(ValueError, match="does not exist"):
        EmotionRecognizer(model_path.parent / "missing.keras")
    with pytest.raises(ValueError, match="model must be"):
        EmotionRecognizer(42)


@pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason="the shipped default model is not trained yet")
def test_shipped_model_sees_the_smiling_astronaut_as_happy():
    (r,) = EmotionRecognizer().analyze(scenes.load("astronaut.jpg"))
    assert r.emotion == "happy"


# ---------------------------------------------------------------- tracker

def fake_result(box, probs) -> FaceResult:
    """A FaceResult as EmotionRecognizer makes them (the tracker only reads box and scores)."""
    probs = np.asarray(probs, float) / np.sum(probs)
    scores = dict(zip(EMOTIONS, probs.tolist()))
    best = max(scores, key=scores.get)
    return FaceResult(tuple(box), None, 0.9, best, scores[best], scores, np.zeros((48, 48), np.uint8))


HAPPY = [0, 0, 0, 1, 0, 0, 0]
SAD = [0, 0, 0, 0, 1, 0, 0]


def test_tracker_keeps_ids_of_moving_faces_and_smooths_with_alpha():
    tracker = FaceTracker(alpha=0.5)
    a0, b0 = fake_result((10, 10, 100, 100), HAPPY), fake_result((300, 20, 80, 80), SAD)
    first = tracker.update([a0, b0])
    assert [r.track_id for r in first] == [1, 2]
    # both move a little, come in the other order; face A turns sad
    second = tracker.update([fake_result((310, 25, 80, 80), SAD), fake_result((20, 15, 100, 100), SAD)])
    assert [r.track_id for r in second] == [2, 1]
    a = second[1]
    assert a.scores["happy"] == pytest.approx(0.5) and a.scores["sad"] == pytest.approx(0.5)
    third = tracker.update([fake_result((25, 15, 100, 100), SAD)])
    assert third[0].track_id == 1 and third[0].scores["sad"] == pytest.approx(0.75)
    assert third[0].emotion == "sad" and third[0].score == pytest.approx(0.75)
    assert a0.track_id is None  # inputs are not modified


def test_tracker_new_face_new_id_and_lost_tracks_expire():
    tracker = FaceTracker(alpha=0.6, max_missed=2)
    (r,) = tracker.update([fake_result((0, 0, 50, 50), HAPPY)])
    assert r.track_id == 1
    for _ in range(2):
        tracker.update([])
    assert tracker.update([fake_result((0, 0, 50, 50), SAD)])[0].track_id == 1  # back within 2 frames
    for _ in range(3):
        tracker.update([])
    assert tracker.update([fake_result((0, 0, 50, 50), SAD)])[0].track_id == 2  # gone for 3: a new face
    far = tracker.update([fake_result((0, 0, 50, 50), SAD), fake_result((400, 0, 50, 50), SAD)])
    assert [r.track_id for r in far] == [2, 3]
    tracker.reset()
    assert tracker.update([fake_result((0, 0, 50, 50), SAD)])[0].track_id == 1


def test_tracker_alpha_one_means_no_smoothing_and_bad_settings_are_refused():
    tracker = FaceTracker(alpha=1.0)
    tracker.update([fake_result((0, 0, 50, 50), HAPPY)])
    assert tracker.update([fake_result((2, 0, 50, 50), SAD)])[0].emotion == "sad"
    for kwargs in ({"alpha": 0}, {"alpha": 1.5}, {"iou_threshold": 1.0}, {"max_missed": -1}):
        with pytest.raises(ValueError):
            FaceTracker(**kwargs)


def test_tracker_on_real_video_frames(recognizer):
    """A face moving across 6 frames keeps one id; its smoothed probabilities stay valid."""
    tracker = FaceTracker()
    ids = []
    for step in range(6):
        canvas = scenes.background()
        scenes.paste(canvas, "astronaut.jpg", (200 + 30 * step, 240), 120)
        (r,) = tracker.update(recognizer.analyze(canvas))
        ids.append(r.track_id)
        assert sum(r.scores.values()) == pytest.approx(1.0, abs=1e-4)
    assert ids == [1] * 6


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(0, 600), st.integers(0, 400), st.integers(5, 200), st.integers(5, 200),
                                   st.integers(0, 6)), max_size=6), min_size=1, max_size=8),
       st.floats(0.05, 1.0))
def test_tracker_invariants_on_random_frames(frames, alpha):
    tracker = FaceTracker(alpha=alpha)
    seen: set[int] = set()
    for frame in frames:
        out = tracker.update([fake_result((x, y, w, h), np.eye(7)[k] + 0.01) for x, y, w, h, k in frame])
        ids = [r.track_id for r in out]
        assert len(set(ids)) == len(ids)  # one face, one track, per frame
        assert [r.box for r in out] == [(x, y, w, h) for x, y, w, h, _ in frame]
        for r in out:
            assert sum(r.scores.values()) == pytest.approx(1.0)
            assert r.emotion == max(r.scores, key=r.scores.get)
        seen.update(ids)
    assert seen == set(range(1, len(seen) + 1))  # ids are handed out 1, 2, 3, ...


def test_iou_matrix():
    m = iou_matrix(np.array([[0, 0, 10, 10], [5, 0, 10, 10]]), np.array([[0, 0, 10, 10], [20, 20, 5, 5]]))
    np.testing.assert_allclose(m, [[1, 0], [50 / 150, 0]])


def test_flip_tta_averages_each_face_with_its_mirror_in_one_batch(model_path):
    from fer.modelfile import load_model

    loaded = load_model(model_path)
    plain, flip = EmotionRecognizer(loaded, profile="live"), EmotionRecognizer(loaded, profile="live", tta="flip")
    crops = np.stack([r.crop for r in plain.analyze(scenes.group(2).image)])
    expected = (plain.classify(crops) + plain.classify(crops[:, :, ::-1])) / 2
    got = flip.classify(crops)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.abs(got - plain.classify(crops)).max() > 1e-4  # the mirror really changes the answer
    (r,) = flip.analyze(scenes.load("astronaut.jpg"))
    np.testing.assert_allclose(probs_of(r), flip.classify(r.crop[None])[0], atol=1e-5)
    with pytest.raises(ValueError, match="tta='mirror' is not a test-time augmentation"):
        EmotionRecognizer(loaded, tta="mirror")
