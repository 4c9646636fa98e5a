"""Training-time camera conditions inside the model (backend-agnostic ``keras.ops``).

:class:`CameraAugment` gives a share of the training crops one of the conditions of
:mod:`fer.corruptions` (blur, noise, JPEG, darkness, low contrast, low resolution, tilt, a covered
part of the face), with a severity drawn anywhere in :data:`fer.corruptions.RANGES`. It runs in the
model's graph, so it costs no input pipeline and runs on an accelerator too; at inference it is the
identity.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

from fer.corruptions import CONDITIONS, RANGES

# The JPEG standard's luminance quantization table (ITU T.81, Annex K).
_JPEG_LUMA = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], np.float32)
_BLUR_SIGMAS = (0.5, 1.0, 1.5, 2.0)
_LOWRES_SIZES = (12, 14, 16, 18, 20, 22, 24)


def _dct_matrix(n: int = 8) -> np.ndarray:
    k, i = np.mgrid[0:n, 0:n].astype(np.float64)
    d = np.sqrt(2.0 / n) * np.cos((2 * i + 1) * k * np.pi / (2 * n))
    d[0] /= np.sqrt(2.0)
    return d.astype(np.float32)


def _gauss_1d(sigma: float, radius: int = 4) -> np.ndarray:
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (t / sigma) ** 2)
    return (g / g.sum()).astype(np.float32)


def jpeg_compress(x, quality):
    """Baseline JPEG of gray crops in [0, 1] (N, H, W, 1; H = W, a multiple of 8) at a per-crop ``quality`` (N,).

    The lossy part of a grayscale JPEG, in ``keras.ops``: 8x8 block DCT, quantization by the standard's
    luminance table scaled to the quality as libjpeg does, and back to 8-bit pixels.
    """
    quality = ops.convert_to_tensor(quality, "float32")
    scale = ops.where(quality < 50, 5000.0 / quality, 200.0 - 2.0 * quality)
    table = ops.clip(ops.floor((_JPEG_LUMA[None] * scale[:, None, None] + 50.0) / 100.0), 1.0, 255.0)
    h = x.shape[1]
    b = h // 8
    d = ops.convert_to_tensor(_dct_matrix(), "float32")
    x = ops.cast(x, "float32")
    v = ops.round(x[..., 0] * 255.0) - 128.0
    blocks = ops.transpose(ops.reshape(v, (-1, b, 8, b, 8)), (0, 1, 3, 2, 4))
    coef = ops.einsum("ij,nabjk,lk->nabil", d, blocks, d)
    coef = ops.round(coef / table[:, None, None]) * table[:, None, None]
    rec = ops.einsum("ji,nabjk,kl->nabil", d, coef, d)
    rec = ops.reshape(ops.transpose(rec, (0, 1, 3, 2, 4)), (-1, h, h))
    return (ops.round(ops.clip(rec + 128.0, 0.0, 255.0)) / 255.0)[..., None]


@keras.saving.register_keras_serializable(package="fer")
class CameraAugment(layers.Layer):
    """With probability ``rate``, one camera condition per training crop (input in [0, 1], NHWC, 1 channel).

    ``conditions`` picks from :data:`fer.corruptions.CONDITIONS`, each equally likely; each condition's
    severity is uniform over its whole range in :data:`fer.corruptions.RANGES`.
    """

    def __init__(self, rate: float = 0.5, conditions: tuple[str, ...] | list[str] = CONDITIONS,
                 seed: int | None = None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        unknown = [c for c in conditions if c not in RANGES]
        if unknown or not conditions:
            raise ValueError(f"camera conditions must be some of {', '.join(CONDITIONS)}; got {list(conditions)}")
        if not 0 <= rate <= 1:
            raise ValueError(f"camera augmentation rate must be in [0, 1]; got {rate}")
        self.rate, self.conditions, self.seed = float(rate), tuple(conditions), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.rate, "conditions": list(self.conditions), "seed": self.seed,
                "ranges": {c: RANGES[c] for c in self.conditions}}

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        config.pop("ranges", None)  # recorded for the reader; the ranges in force are fer.corruptions.RANGES
        return cls(**config)

    def compute_output_shape(self, input_shape):
        return input_shape

    def _uniform(self, n, low: float, high: float):
        return keras.random.uniform((n,), min(low, high), max(low, high), seed=self.seed_generator)

    def call(self, x, training=False):
        if not training or self.rate == 0:
            return x
        n = ops.shape(x)[0]
        on = self._uniform(n, 0.0, 1.0) < self.rate
        which = ops.floor(self._uniform(n, 0.0, len(self.conditions) - 1e-3))
        out = x
        for i, name in enumerate(self.conditions):
            pick = ops.reshape(on & (which == float(i)), (-1, 1, 1, 1))
            out = ops.where(pick, getattr(self, f"_{name}")(x, n), out)
        return ops.clip(out, 0.0, 1.0)

    # ---- the conditions, each on the whole batch (48x48 crops make that cheap)

    def _blur(self, x, n):
        sigma = self._uniform(n, *RANGES["blur"]["sigma"])
        out = ops.zeros_like(x)
        pad = ops.pad(x, [[0, 0], [4, 4], [4, 4], [0, 0]], mode="symmetric")
        t = (sigma - _BLUR_SIGMAS[0]) / (_BLUR_SIGMAS[1] - _BLUR_SIGMAS[0])  # position among the precomputed sigmas
        for k, s in enumerate(_BLUR_SIGMAS):  # interpolate between the two nearest precomputed blurs
            g = ops.convert_to_tensor(_gauss_1d(s))
            y = ops.depthwise_conv(pad, ops.reshape(g, (9, 1, 1, 1)), padding="valid")
            y = ops.depthwise_conv(y, ops.reshape(g, (1, 9, 1, 1)), padding="valid")
            w = ops.maximum(0.0, 1.0 - ops.abs(t - float(k)))
            out = out + ops.reshape(w, (-1, 1, 1, 1)) * y
        return out

    def _noise(self, x, n):
        sigma = ops.reshape(self._uniform(n, *RANGES["noise"]["sigma"]), (-1, 1, 1, 1)) / 255.0
        return x + sigma * keras.random.normal(ops.shape(x), seed=self.seed_generator)

    def _jpeg(self, x, n):
        return jpeg_compress(x, self._uniform(n, *RANGES["jpeg"]["quality"]))

    def _dark(self, x, n):
        gamma = ops.reshape(self._uniform(n, *RANGES["dark"]["gamma"]), (-1, 1, 1, 1))
        exposure = ops.reshape(self._uniform(n, *RANGES["dark"]["exposure"]), (-1, 1, 1, 1))
        return exposure * ops.power(ops.maximum(x, 0.0), gamma)

    def _contrast(self, x, n):
        factor = ops.reshape(self._uniform(n, *RANGES["contrast"]["factor"]), (-1, 1, 1, 1))
        mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
        return (x - mean) * factor + mean

    def _lowres(self, x, n):
        h, w = x.shape[1], x.shape[2]
        pick = ops.floor(self._uniform(n, 0.0, len(_LOWRES_SIZES) - 1e-3))
        out = ops.zeros_like(x)
        for k, s in enumerate(_LOWRES_SIZES):
            small = ops.image.resize(x, (s, s), interpolation="area")
            y = ops.image.resize(small, (h, w), interpolation="bilinear")
            out = out + ops.reshape(ops.cast(pick == float(k), x.dtype), (-1, 1, 1, 1)) * y
        return out

    def _tilt(self, x, n):
        lo, hi = RANGES["tilt"]["degrees"]
        theta = self._uniform(n, -hi, hi) * (math.pi / 180.0)
        c = (x.shape[1] - 1) / 2.0
        cos, sin = ops.cos(theta), ops.sin(theta)
        zeros = ops.zeros_like(theta)
        transform = ops.stack([cos, sin, c - c * cos - c * sin, -sin, cos, c + c * sin - c * cos, zeros, zeros], 1)
        return ops.image.affine_transform(x, transform, interpolation="bilinear", fill_mode="reflect")

    def _occlusion(self, x, n):
        size = x.shape[1]
        area = self._uniform(n, *RANGES["occlusion"]["area"])
        region = ops.floor(self._uniform(n, 0.0, 4.0 - 1e-3))  # mouth, eyes, side, blob
        grid = (ops.cast(ops.arange(size), "float32") + 0.5) / size
        yy, xx = grid[None, :, None], grid[None, None, :]
        centre = ops.where(region == 0, 0.76, 0.40) + self._uniform(n, -0.04, 0.04)
        band = ops.abs(yy - centre[:, None, None]) < (area / 2)[:, None, None]
        left = self._uniform(n, 0.0, 1.0) < 0.5
        side = ops.where(left[:, None, None], xx < area[:, None, None], xx > 1.0 - area[:, None, None])
        ry = ops.sqrt(area / math.pi / 1.3)[:, None, None]
        cy = self._uniform(n, 0.30, 0.80)[:, None, None]
        cx = self._uniform(n, 0.30, 0.70)[:, None, None]
        blob = ((yy - cy) / ry) ** 2 + ((xx - cx) / (1.3 * ry)) ** 2 < 1.0
        r = region[:, None, None]
        mask = ops.where(r < 2, band, ops.where(r < 3, side, blob))
        skin = ops.mean(x, axis=(1, 2, 3)) * self._uniform(n, 0.85, 1.15)
        dark = self._uniform(n, 0.0, 40.0 / 255.0)
        fill = ops.where(self._uniform(n, 0.0, 1.0) < 0.5, dark, skin)
        texture = keras.random.normal(ops.shape(x), stddev=4.0 / 255.0, seed=self.seed_generator)
        return ops.where(mask[..., None], fill[:, None, None, None] + texture, x)
