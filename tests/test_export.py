"""Exported models (ONNX, TFLite, SavedModel) and the ONNX converter agree with Keras on 500 faces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app_helpers import write_fer_folder
from fer.data import shared_data_dir
from fer.export import FORMATS, PARITY_TOLERANCE, export_model, parity_faces, runner

DATA = shared_data_dir() / "fer2013"
REPO = Path(__file__).resolve().parent.parent


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


def _erfc_layer():
    """A layer whose TensorFlow operation (Erfc) ONNX does not define, registered so that it saves and loads."""
    import keras

    @keras.saving.register_keras_serializable(package="fer_tests")
    class Erfc(keras.layers.Layer):
        def call(self, x):
            return keras.ops.erfc(x / 255.0)

    return Erfc


def odd_model():
    import keras

    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Conv2D(4, 3)(_erfc_layer()(name="odd_erfc")(inputs))
    outputs = keras.layers.Dense(7, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


def test_onnx_converter_names_a_layer_it_cannot_convert():
    from fer.onnx_runtime import UnsupportedModel, keras_to_onnx

    with pytest.raises(UnsupportedModel, match="layer 'odd_erfc' uses Erfc.*tflite"):
        keras_to_onnx(odd_model())


def test_onnx_graph_names_its_input_and_output_and_keeps_the_batch_dynamic(shipped):
    import onnx

    from fer.onnx_runtime import OnnxClassifier, keras_to_onnx

    data = keras_to_onnx(shipped[0])
    graph = onnx.load_from_string(data).graph
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert (graph.input[0].name, graph.output[0].name, dims) == ("face", "probabilities", ["n", 48, 48, 1])
    clf = OnnxClassifier(data)
    for n in (1, 5, 33):  # any batch size
        assert clf(parity_faces(n)).shape == (n, 7)


def test_batch_with_a_model_onnx_cannot_take_says_to_use_the_keras_engine(tmp_path, monkeypatch):
    from fer.batch import BatchOptions
    from fer.modelfile import ModelCard, save_model

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    path = save_model(odd_model(), tmp_path / "odd.keras", ModelCard(architecture="odd"))
    with pytest.raises(ValueError, match="odd_erfc.*use --engine keras"):
        BatchOptions(model=str(path), profile="live").prepare()
    BatchOptions(model=str(path), profile="live", engine="keras").prepare()  # nothing to convert
    with pytest.raises(ValueError, match="does not exist") as missing:
        BatchOptions(model=str(tmp_path / "none.keras")).prepare()
    assert "--engine" not in str(missing.value)


def test_export_rejects_an_unknown_format(shipped, tmp_path):
    with pytest.raises(ValueError, match="unknown export format 'coreml'.*onnx, tflite, savedmodel"):
        export_model(*shipped, "coreml", tmp_path)


def test_cli_export_writes_the_model_and_its_card(tmp_path, capsys):
    from fer.cli import main

    assert main(["export", "--format", "onnx", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "fer.onnx").is_file() and (tmp_path / "fer.json").is_file()
    assert "largest probability difference from Keras" in capsys.readouterr().out


@pytest.mark.parametrize("profile", ["live", "photo"])
def test_onnx_ensemble_matches_the_profile_on_real_faces(profile, faces):
    """What the app classifies with: the profile's members (their committed graphs), TTA views, weights and prior
    correction on ONNX Runtime. The conversion itself is checked by the tests above and tests/test_shipped_onnx.py."""
    from fer.onnx_runtime import load_onnx_profile
    from fer.profiles import load_profile

    ensemble = load_profile(profile)
    onnx = load_onnx_profile(profile)
    faces = faces[:200] if ensemble.passes > 1 else faces  # the photo profile runs 6 passes per face
    assert np.abs(onnx.probabilities(faces) - ensemble.probabilities(faces)).max() <= PARITY_TOLERANCE
    raw = onnx.probabilities(faces, corrected=False)
    assert np.abs(raw - ensemble.probabilities(faces, corrected=False)).max() <= PARITY_TOLERANCE


def test_an_onnx_profile_converts_once_then_loads_without_keras(tmp_path):
    """The conversion cache, for models with no committed graph: a second process gets the same graphs from
    disk and never imports TensorFlow."""
    import shutil

    from fer.modelfile import card_path
    from fer.profiles import member_files

    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(REPO / "models" / "profiles.json", models)
    for f in member_files("photo")[0]:  # the .keras files and cards, not their committed .onnx graphs
        shutil.copy(f, models)
        shutil.copy(card_path(f), models)
    code = ("import sys, numpy as np; from fer.onnx_runtime import load_onnx_profile; "
            f"e = load_onnx_profile('photo', manifest={str(models / 'profiles.json')!r}); "
            "p = e.probabilities(np.full((2, 48, 48), 128, np.uint8)); "
            "heavy = sorted(m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules); "
            "print(heavy, p.round(6).tolist())")
    env = {**os.environ, "FER_CACHE_DIR": str(tmp_path / "cache")}
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                           timeout=300) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr[-2000:]
    cold, warm = (r.stdout.strip().splitlines()[-1] for r in runs)
    assert "'keras'" in cold and warm.startswith("[]")  # converted with Keras once; then files only
    assert cold.split("] ", 1)[1] == warm.split("] ", 1)[1]
    assert len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == len(member_files("photo")[0])


def test_an_onnx_recognizer_matches_the_keras_one_and_pickles(tmp_path, monkeypatch):
    import pickle

    from fer.images import load_bgr
    from fer.inference import EmotionRecognizer
    from fer.onnx_runtime import OnnxEnsemble

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path))
    image = load_bgr(REPO / "tests" / "data" / "grace_hopper.jpg")
    keras_rec = EmotionRecognizer(input_size=640)
    onnx_rec = EmotionRecognizer(input_size=640, engine="onnx")
    assert (keras_rec.engine, onnx_rec.engine, onnx_rec.model) == ("keras", "onnx", None)
    assert onnx_rec.tta == keras_rec.tta and onnx_rec.ensemble.passes == keras_rec.ensemble.passes
    want, got = keras_rec.analyze(image), onnx_rec.analyze(image)
    assert [r.box for r in got] == [r.box for r in want] and len(got) >= 1
    for a, b in zip(got, want):
        assert a.emotion == b.emotion and list(a.scores.values()) == pytest.approx(list(b.scores.values()), abs=1e-5)

    twin = pickle.loads(pickle.dumps(onnx_rec.ensemble))  # bytes and cards only: sessions are made on use
    graphs = sum(len(g) for g in onnx_rec.ensemble.graphs)
    assert isinstance(twin, OnnxEnsemble) and len(pickle.dumps(onnx_rec.ensemble)) < graphs + 1e6
    faces = parity_faces(32)
    assert np.abs(twin.probabilities(faces) - keras_rec.classify(faces)).max() <= PARITY_TOLERANCE
    again = EmotionRecognizer(twin, input_size=640)  # an OnnxEnsemble as the model implies engine="onnx"
    assert again.engine == "onnx" and [r.box for r in again.analyze(image)] == [r.box for r in want]
    with pytest.raises(ValueError, match="engine='tpu' is unknown"):
        EmotionRecognizer(engine="tpu")


def test_int8_export_is_calibrated_on_the_data_and_checked_by_labels(model_path, tmp_path, capsys):
    from fer.cli import main
    from fer.export import INT8_AGREEMENT, INT8_FILE
    from fer.modelfile import load_model
    from fer.onnx_runtime import keras_to_onnx
    from fer.predictor import predict_proba

    data = write_fer_folder(tmp_path / "fer2013", n_train=12)
    out = tmp_path / "out"
    assert main(["export", "--format", "onnx-int8", "--model", str(model_path), "--data", str(data),
                 "--out", str(out)]) == 0
    assert "Keras's label on" in capsys.readouterr().out
    doc = json.loads((out / "fer.json").read_text())["export"]
    assert doc["file"] == INT8_FILE and doc["quantization"]["calibration_faces"] == 84
    assert doc["parity"]["labels_agree"] >= INT8_AGREEMENT
    assert doc["parity"]["source"] == "synthetic"  # 14 test faces in the folder: fewer than the 500 compared
    model = load_model(model_path)[0]
    assert (out / INT8_FILE).stat().st_size < len(keras_to_onnx(model)) / 2
    faces = parity_faces(64, seed=5)
    got, want = runner("onnx-int8", out / INT8_FILE)(faces), predict_proba(model, faces)
    assert got.shape == (64, 7) and (got.argmax(1) == want.argmax(1)).mean() >= INT8_AGREEMENT


def test_int8_export_without_training_faces_says_what_it_needs(shipped, tmp_path):
    from synth import make_split, write_kaggle_folders

    with pytest.raises(ValueError, match="onnx-int8 needs --data"):
        export_model(*shipped, "onnx-int8", tmp_path)
    only_test = write_kaggle_folders(tmp_path / "test_only", {"public_test": make_split(2, 4)})
    with pytest.raises(ValueError, match="has no train split"):
        export_model(*shipped, "onnx-int8", tmp_path, only_test)
