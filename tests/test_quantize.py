"""The in-browser model's committed 8-bit graph (fer.quantize): current, as accurate as float32, used by the page's
recipe, and left alone once its model or float32 graph changes."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from fer.browser_models import browser_profile
from fer.export import parity_faces
from fer.onnx_runtime import OnnxClassifier, committed_graph, committed_paths
from fer.profiles import member_files
from fer.quantize import calibration_faces, committed_int8, int8_paths, quantize_int8, write_int8
from scenes import FACES, load

BROWSER_MODEL = member_files("live")[0][0]
REGENERATE = "run: python scripts/export_onnx_models.py --data path/to/fer2013"


def real_crops() -> np.ndarray:
    """108 face crops (48x48 uint8) of the test photos' faces: three scales, three shifts, dim and lit, mirrored."""
    out = []
    for name, (x, y, w, h) in FACES.items():
        gray = cv2.cvtColor(load(name), cv2.COLOR_BGR2GRAY)
        for scale in (0.9, 1.0, 1.15):
            for shift in (-0.08, 0.0, 0.08):
                x0, y0 = int(max(x + w / 2 + shift * w - w * scale / 2, 0)), int(max(y + h / 2 - h * scale / 2, 0))
                crop = cv2.resize(gray[y0:int(y0 + h * scale), x0:int(x0 + w * scale)], (48, 48),
                                  interpolation=cv2.INTER_AREA)
                for light in (0.5, 1.0):
                    lit = np.clip(crop * light, 0, 255).astype(np.uint8)
                    out += [lit, lit[:, ::-1]]
    return np.stack(out)


def as_input(faces: np.ndarray) -> np.ndarray:
    return faces.astype(np.float32).reshape(-1, 48, 48, 1)


def test_the_in_browser_model_has_a_current_int8_graph_as_accurate_as_float32():
    small_path, meta_path = int8_paths(BROWSER_MODEL)
    assert small_path.is_file() and meta_path.is_file(), f"{small_path.name} is missing; {REGENERATE}"
    assert committed_int8(BROWSER_MODEL) is not None, f"{small_path.name} is stale; {REGENERATE}"
    meta = json.loads(meta_path.read_text())
    assert meta["source"] == BROWSER_MODEL.name and meta["public_test"]["faces"] == 3589
    acc = meta["public_test"]
    assert acc["accuracy_int8"] >= acc["accuracy_float32"] - 0.005 and acc["labels_agree"] >= 0.97
    assert small_path.stat().st_size < committed_paths(BROWSER_MODEL)[0].stat().st_size / 3


def test_the_int8_graph_gives_the_float32_labels_on_real_faces():
    float32 = OnnxClassifier(committed_graph(BROWSER_MODEL))
    int8 = OnnxClassifier(committed_int8(BROWSER_MODEL))
    for faces in (real_crops(), parity_faces(64)):
        a, b = float32(as_input(faces)), int8(as_input(faces))
        assert (a.argmax(1) == b.argmax(1)).mean() >= 0.95
        assert np.abs(a - b).max() < 0.1 and np.allclose(b.sum(1), 1.0, atol=1e-4)


def test_the_page_runs_the_int8_graph_of_the_shipped_model_and_float32_of_others(model_path):
    assert browser_profile().graphs == [committed_int8(BROWSER_MODEL)]
    assert browser_profile(int8=False).graphs == [committed_graph(BROWSER_MODEL)]
    own = browser_profile(model_path)  # a model trained here has no 8-bit graph
    assert own.graphs[0] not in (committed_int8(BROWSER_MODEL), committed_graph(BROWSER_MODEL))
    assert committed_int8(model_path) is None


def test_the_bundle_serves_the_int8_file_and_says_so(tmp_path, model_path):
    import hashlib

    from fer.browser_models import browser_bundle

    shipped = browser_bundle(browser_profile(), tmp_path).config()
    small = committed_int8(BROWSER_MODEL)
    assert shipped["precision"] == "int8" and (tmp_path / shipped["model"]).read_bytes() == small
    assert shipped["model"] == f"emotion-{hashlib.sha256(small).hexdigest()[:16]}.onnx"
    assert browser_bundle(browser_profile(model_path), tmp_path).config()["precision"] == "float32"


def test_a_stale_or_tampered_int8_graph_is_not_used(tmp_path):
    """A sidecar naming another float32 graph, a changed int8 file or a replaced model: float32 in the page."""
    for f in (BROWSER_MODEL, BROWSER_MODEL.with_suffix(".json"), *committed_paths(BROWSER_MODEL),
              *int8_paths(BROWSER_MODEL)):
        shutil.copy(f, tmp_path)
    copy = tmp_path / BROWSER_MODEL.name
    small_path, meta_path = int8_paths(copy)
    assert committed_int8(copy) == small_path.read_bytes()
    assert browser_profile(copy).graphs == [small_path.read_bytes()]
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "float_onnx_sha256": "0" * 64}))
    assert committed_int8(copy) is None
    assert browser_profile(copy).graphs == [committed_graph(copy)]
    meta_path.write_text(json.dumps({**meta, "quant_version": meta["quant_version"] + 1}))
    assert committed_int8(copy) is None
    meta_path.write_text(json.dumps(meta))
    small_path.write_bytes(small_path.read_bytes() + b"\0")
    assert committed_int8(copy) is None
    meta_path.write_text("{not json")
    assert committed_int8(copy) is None
    copy.write_bytes(copy.read_bytes() + b"\0")  # a replaced .keras: its float32 graph is stale, so is the int8 one
    assert committed_int8(copy) is None


def test_quantize_and_write_an_int8_graph_of_a_new_model(model_path, tmp_path):
    """The export's steps on a model trained here: written beside it, current, close to float32."""
    from fer.onnx_runtime import write_committed

    for f in (model_path, model_path.with_suffix(".json")):
        shutil.copy(f, tmp_path)
    copy = tmp_path / model_path.name
    with pytest.raises(ValueError, match="no current committed ONNX graph"):
        write_int8(copy, parity_faces(64, seed=1))
    write_committed(copy)
    train_x = parity_faces(200, seed=1)
    out = write_int8(copy, train_x, (parity_faces(50, seed=2), np.zeros(50, np.int64)))
    assert out == int8_paths(copy)[0] and committed_int8(copy) == out.read_bytes()
    meta = json.loads(int8_paths(copy)[1].read_text())
    assert meta["public_test"]["faces"] == 50 and 0.0 <= meta["public_test"]["labels_agree"] <= 1.0
    faces = as_input(parity_faces(32, seed=4))
    a, b = OnnxClassifier(committed_graph(copy))(faces), OnnxClassifier(out.read_bytes())(faces)
    assert np.abs(a - b).max() < 0.15
    assert quantize_int8(committed_graph(copy), calibration_faces(train_x)) == out.read_bytes()  # deterministic


def test_calibration_needs_faces():
    with pytest.raises(ValueError, match="no training faces"):
        calibration_faces(np.zeros((0, 48, 48), np.uint8))
    assert calibration_faces(parity_faces(10), n=1024).shape == (10, 48, 48, 1)
