import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fer.model import ARCHITECTURES, FaceAugment, build_model

ROOT = Path(__file__).resolve().parents[1]

SEED_TABLE = [  # (layer type, output shape, params) of the seed's Keras summary
    ("Conv2D", (46, 46, 64), 640), ("Conv2D", (46, 46, 64), 36928), ("BatchNormalization", (46, 46, 64), 256),
    ("MaxPooling2D", (23, 23, 64), 0), ("Dropout", (23, 23, 64), 0),
    ("Conv2D", (23, 23, 128), 73856), ("BatchNormalization", (23, 23, 128), 512),
    ("Conv2D", (23, 23, 128), 147584), ("BatchNormalization", (23, 23, 128), 512),
    ("MaxPooling2D", (11, 11, 128), 0), ("Dropout", (11, 11, 128), 0),
    ("Conv2D", (11, 11, 256), 295168), ("BatchNormalization", (11, 11, 256), 1024),
    ("Conv2D", (11, 11, 256), 590080), ("BatchNormalization", (11, 11, 256), 1024),
    ("MaxPooling2D", (5, 5, 256), 0), ("Dropout", (5, 5, 256), 0),
    ("Conv2D", (5, 5, 512), 1180160), ("BatchNormalization", (5, 5, 512), 2048),
    ("Conv2D", (5, 5, 512), 2359808), ("BatchNormalization", (5, 5, 512), 2048),
    ("MaxPooling2D", (2, 2, 512), 0), ("Dropout", (2, 2, 512), 0),
    ("Flatten", (2048,), 0), ("Dense", (512,), 1049088), ("Dropout", (512,), 0),
    ("Dense", (256,), 131328), ("Dropout", (256,), 0), ("Dense", (128,), 32896), ("Dropout", (128,), 0),
    ("Dense", (7,), 903),
]


def test_seed_matches_the_layer_table_to_the_parameter():
    model = build_model("seed")
    assert model.count_params() == 5_905_863
    assert sum(int(np.prod(w.shape)) for w in model.non_trainable_weights) == 3_712
    layers = [layer for layer in model.layers if type(layer).__name__ not in ("InputLayer", "Rescaling", "FaceAugment")]
    got = [(type(layer).__name__, tuple(layer.output.shape[1:]), layer.count_params()) for layer in layers]
    assert got == SEED_TABLE


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_outputs_probabilities(arch):
    model = build_model(arch, augment=False)
    x = np.random.default_rng(0).integers(0, 256, (3, 48, 48, 1)).astype("float32")
    p = np.asarray(model(x, training=False))
    assert p.shape == (3, 7) and np.allclose(p.sum(axis=1), 1, atol=1e-5) and (p >= 0).all()


def test_compiled_predictor_answers_an_empty_batch():
    """No faces in, no rows out (the graph itself fails on an empty batch on AVX-512 CPUs)."""
    from fer.predictor import compiled_predictor

    predict = compiled_predictor(build_model("vgg", augment=False))
    assert predict(np.zeros((2, 48, 48, 1), "float32")).shape == (2, 7)
    out = predict(np.zeros((0, 48, 48, 1), "float32"))
    assert out.shape == (0, 7) and out.dtype == np.float32


def test_unknown_architecture_lists_the_choices():
    with pytest.raises(ValueError, match="unknown architecture 'resnet999'.*seed"):
        build_model("resnet999")


def test_augmentation_only_in_training():
    aug = FaceAugment(seed=1)
    x = np.random.default_rng(1).uniform(0, 1, (8, 48, 48, 1)).astype("float32")
    np.testing.assert_array_equal(np.asarray(aug(x, training=False)), x)
    out = np.asarray(aug(x, training=True))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert np.abs(out - x).mean() > 0.02
    with_aug, without = build_model("vgg", augment=True, seed=0), build_model("vgg", augment=False)
    without.set_weights([w for w in with_aug.get_weights() if w.dtype != np.uint32 and w.shape != (2,)])
    np.testing.assert_allclose(np.asarray(with_aug(x * 255, training=False)),
                               np.asarray(without(x * 255, training=False)), atol=1e-6)


def test_augment_config_round_trips():
    aug = FaceAugment(rotation=5, erase=0.0, seed=3)
    clone = FaceAugment.from_config(aug.get_config())
    assert clone.rotation == 5 and clone.erase == 0.0 and clone.seed == 3


JAX_SCRIPT = r"""
import json, sys
import numpy as np, keras
import fer.model, fer.modelfile
from fer.training import TrainConfig, compile_model
src, out = sys.argv[1], sys.argv[2]
m, _ = fer.modelfile.load_model(src)
x = np.load(out + "/x.npy")
np.save(out + "/pred_jax_of_tf.npy", np.asarray(m.predict_on_batch(x)))
keras.utils.set_random_seed(0)
model = fer.model.build_model("vgg")
compile_model(model, TrainConfig(lr=1e-3), steps=4)
y = np.eye(7, dtype="float32")[np.arange(16) % 7]
model.fit(np.repeat(x, 4, axis=0)[:16], y, batch_size=8, epochs=1, verbose=0)
fer.modelfile.save_model(model, out + "/jax.keras", fer.modelfile.ModelCard(architecture="vgg"))
np.save(out + "/pred_jax.npy", np.asarray(model.predict_on_batch(x)))
print(json.dumps({"backend": keras.backend.backend()}))
"""


@pytest.mark.slow
def test_keras_file_moves_between_tensorflow_and_jax(tmp_path):
    from fer.modelfile import ModelCard, load_model, save_model

    x = np.random.default_rng(2).integers(0, 256, (4, 48, 48, 1)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    tf_model = build_model("vgg", seed=0)
    save_model(tf_model, tmp_path / "tf.keras", ModelCard(architecture="vgg"))
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", JAX_SCRIPT, str(tmp_path / "tf.keras"), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["backend"] == "jax"
    np.testing.assert_allclose(np.load(tmp_path / "pred_jax_of_tf.npy"),
                               np.asarray(tf_model(x, training=False)), atol=1e-4)
    jax_trained, _ = load_model(tmp_path / "jax.keras")
    np.testing.assert_allclose(np.asarray(jax_trained(x, training=False)), np.load(tmp_path / "pred_jax.npy"),
                               atol=1e-4)
