"""``python -m fer train --distribute`` on 2 virtual CPU devices: JAX (keras.distribution.DataParallel)
and TensorFlow (MirroredStrategy), each in a subprocess; the models load on TensorFlow here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fer.training import TrainConfig, scale_for_devices
from synth import make_split, write_csv

REPO = Path(__file__).resolve().parent.parent
ARGS = ["--arch", "vgg", "--epochs", "1", "--batch-size", "8", "--no-augment", "--distribute"]
TF_TWO_CPUS = ("import sys, tensorflow as tf; cpu = tf.config.list_physical_devices('CPU')[0]; "
               "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2); "
               "from fer.cli import main; sys.exit(main(sys.argv[1:]))")
BACKENDS = {
    "jax": ([sys.executable, "-m", "fer"], {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
                                            "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}),
    "tensorflow": ([sys.executable, "-c", TF_TWO_CPUS], {"KERAS_BACKEND": "tensorflow"}),
}


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory) -> Path:
    return write_csv(tmp_path_factory.mktemp("data") / "faces.csv",
                     {"train": make_split(12, 1), "public_test": make_split(4, 2)})


def test_per_device_batch_and_linear_lr_scaling():
    cfg = TrainConfig(batch_size=32, lr=1e-3, distribute=True)
    scaled, record = scale_for_devices(cfg, 4)
    assert (scaled.batch_size, scaled.lr) == (128, pytest.approx(4e-3))
    assert record["per_device_batch_size"] == 32 and record["global_batch_size"] == 128 and record["lr_scale"] == 4
    assert scale_for_devices(TrainConfig(batch_size=32), 1) == (TrainConfig(batch_size=32), {})


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_distributed_run_on_two_devices_gives_a_model_that_loads_on_tensorflow(backend, data_csv, tmp_path):
    import keras

    from fer.model import build_model
    from fer.modelfile import load_model

    command, env = BACKENDS[backend]
    out = tmp_path / f"{backend}.keras"
    proc = subprocess.run([*command, "train", "--data", str(data_csv), "--out", str(out), *ARGS], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", **env},
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["backend"] == backend
    assert card["config"]["distribution"] == {"devices": 2, "per_device_batch_size": 8, "global_batch_size": 16,
                                              "base_lr": 0.002, "lr_scale": 2.0, "lr": 0.004, "backend": backend}
    assert card["config"]["batch_size"] == 16 and card["config"]["distribute"] is True

    assert keras.backend.backend() == "tensorflow"
    model, loaded_card = load_model(out)
    reference = build_model("vgg", augment=False)
    assert [tuple(w.shape) for w in model.weights] == [tuple(w.shape) for w in reference.weights]
    x, _ = make_split(1, 3)
    probs = np.asarray(model.predict(x[..., None].astype("float32"), verbose=0))
    assert probs.shape == (7, 7) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    assert loaded_card.config["distribution"]["devices"] == 2
