import json
import zipfile

import numpy as np
import pytest

from fer.model import build_model
from fer.modelfile import ModelCard, atomic_write_bytes, card_path, load_model, save_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "m.keras"
    model = build_model("vgg", augment=False)
    save_model(model, path, ModelCard(architecture="vgg", epochs=3))
    return path, model


def test_round_trip_keeps_weights_and_card(saved):
    path, model = saved
    loaded, card = load_model(path)
    assert card.architecture == "vgg" and card.epochs == 3 and card.labels[0] == "angry"
    x = np.full((1, 48, 48, 1), 128, np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
    assert json.loads(card_path(path).read_text())["input_shape"] == [48, 48, 1]


def _copy(saved, tmp_path, name="c.keras"):
    path, _ = saved
    dst = tmp_path / name
    dst.write_bytes(path.read_bytes())
    card_path(dst).write_text(card_path(path).read_text())
    return dst


def test_missing_file_and_card(saved, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_model(tmp_path / "nope.keras")
    dst = _copy(saved, tmp_path)
    card_path(dst).unlink()
    with pytest.raises(ValueError, match="card .* is missing"):
        load_model(dst)


def test_truncated_model_is_a_clear_error(saved, tmp_path):
    dst = _copy(saved, tmp_path)
    data = dst.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a valid .keras archive|could not load"):
        load_model(dst)


def test_card_that_disagrees_is_refused(saved, tmp_path):
    dst = _copy(saved, tmp_path)
    card = json.loads(card_path(dst).read_text())
    card_path(dst).write_text(json.dumps({**card, "labels": ["happy", "sad"]}))
    with pytest.raises(ValueError, match="has labels"):
        load_model(dst)
    card_path(dst).write_text(json.dumps({**card, "input_shape": [64, 64, 1]}))
    with pytest.raises(ValueError, match="takes input \\[48, 48, 1\\] but its card says"):
        load_model(dst)
    card_path(dst).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_model(dst)


def test_unsafe_lambda_model_is_refused(tmp_path):
    import keras

    inp = keras.Input((48, 48, 1))
    x = keras.layers.Lambda(lambda t: t * 2)(inp)
    out = keras.layers.Dense(7, activation="softmax")(keras.layers.Flatten()(x))
    path = save_model(keras.Model(inp, out), tmp_path / "lambda.keras", ModelCard(architecture="custom"))
    assert zipfile.is_zipfile(path)
    with pytest.raises(ValueError, match="could not load"):
        load_model(path)


def test_interrupted_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "model.keras"
    target.write_bytes(b"good")

    def fail(tmp):
        open(tmp, "wb").write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, fail)
    assert target.read_bytes() == b"good" and [p.name for p in tmp_path.iterdir()] == ["model.keras"]
