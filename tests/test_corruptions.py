"""Camera conditions: the deterministic benchmark corruptions, the in-model augmentation, and the measurement."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer.corruptions import CONDITIONS, RANGES, corrupt, level, occlusion_mask, parse_conditions, severities_for
from fer.robustness import condition_sets, format_table, robustness, summarize
from synth import make_split


@pytest.fixture(scope="module")
def faces():
    return make_split(3, 7)[0][:16]


def test_levels_span_each_range_from_mild_to_harsh():
    for c, params in RANGES.items():
        for k, (lo, hi) in params.items():
            assert level(c, 1)[k] == pytest.approx(lo) and level(c, 5)[k] == pytest.approx(hi)
    assert level("noise", 3)["sigma"] == pytest.approx(15.0)
    with pytest.raises(ValueError, match="unknown camera condition"):
        level("fog", 2)
    with pytest.raises(ValueError, match="severity must be between 1 and 5"):
        level("blur", 6)
    assert parse_conditions("all") == CONDITIONS and parse_conditions("noise, jpeg") == ("noise", "jpeg")
    with pytest.raises(ValueError, match="unknown camera condition"):
        parse_conditions("noise,rain")


def test_corruptions_are_deterministic_per_seed_and_keep_the_shape(faces):
    for c in CONDITIONS:
        a, b = corrupt(faces, c, 3, seed=1), corrupt(faces, c, 3, seed=1)
        assert a.shape == faces.shape and a.dtype == np.uint8 and np.array_equal(a, b)
        assert not np.array_equal(a, faces), c
    assert not np.array_equal(corrupt(faces, "noise", 3, seed=1), corrupt(faces, "noise", 3, seed=2))
    with_channel = corrupt(faces[..., None], "blur", 2)
    assert with_channel.shape == (*faces.shape, 1)
    with pytest.raises(ValueError, match="gray crops"):
        corrupt(np.zeros((2, 48, 48, 3)), "blur")


@pytest.mark.parametrize("condition", ["blur", "noise", "jpeg", "dark", "contrast", "lowres", "tilt", "occlusion"])
def test_a_harsher_severity_changes_the_face_more(faces, condition):
    change = [np.abs(corrupt(faces, condition, s, seed=0).astype(float) - faces).mean() for s in (1, 3, 5)]
    assert change[0] < change[1] < change[2], change


def test_all_severities_come_in_equal_shares():
    sev = severities_for(103, "all", seed=4)
    counts = np.bincount(sev, minlength=6)[1:]
    assert counts.max() - counts.min() <= 1 and set(sev) == {1, 2, 3, 4, 5}
    assert not np.array_equal(sev, severities_for(103, "all", seed=5))
    with pytest.raises(ValueError, match="severity must be 1-5"):
        severities_for(3, 9, 0)


def test_occlusion_masks_cover_the_asked_area():
    rng = np.random.default_rng(0)
    for region in ("mouth", "eyes", "side", "blob"):
        share = occlusion_mask((48, 48), 0.3, region, rng).mean()
        assert 0.22 < share < 0.38, (region, share)
    assert occlusion_mask((48, 48), 0.3, "mouth", rng)[36].all()  # the mouth band sits low on the face
    with pytest.raises(ValueError, match="unknown occluded region"):
        occlusion_mask((48, 48), 0.3, "hat", rng)


def test_in_graph_jpeg_matches_a_real_jpeg_encoder(faces):
    from fer.camera_augment import jpeg_compress

    for q in (10, 30, 50):
        real = np.stack([cv2.imdecode(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, q])[1], 0) for f in faces])
        ours = np.asarray(jpeg_compress(faces[..., None] / 255.0, np.full(len(faces), q, np.float32)))[..., 0] * 255
        assert np.abs(ours - real).mean() < 1.0 < np.abs(faces.astype(float) - real).mean()


def test_camera_augment_is_the_identity_at_inference_and_degrades_the_share_asked(faces):
    from fer.camera_augment import CameraAugment

    x = faces[..., None].astype("float32") / 255.0
    layer = CameraAugment(0.5, seed=3)
    assert np.array_equal(np.asarray(layer(x, training=False)), x)
    changed = np.abs(np.asarray(layer(np.repeat(x, 8, 0), training=True)) - np.repeat(x, 8, 0)).max(axis=(1, 2, 3))
    assert 0.3 < (changed > 1e-3).mean() < 0.7
    for c in CONDITIONS:
        y = np.asarray(CameraAugment(1.0, (c,), seed=1)(x, training=True))
        assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1 and not np.allclose(y, x), c
    with pytest.raises(ValueError, match="camera conditions must be some of"):
        CameraAugment(0.5, ("fog",))
    with pytest.raises(ValueError, match="rate must be in"):
        CameraAugment(1.5)


def test_a_model_with_camera_augmentation_trains_saves_and_reloads(tmp_path, faces):
    import keras

    from fer.model import build_model

    model = build_model("vgg", camera=0.5, camera_conditions="noise,jpeg", seed=0)
    assert model.get_layer("camera").conditions == ("noise", "jpeg")
    model.compile("adam", "categorical_crossentropy")
    model.fit(faces[..., None].astype("float32"), np.eye(7)[np.arange(16) % 7], epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "m.keras")
    back = keras.saving.load_model(tmp_path / "m.keras")
    cfg = back.get_layer("camera").get_config()
    assert cfg["rate"] == 0.5 and tuple(cfg["ranges"]["noise"]["sigma"]) == RANGES["noise"]["sigma"]
    x = faces[:4, ..., None].astype("float32")
    assert np.allclose(back.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    with pytest.raises(ValueError, match="unknown camera condition"):
        build_model("vgg", camera=0.5, camera_conditions="fog")


def test_a_saved_model_with_camera_augmentation_loads_in_a_fresh_process(tmp_path):
    """The layer must be registered by loading alone (no import of fer.camera_augment by the caller)."""
    from fer.model import build_model
    from fer.modelfile import ModelCard, save_model

    path = save_model(build_model("vgg", camera=0.3, seed=0), tmp_path / "cam.keras", ModelCard(architecture="vgg"))
    code = (f"from fer.modelfile import load_model; m, _ = load_model({str(path)!r}); "
            "print(m.get_layer('camera').rate)")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0 and done.stdout.strip() == "0.3", done.stderr[-2000:]


def test_robustness_scores_each_condition_on_the_same_crops(faces):
    y = np.arange(len(faces)) % 7

    def brightness_classifier(x):  # a real, simple rule: the label is set by the crop's mean brightness
        return np.eye(7)[(np.asarray(x, float).mean(axis=(1, 2)) // 37).astype(int).clip(0, 6)]

    result = robustness(brightness_classifier, faces, y, ("dark", "noise"), severity=5, seed=0)
    assert set(result["conditions"]) == {"dark", "noise"} and result["n"] == len(faces)
    expected = (brightness_classifier(corrupt(faces, "dark", 5, 0)).argmax(1) == y).mean()
    assert result["conditions"]["dark"]["accuracy"] == pytest.approx(expected, abs=1e-4)
    assert result["mean"] == pytest.approx(np.mean([v["accuracy"] for v in result["conditions"].values()]), abs=1e-4)
    sets = condition_sets(faces, ("dark",), 5, 0)
    assert np.array_equal(sets["clean"], faces) and np.array_equal(sets["dark"], corrupt(faces, "dark", 5, 0))
    table = format_table({"rule": result})
    assert "clean" in table and "dark" in table and "mean of the 2" in table
    with pytest.raises(ValueError, match="one probability row per label"):
        summarize({"clean": np.zeros((3, 7))}, y)


def test_the_robustness_benchmark_runs_on_a_small_split(tmp_path):
    from synth import write_kaggle_folders

    root = Path(__file__).resolve().parents[1]
    data = write_kaggle_folders(tmp_path / "data", {"train": make_split(1, 1), "public_test": make_split(2, 2)})
    done = subprocess.run([sys.executable, "benchmarks/robustness.py", "--data", str(data), "--no-fer-package",
                           "--profiles", "live", "--conditions", "noise,tilt", "--variants", "--json"],
                          capture_output=True, text=True, cwd=root, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(results) == {"ours, live", "live + flip TTA", "live, standardized crops"}
    assert set(results["ours, live"]["conditions"]) == {"noise", "tilt"} and results["ours, live"]["n"] == 14


def test_the_home_chart_shows_each_classifier_per_condition(tmp_path):
    from fer.robustness import measured
    from ui.charts import robustness_bars

    rob = measured()
    assert rob is not None and {"ours, live", "ours, photo", "fer package"} <= set(rob["results"])
    fig = robustness_bars(rob["results"])
    assert [bar.name for bar in fig.data] == list(rob["results"])
    live = next(bar for bar in fig.data if bar.name == "ours, live")
    assert list(live.x) == ["clean", *rob["results"]["ours, live"]["conditions"], "mean"]
    assert live.y[-1] == rob["results"]["ours, live"]["mean"]
    (tmp_path / "b.json").write_text("{not json")
    assert measured(tmp_path / "b.json") is None and measured(tmp_path / "missing.json") is None


def test_a_partial_rerun_replaces_its_rows_and_keeps_the_others():
    from test_pins import load_script

    merged = load_script("robustness", "benchmarks").merged
    row = lambda mean, n=100: {"mean": mean, "n": n}  # noqa: E731
    full = {"measured": "d1", "command": "full", "split": "public_test", "severity": "all", "seed": 0,
            "results": {"ours, live": row(0.6), "ours, photo": row(0.61), "fer package": row(0.5)},
            "live_variants": {"live + flip TTA": row(0.62)}}
    part = {"measured": "d2", "command": "photo only", "split": "public_test", "severity": "all", "seed": 0,
            "results": {"ours, photo": row(0.63)}}
    out = merged(full, part)
    assert out["results"] == {"ours, live": row(0.6), "ours, photo": row(0.63), "fer package": row(0.5)}
    assert out["live_variants"] == full["live_variants"] and out["command"] == "full"
    assert out["remeasured"] == [{"rows": ["ours, photo"], "measured": "d2", "command": "photo only"}]
    again = merged(out, {**part, "measured": "d3"})  # a later rerun of the same row replaces the record
    assert [r["measured"] for r in again["remeasured"]] == ["d3"]
    assert merged(out, full) == full  # a full run replaces everything
    for other in ({"seed": 1}, {"severity": "3"}, {"results": {"ours, photo": row(0.63, n=50)}}):
        assert merged(full, {**part, **other}) == {**part, **other}  # other settings: the table is replaced
