"""Model architectures (Keras 3, backend-agnostic) with preprocessing and augmentation inside.

Every model takes the raw 48x48x1 gray image in the uint8 range (0-255, any float dtype) and
returns softmax probabilities over :data:`fer.labels.EMOTIONS`. Rescaling is the first layer;
augmentation (:class:`FaceAugment`) is active only in training.
"""

from __future__ import annotations

from typing import Callable

import keras
from keras import layers, ops

from fer.camera_augment import CameraAugment  # registered for loading: saved models may hold one
from fer.efficientnet import INPUT_SIZE as LITE0_SIZE
from fer.efficientnet import lite0_body
from fer.images import FACE_SIZE
from fer.labels import NUM_CLASSES

INPUT_SHAPE = (FACE_SIZE, FACE_SIZE, 1)


@keras.saving.register_keras_serializable(package="fer")
class LogitAdjustedLoss(keras.losses.Loss):
    """Logit-adjusted cross-entropy (Menon et al., 2021, "Long-tail learning via logit adjustment").

    For a model whose output is softmax probabilities ``p``: the loss of ``softmax(log p + tau * log prior)``
    against the (one-hot or soft) targets. Training so makes ``p`` itself balanced: rare classes get
    their due without a correction after training. ``label_smoothing`` as in Keras' cross-entropy.
    """

    def __init__(self, prior, tau: float = 1.0, label_smoothing: float = 0.0,
                 name: str = "logit_adjusted_crossentropy", **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.prior = [float(p) for p in prior]
        self.tau, self.label_smoothing = float(tau), float(label_smoothing)
        if len(self.prior) != NUM_CLASSES or min(self.prior) <= 0:
            raise ValueError(f"prior must be {NUM_CLASSES} positive class frequencies; got {self.prior}")

    def call(self, y_true, y_pred):
        import numpy as np

        shift = ops.convert_to_tensor(self.tau * np.log(np.asarray(self.prior, np.float32)), "float32")
        logits = ops.log(ops.clip(ops.cast(y_pred, "float32"), 1e-7, 1.0)) + shift
        return keras.losses.categorical_crossentropy(ops.cast(y_true, "float32"), logits, from_logits=True,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self) -> dict:
        return {**super().get_config(), "prior": self.prior, "tau": self.tau, "label_smoothing": self.label_smoothing}


@keras.saving.register_keras_serializable(package="fer")
class FaceAugment(layers.Layer):
    """Training-only augmentation for 48x48 gray faces in [0, 1].

    One random affine warp per image (horizontal flip, rotation, zoom, shift: covers the framing
    differences between FER2013 crops and a detector's crops), brightness and contrast jitter,
    occasional 3x3 Gaussian blur (webcam softness) and random erasing (occlusions).
    """

    def __init__(self, rotation: float = 15.0, zoom: float = 0.15, shift: float = 0.1,
                 brightness: float = 0.2, contrast: float = 0.3, blur: float = 0.2,
                 erase: float = 0.5, seed: int | None = None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.rotation, self.zoom, self.shift = rotation, zoom, shift
        self.brightness, self.contrast, self.blur, self.erase = brightness, contrast, blur, erase
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def get_config(self) -> dict:
        keys = ("rotation", "zoom", "shift", "brightness", "contrast", "blur", "erase", "seed")
        return {**super().get_config(), **{k: getattr(self, k) for k in keys}}

    def compute_output_shape(self, input_shape):
        return input_shape

    def _uniform(self, n, low: float, high: float):
        return keras.random.uniform((n,), low, high, seed=self.seed_generator)

    def call(self, x, training=False):
        if not training:
            return x
        n = ops.shape(x)[0]
        x = self._warp(x, n)
        x = self._photometric(x, n)
        x = self._maybe_blur(x, n)
        return self._erase(x, n)

    def _warp(self, x, n):
        theta = self._uniform(n, -self.rotation, self.rotation) * (3.141592653589793 / 180.0)
        inv_scale = 1.0 / self._uniform(n, 1.0 - self.zoom, 1.0 + self.zoom)
        flip = ops.where(self._uniform(n, 0.0, 1.0) < 0.5, -1.0, 1.0)
        tx = self._uniform(n, -self.shift, self.shift) * FACE_SIZE
        ty = self._uniform(n, -self.shift, self.shift) * FACE_SIZE
        c = (FACE_SIZE - 1) / 2.0
        cos, sin = ops.cos(theta) * inv_scale, ops.sin(theta) * inv_scale
        m00, m01, m10, m11 = cos * flip, sin, -sin * flip, cos
        a2 = c - (m00 * (c + tx) + m01 * (c + ty))
        b2 = c - (m10 * (c + tx) + m11 * (c + ty))
        zeros = ops.zeros_like(theta)
        transform = ops.stack([m00, m01, a2, m10, m11, b2, zeros, zeros], axis=1)
        return ops.image.affine_transform(x, transform, interpolation="bilinear", fill_mode="reflect")

    def _photometric(self, x, n):
        contrast = ops.reshape(self._uniform(n, 1.0 - self.contrast, 1.0 + self.contrast), (-1, 1, 1, 1))
        bright = ops.reshape(self._uniform(n, -self.brightness, self.brightness), (-1, 1, 1, 1))
        mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
        return ops.clip((x - mean) * contrast + mean + bright, 0.0, 1.0)

    def _maybe_blur(self, x, n):
        k = ops.convert_to_tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16.0
        blurred = ops.depthwise_conv(x, ops.reshape(k, (3, 3, 1, 1)), padding="same")
        pick = ops.reshape(self._uniform(n, 0.0, 1.0) < self.blur, (-1, 1, 1, 1))
        return ops.where(pick, blurred, x)

    def _erase(self, x, n):
        h = self._uniform(n, 0.1, 0.4) * FACE_SIZE
        w = self._uniform(n, 0.1, 0.4) * FACE_SIZE
        y0 = self._uniform(n, 0.0, 1.0) * (FACE_SIZE - h)
        x0 = self._uniform(n, 0.0, 1.0) * (FACE_SIZE - w)
        on = self._uniform(n, 0.0, 1.0) < self.erase
        fill = self._uniform(n, 0.0, 1.0)
        grid = ops.cast(ops.arange(FACE_SIZE), "float32")
        rows = (grid[None, :] >= y0[:, None]) & (grid[None, :] < (y0 + h)[:, None])
        cols = (grid[None, :] >= x0[:, None]) & (grid[None, :] < (x0 + w)[:, None])
        mask = rows[:, :, None] & cols[:, None, :] & on[:, None, None]
        return ops.where(mask[..., None], fill[:, None, None, None], x)


def _conv_bn(x, filters: int, name: str, padding: str = "same"):
    x = layers.Conv2D(filters, 3, padding=padding, use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _head(x, dropout: float):
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    return layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32", name="predictions")(x)


def _vgg_body(x, widths: tuple[int, ...], convs: int, dropout: float):
    """VGG-style stages: ``convs`` x (conv3x3-BN-ReLU) then 2x2 max-pool, widths doubling."""
    for s, width in enumerate(widths):
        for c in range(convs):
            x = _conv_bn(x, width, f"s{s + 1}c{c + 1}")
        if s < len(widths) - 1:
            x = layers.MaxPooling2D(2, name=f"s{s + 1}_pool")(x)
            x = layers.SpatialDropout2D(dropout, name=f"s{s + 1}_drop")(x) if dropout else x
    return x


def _vgg(width: int) -> Callable:
    def body(x):
        x = _vgg_body(x, (width, width * 2, width * 4, width * 8), convs=2, dropout=0.1)
        return _head(x, 0.4)
    return body


def _res_block(x, filters: int, name: str):
    """Downsampling residual block: conv3x3/2-BN-ReLU, conv3x3-BN, plus a 1x1/2 projection, ReLU."""
    y = layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.Activation("relu", name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    s = layers.Conv2D(filters, 1, strides=2, use_bias=False, name=f"{name}_proj")(x)
    s = layers.BatchNormalization(name=f"{name}_proj_bn")(s)
    return layers.Activation("relu", name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, s]))


def _resnet(x):
    """Residual network at the cost of ``vgg``: strided convolutions and shortcuts instead of max-pooling."""
    x = _conv_bn(x, 32, "stem1")
    x = _conv_bn(x, 32, "stem2")
    for s, width in enumerate((64, 128, 256)):
        x = _res_block(x, width, f"r{s + 1}")
        x = layers.SpatialDropout2D(0.1, name=f"r{s + 1}_drop")(x) if s < 2 else x
    return _head(x, 0.4)


def _seed(x):
    """The seed CNN, layer for layer (5,905,863 parameters)."""
    x = layers.Conv2D(64, 3, activation="relu", name="conv2d")(x)
    for i, filters in enumerate((64, 128, 256, 512)):
        if i == 0:
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", name="conv2d_1")(x)
            x = layers.BatchNormalization(name="batch_normalization")(x)
        else:
            for j in range(2):
                x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv2d_{2 * i + j}")(x)
                x = layers.BatchNormalization(name=f"batch_normalization_{2 * i + j - 1}")(x)
        x = layers.MaxPooling2D(2, name=f"max_pooling2d_{i}")(x)
        x = layers.Dropout(0.25, name=f"dropout_{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate((512, 256, 128)):
        x = layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
        x = layers.Dropout(0.5 if i == 0 else 0.3, name=f"dense_dropout_{i}")(x)
    return layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32", name="predictions")(x)


ARCHITECTURES: dict[str, tuple[Callable, str]] = {
    "seed": (_seed, "the seed CNN (reference baseline): 8 conv + 4 dense layers, 5.9M parameters"),
    "vgg": (_vgg(32), "default: VGG-style 4x2 conv3x3-BN-ReLU (32-256 channels), global pooling, 1.2M parameters"),
    "resnet": (_resnet, "residual: 2 conv stem + 3 strided residual blocks (64-256 channels), global pooling, "
                        "1.2M parameters; about the cost of vgg, errs differently (an ensemble member)"),
    "vgg_wide": (_vgg(64),
                 "VGG-style 4x2 conv3x3-BN-ReLU (64-512 channels), global pooling, 4.7M parameters; for GPUs"),
    "effnet_lite0": (lite0_body(), f"EfficientNet-Lite0 on the face upscaled to {LITE0_SIZE}x{LITE0_SIZE}, from its "
                                   "ImageNet weights (fer.efficientnet), 3.4M parameters"),
}
DEFAULT_ARCH = "vgg"


def augmentation(strength: float = 1.0, seed: int | None = None) -> FaceAugment:
    """The default :class:`FaceAugment`, every range scaled by ``strength`` (0 = off, 1 = default)."""
    s = float(strength)
    return FaceAugment(rotation=15.0 * s, zoom=0.15 * s, shift=0.1 * s, brightness=0.2 * s, contrast=0.3 * s,
                       blur=0.2 * s, erase=0.5 * s, seed=seed, name="augment")


def build_model(arch: str = DEFAULT_ARCH, *, augment: bool = True, augment_strength: float = 1.0,
                seed: int | None = None, camera: float = 0.0, camera_conditions: str = "all") -> keras.Model:
    """Build an uncompiled model: raw 48x48x1 gray (0-255) in, 7 softmax probabilities out.

    ``camera`` > 0 adds :class:`fer.camera_augment.CameraAugment` after the augmentation: that share of the
    training crops gets one camera condition (``camera_conditions``: "all" or a comma list of
    :data:`fer.corruptions.CONDITIONS`).
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHITECTURES)}")
    body, _ = ARCHITECTURES[arch]
    inputs = keras.Input(INPUT_SHAPE, name="face")
    x = layers.Rescaling(1.0 / 255.0, dtype="float32", name="rescale")(inputs)
    if augment:
        x = augmentation(augment_strength, seed)(x)
    if augment and camera > 0:
        from fer.corruptions import parse_conditions

        x = CameraAugment(camera, parse_conditions(camera_conditions), seed=seed, name="camera")(x)
    return keras.Model(inputs, body(x), name=arch)
