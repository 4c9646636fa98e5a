"""Exported models (ONNX, TFLite, SavedModel) and the ONNX converter agree with Keras on 500 faces."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fer.data import shared_data_dir
from fer.export import FORMATS, PARITY_TOLERANCE, export_model, parity_faces, runner

DATA = shared_data_dir() / "fer2013"


@pytest.fixture(scope="module")
def shipped():
    from fer.modelfile import load_model

    return load_model()


@pytest.fixture(scope="module")
def faces():
    return parity_faces(500, DATA if DATA.is_dir() else None)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_export_matches_keras_on_500_faces(fmt, shipped, faces, tmp_path):
    from fer.predictor import predict_proba

    model, card = shipped
    section = export_model(model, card, fmt, tmp_path, DATA if DATA.is_dir() else None)
    path = tmp_path / FORMATS[fmt]
    assert path.exists() and section["file"] == path.name
    got, want = runner(fmt, path)(faces), predict_proba(model, faces)
    assert got.shape == (500, 7)
    assert np.abs(got - want).max() <= PARITY_TOLERANCE
    assert np.allclose(got.sum(axis=1), 1.0, atol=1e-4)
    doc = json.loads((tmp_path / "fer.json").read_text())
    assert doc["architecture"] == card.architecture and doc["export"]["format"] == fmt
    assert doc["export"]["parity"]["max_abs_diff_vs_keras"] <= PARITY_TOLERANCE


def test_parity_faces_are_real_fer2013_faces_when_present(faces):
    if not DATA.is_dir():
        pytest.skip(f"{DATA} is missing: synthetic faces are used")
    assert faces.shape == (500, 48, 48) and faces.dtype == np.uint8
    assert len({f.tobytes() for f in faces}) >= 490  # FER2013 holds a few duplicate images


@pytest.mark.parametrize("arch", ["resnet", "seed"])
def test_onnx_converter_covers_the_other_architectures(arch):
    """Residual additions (resnet) and Flatten + Dense stacks (seed) convert exactly too."""
    from fer.model import build_model
    from fer.onnx_runtime import OnnxClassifier, keras_to_onnx
    from fer.predictor import predict_proba

    model = build_model(arch, augment=True)
    x = parity_faces(64)
    got = OnnxClassifier(keras_to_onnx(model))(x)
    assert np.abs(got - predict_proba(model, x)).max() <= PARITY_TOLERANCE


def test_onnx_converter_names_a_layer_it_cannot_convert():
    import keras

    from fer.onnx_runtime import keras_to_onnx

    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.LayerNormalization(name="odd_norm")(x)
    outputs = keras.layers.Dense(7, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    with pytest.raises(ValueError, match="odd_norm.*LayerNormalization.*tflite"):
        keras_to_onnx(keras.Model(inputs, outputs))


def test_export_rejects_an_unknown_format(shipped, tmp_path):
    with pytest.raises(ValueError, match="unknown export format 'coreml'.*onnx, tflite, savedmodel"):
        export_model(*shipped, "coreml", tmp_path)


def test_cli_export_writes_the_model_and_its_card(tmp_path, capsys):
    from fer.cli import main

    assert main(["export", "--format", "onnx", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "fer.onnx").is_file() and (tmp_path / "fer.json").is_file()
    assert "largest probability difference from Keras" in capsys.readouterr().out


@pytest.mark.parametrize("profile", ["live", "photo"])
def test_onnx_ensemble_matches_the_profile_on_500_faces(profile, faces):
    """What the live stream classifies with: the profile's members, TTA views and prior correction on ONNX Runtime."""
    from fer.onnx_runtime import OnnxEnsemble
    from fer.profiles import load_profile

    ensemble = load_profile(profile)
    got = OnnxEnsemble(ensemble).probabilities(faces)
    assert np.abs(got - ensemble.probabilities(faces)).max() <= PARITY_TOLERANCE
    raw = OnnxEnsemble(ensemble).probabilities(faces, corrected=False)
    assert np.abs(raw - ensemble.probabilities(faces, corrected=False)).max() <= PARITY_TOLERANCE
