"""fer.explain: occlusion maps of the shipped model on real face crops, and of the small test model."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import scenes
from fer.explain import Explanation, explain_faces, occluded_copies, occlusion_map, overlay, window_starts
from fer.labels import EMOTIONS
from synth import make_split

PHOTOS = ("astronaut.jpg", "grace_hopper.jpg", "camera.jpg")
MASK = 14  # side of the test's own occluder: not the map's 12 px square, and filled differently


@pytest.fixture(scope="module")
def model():
    """The shipped FER2013 model: what a face's map means is a property of a model of faces.

    The small test model learnt bars on generated faces, so on real faces any region may raise or
    lower its guess; it is checked on the generated faces it was trained on instead.
    """
    from fer.inference import EmotionRecognizer
    from fer.modelfile import DEFAULT_MODEL

    if not DEFAULT_MODEL.is_file():
        pytest.skip(f"no shipped model at {DEFAULT_MODEL}")
    return EmotionRecognizer(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def crops(recognizer) -> list[np.ndarray]:
    """The aligned 48x48 crops of the three portraits in tests/data and of their mirror images."""
    out = []
    for name in PHOTOS:
        image = scenes.load(name)
        for im in (image, np.ascontiguousarray(image[:, ::-1])):
            faces = recognizer.analyze(im)
            assert faces, f"no face found in {name}"
            out.append(max(faces, key=lambda f: f.box[2] * f.box[3]).crop)
    return out


def masked(crop: np.ndarray, y: int, x: int) -> np.ndarray:
    """The crop with a MASK-sized square replaced by a heavy blur of itself (a different occluder)."""
    out = crop.copy()
    blurred = cv2.GaussianBlur(crop, (0, 0), 6)
    out[y : y + MASK, x : x + MASK] = blurred[y : y + MASK, x : x + MASK]
    return out


def ranked_window(heatmap: np.ndarray, hottest: bool = True) -> tuple[int, int]:
    """Top-left corner of the MASK-sized square with the highest (or lowest) mean heat."""
    means = cv2.boxFilter(heatmap.astype(np.float64), -1, (MASK, MASK), normalize=True,
                          anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)[: 48 - MASK + 1, : 48 - MASK + 1]
    flat = np.argmax(means) if hottest else np.argmin(means)
    return tuple(int(v) for v in np.unravel_index(flat, means.shape))


def test_maps_of_real_faces_are_not_uniform(model, crops):
    for crop, why in zip(crops, explain_faces(model, crops)):
        assert isinstance(why, Explanation)
        assert why.heatmap.shape == (48, 48) and why.heatmap.dtype == np.float32
        assert why.heatmap.min() == 0.0 and why.heatmap.max() == pytest.approx(1.0)
        assert why.heatmap.std() > 0.1  # some regions matter much more than others
        assert (why.heatmap > 0.5).mean() < 0.6  # ...and the hot part is not most of the face
        probs = model.classify(crop[None])[0]
        assert why.target == int(np.argmax(probs)) and why.emotion == EMOTIONS[why.target]
        assert why.probability == pytest.approx(float(probs.max()), abs=1e-5)
        assert why.drop.max() > 0.0  # hiding something lowers the prediction


def masking_drops(model, crops, whys) -> tuple[list, list, list]:
    """Per face, how much the target's probability drops when the hottest, the coldest and (mean of)
    12 random MASK-sized squares are blurred out."""
    rng = np.random.default_rng(0)
    top, cold, rand = [], [], []
    for crop, why in zip(crops, whys):
        corners = [ranked_window(why.heatmap), ranked_window(why.heatmap, hottest=False)]
        corners += [tuple(rng.integers(0, 48 - MASK + 1, 2)) for _ in range(12)]
        p = model.classify(np.stack([crop] + [masked(crop, y, x) for y, x in corners]))[:, why.target]
        top.append(p[0] - p[1]), cold.append(p[0] - p[2]), rand.append(p[0] - p[3:].mean())
    print(f"mean drop: top {np.mean(top):.4f}, random {np.mean(rand):.4f}, coldest {np.mean(cold):.4f}")
    return top, cold, rand


def test_masking_the_top_region_lowers_the_prediction_more_than_random_regions(model, crops):
    top_drops, cold_drops, random_drops = masking_drops(model, crops, explain_faces(model, crops))
    top, cold, rand = np.mean(top_drops), np.mean(cold_drops), np.mean(random_drops)
    assert top > 1.5 * rand > 0, (top_drops, random_drops)
    assert top > cold, (top_drops, cold_drops)
    assert sum(t > r for t, r in zip(top_drops, random_drops)) >= len(crops) - 1  # face by face, too


def test_the_small_model_map_is_faithful_on_the_faces_it_was_trained_for(recognizer):
    """On generated faces (its own kind) the small model is right, and its maps show what it uses."""
    faces, labels = make_split(2, 3)
    whys = explain_faces(recognizer, list(faces))
    assert [why.target for why in whys] == list(labels)  # it learnt the bars (validation accuracy 100%)
    top, cold, rand = masking_drops(recognizer, list(faces), whys)
    assert np.mean(top) > max(2 * np.mean(rand), 0) and np.mean(top) > np.mean(cold), (top, rand, cold)
    assert sum(t > r for t, r in zip(top, rand)) >= 0.8 * len(top), (top, rand)  # face by face, mostly


def test_the_map_points_at_what_the_classifier_looks_at():
    """A known classifier: 'happy' grows with the brightness of the lower-right quarter only."""

    def classify(x: np.ndarray) -> np.ndarray:
        bright = x[:, 24:, 24:].reshape(len(x), -1).mean(1) / 255.0
        probs = np.full((len(x), 7), 0.0)
        probs[:, 3] = bright
        probs[:, 6] = 1 - bright
        return probs

    crop = np.full((48, 48), 60, np.uint8)
    crop[24:, 24:] = 250
    why = occlusion_map(classify, crop, target="happy")
    assert why.emotion == "happy" and why.probability == pytest.approx(250 / 255)
    assert why.heatmap[24:, 24:].mean() > 0.5 > why.heatmap[:18, :18].max()
    y, x = np.unravel_index(np.argmax(why.heatmap), why.heatmap.shape)
    assert y >= 24 and x >= 24


def test_batched_maps_equal_one_at_a_time_and_targets(recognizer, crops):
    together = explain_faces(recognizer, crops[:3])
    for crop, why in zip(crops[:3], together):
        alone = occlusion_map(recognizer, crop)
        np.testing.assert_allclose(alone.heatmap, why.heatmap, atol=1e-4)
    fear = occlusion_map(recognizer, crops[0], target="fear")
    assert fear.target == EMOTIONS.index("fear") and fear.emotion == "fear"
    assert occlusion_map(recognizer, crops[0][..., None], target=2).target == 2  # (48, 48, 1) works too


def test_occluded_copies_cover_the_whole_crop():
    crop = np.arange(48 * 48, dtype=np.uint32).reshape(48, 48).astype(np.uint8)
    copies, corners = occluded_copies(crop, patch=12, stride=6, fill=7)
    assert window_starts(48, 12, 6) == [0, 6, 12, 18, 24, 30, 36] and len(copies) == 49 == len(corners)
    hidden = np.zeros((48, 48), bool)
    for copy, (y, x) in zip(copies, corners):
        changed = copy != crop
        assert (copy[y : y + 12, x : x + 12] == 7).all() and not changed[~_square(y, x)].any()
        hidden |= _square(y, x)
    assert hidden.all()
    assert window_starts(48, 10, 6)[-1] == 38  # the last square always reaches the edge


def _square(y: int, x: int) -> np.ndarray:
    m = np.zeros((48, 48), bool)
    m[y : y + 12, x : x + 12] = True
    return m


def test_bad_inputs_say_what_to_do(recognizer, crops):
    with pytest.raises(ValueError, match="expected a square gray face"):
        occlusion_map(recognizer, np.zeros((48, 40), np.uint8))
    with pytest.raises(ValueError, match="unknown emotion 'joy'"):
        occlusion_map(recognizer, crops[0], target="joy")
    with pytest.raises(ValueError, match="outside 0..6"):
        occlusion_map(recognizer, crops[0], target=9)
    with pytest.raises(ValueError, match="patch=60"):
        occlusion_map(recognizer, crops[0], patch=60)
    with pytest.raises(ValueError, match="one per crop"):
        explain_faces(recognizer, crops[:2], targets=["happy"])
    with pytest.raises(ValueError, match="pass an EmotionRecognizer"):
        occlusion_map(object(), crops[0])
    assert explain_faces(recognizer, []) == []


def test_overlay_keeps_cold_regions_and_colours_hot_ones(crops):
    crop = crops[0]
    heat = np.zeros((48, 48), np.float32)
    heat[30:, :] = 1.0
    bgr = overlay(crop, heat, size=96)
    assert bgr.shape == (96, 96, 3) and bgr.dtype == np.uint8
    face = cv2.resize(crop, (96, 96), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(bgr[:50, :, 0], face[:50])  # cold: the face itself, gray
    assert (bgr[:50, :, 0] == bgr[:50, :, 2]).all()
    hot = bgr[70:, :].astype(int)
    assert (hot[..., 2] - hot[..., 0]).mean() > 60  # hot: pulled towards JET's dark red
    np.testing.assert_array_equal(overlay(crop, heat, size=96, channels="rgb"), bgr[..., ::-1])
    with pytest.raises(ValueError, match="heatmap has shape"):
        overlay(crop, heat[:10])


# ---------------------------------------------------------------- the photo page's toggle


def test_why_this_label_toggle_on_the_photo_page(app_with_model):
    from streamlit.testing.v1 import AppTest

    from app_helpers import REPO, face_photo

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=180).run()
    at.switch_page("app_pages/analyze.py").run()
    photo = face_photo()
    at.file_uploader(key="analyze_uploads").set_value((photo.name, photo.read_bytes(), "image/jpeg")).run()
    assert not at.exception, [e.message for e in at.exception]
    toggle = at.toggle(key="analyze_explain")
    assert toggle.value is False and toggle.label == "Why this label?"
    captions = lambda: [i.caption for el in at.get("image") for i in el.proto.imgs]  # noqa: E731
    assert not [c for c in captions() if c.startswith("why ")]
    toggle.set_value(True).run()
    assert not at.exception, [e.message for e in at.exception]
    card = next(m.value for m in at.markdown if m.value.startswith("**") and "· " in m.value)
    emotion = card.split("**")[1]
    assert [c for c in captions() if c.startswith("why ")] == [f"why {emotion}: red = what drove it"]
    (overlays,) = at.session_state["_analyze_why"].values()
    assert len(overlays) == 1 and overlays[0].shape == (144, 144, 3)
    rgb = overlays[0].astype(int)
    assert (np.abs(rgb[..., 0] - rgb[..., 2]) > 40).mean() > 0.02  # coloured where the heat is, not gray
    at.toggle(key="analyze_explain").set_value(False).run()
    assert not [c for c in captions() if c.startswith("why ")]
