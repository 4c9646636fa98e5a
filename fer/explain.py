"""Why this label? Occlusion-sensitivity maps of face crops: the regions that drove a prediction.

::

    rec = EmotionRecognizer()
    face = rec.analyze(frame_bgr)[0]
    why = occlusion_map(rec, face.crop)                   # Explanation: heatmap (48, 48) in 0..1
    picture = overlay(face.crop, why.heatmap, channels="rgb")   # heatmap blended on the enlarged crop

The map is built from forward passes only, so it works the same on every Keras backend: a grey
square (the crop's mean brightness) is slid over the 48x48 crop, every occluded copy goes through
the model in one batched call, and each pixel gets the mean drop in the predicted class's
probability over the squares that covered it. Hot regions are those the prediction depends on.
(Grad-CAM would need each backend's own gradient API, so it is not offered.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fer.images import FACE_SIZE
from fer.labels import EMOTIONS

DEFAULT_PATCH = 12
"""Side of the occluding square, in crop pixels (a quarter of the face: an eye, the mouth)."""
DEFAULT_STRIDE = 6
"""Step between squares: 7 x 7 = 49 occluded copies per face with the default patch (4: 100 copies)."""

Classifier = Any
"""An :class:`fer.inference.EmotionRecognizer`, or any callable mapping (n, 48, 48) uint8 crops to (n, 7)
probabilities."""


@dataclass(frozen=True)
class Explanation:
    """The occlusion map of one face crop.

    ``heatmap`` (48, 48) float32 in 0..1: 1 where hiding the face lowers the ``target`` class's
    probability the most, 0 where hiding it does not lower it at all; ``drop`` the same map in
    probability units (signed: negative where hiding a region raises the probability);
    ``probability`` the target's probability on the intact crop.
    """

    heatmap: np.ndarray
    drop: np.ndarray
    target: int
    emotion: str
    probability: float


def window_starts(size: int = FACE_SIZE, patch: int = DEFAULT_PATCH, stride: int = DEFAULT_STRIDE) -> list[int]:
    """Top-left offsets of the occluding squares along one side; the last one always touches the edge."""
    if not 1 <= patch <= size:
        raise ValueError(f"patch={patch} must be between 1 and the crop size {size} (e.g. 12)")
    if stride < 1:
        raise ValueError(f"stride={stride} must be 1 or more (e.g. 4)")
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


def occluded_copies(crop: np.ndarray, patch: int = DEFAULT_PATCH, stride: int = DEFAULT_STRIDE,
                    fill: float | None = None) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Every copy of ``crop`` with one square hidden, and the squares' (y, x) top-left corners.

    ``fill`` is the grey level of the square (default: the crop's mean brightness, so that hiding
    a region adds no edge of its own).
    """
    crop = _check_crop(crop)
    value = float(crop.mean()) if fill is None else float(fill)
    starts = window_starts(crop.shape[0], patch, stride)
    corners = [(y, x) for y in starts for x in starts]
    copies = np.repeat(crop[None], len(corners), axis=0)
    for i, (y, x) in enumerate(corners):
        copies[i, y : y + patch, x : x + patch] = np.uint8(round(np.clip(value, 0, 255)))
    return copies, corners


def occlusion_map(classifier: Classifier, crop: np.ndarray, *, target: int | str | None = None,
                  patch: int = DEFAULT_PATCH, stride: int = DEFAULT_STRIDE) -> Explanation:
    """The occlusion map of one 48x48 uint8 crop for ``target`` (default: the predicted class)."""
    return explain_faces(classifier, [crop], targets=None if target is None else [target],
                         patch=patch, stride=stride)[0]


def explain_faces(classifier: Classifier, crops: Sequence[np.ndarray] | np.ndarray, *,
                  targets: Sequence[int | str] | None = None, patch: int = DEFAULT_PATCH,
                  stride: int = DEFAULT_STRIDE, batch_size: int = 256) -> list[Explanation]:
    """Occlusion maps of several crops, their occluded copies sent through the model in few batches."""
    classify = _classify_fn(classifier)
    crops = [_check_crop(c) for c in crops]
    if targets is not None and len(targets) != len(crops):
        raise ValueError(f"got {len(targets)} targets for {len(crops)} crops; give one per crop or none")
    if not crops:
        return []
    sets = [occluded_copies(c, patch, stride) for c in crops]
    batch = np.concatenate([np.stack(crops)] + [copies for copies, _ in sets])
    probs = np.concatenate([np.asarray(classify(batch[i : i + batch_size]), np.float64)
                            for i in range(0, len(batch), batch_size)])
    base, rest = probs[: len(crops)], probs[len(crops):]
    out, offset = [], 0
    for i, (copies, corners) in enumerate(sets):
        k = _target_index(base[i] if targets is None else targets[i])
        drops = base[i, k] - rest[offset : offset + len(copies), k]
        out.append(_explanation(drops, corners, patch, crops[i].shape[0], k, float(base[i, k])))
        offset += len(copies)
    return out


def _explanation(drops: np.ndarray, corners: list[tuple[int, int]], patch: int, size: int, target: int,
                 probability: float) -> Explanation:
    total = np.zeros((size, size), np.float64)
    count = np.zeros((size, size), np.float64)
    for d, (y, x) in zip(drops, corners):
        total[y : y + patch, x : x + patch] += d
        count[y : y + patch, x : x + patch] += 1
    drop = total / np.maximum(count, 1)
    smooth = _blur(drop, _stride_of(corners))
    top = smooth.max()
    heat = np.clip(smooth, 0, None) / top if top > 1e-6 else np.zeros_like(smooth)
    return Explanation(heat.astype(np.float32), drop.astype(np.float32), target, EMOTIONS[target], probability)


def _stride_of(corners: list[tuple[int, int]]) -> int:
    """The step between the squares' corners (the size of the blocks it leaves in the map)."""
    xs = sorted({x for _, x in corners})
    return xs[1] - xs[0] if len(xs) > 1 else 1


def _blur(drop: np.ndarray, stride: int) -> np.ndarray:
    """Soften the stride-sized blocks of the averaged map (Gaussian, sigma = stride / 2)."""
    import cv2

    if stride <= 1:
        return drop
    return cv2.GaussianBlur(drop, (0, 0), sigmaX=stride / 2, borderType=cv2.BORDER_REPLICATE)


def _classify_fn(classifier: Classifier) -> Callable[[np.ndarray], np.ndarray]:
    fn = getattr(classifier, "classify", classifier)
    if not callable(fn):
        raise ValueError(f"classifier is a {type(classifier).__name__}; pass an EmotionRecognizer "
                         "or a function from (n, 48, 48) uint8 crops to (n, 7) probabilities")
    return fn


def _check_crop(crop: np.ndarray) -> np.ndarray:
    a = np.asarray(crop)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 8:
        raise ValueError(f"crop has shape {a.shape}; expected a square gray face such as (48, 48) "
                         "(FaceResult.crop, or fer.faces.crop_faces)")
    return np.clip(a, 0, 255).astype(np.uint8) if a.dtype != np.uint8 else a


def _target_index(target) -> int:
    if isinstance(target, str):
        if target not in EMOTIONS:
            raise ValueError(f"unknown emotion {target!r}; use one of {', '.join(EMOTIONS)}")
        return EMOTIONS.index(target)
    if np.ndim(target) == 1:  # a probability vector: its most probable class
        return int(np.argmax(target))
    index = int(target)
    if not 0 <= index < len(EMOTIONS):
        raise ValueError(f"target {index} is outside 0..{len(EMOTIONS) - 1}")
    return index


# ---------------------------------------------------------------- picture


def overlay(crop: np.ndarray, heatmap: np.ndarray, *, size: int = 144, alpha: float = 0.6,
            channels: str = "bgr") -> np.ndarray:
    """The face crop enlarged to ``size`` px with ``heatmap`` (0..1) blended on in the JET colours.

    Each pixel's colour weight is ``alpha`` times its heat, so cold regions show the face as it
    is and hot ones turn red. Returns uint8 BGR (RGB when ``channels="rgb"``), ``size`` x ``size``.
    """
    import cv2

    face = _check_crop(crop)
    heat = np.asarray(heatmap, np.float32)
    if heat.shape != face.shape:
        raise ValueError(f"heatmap has shape {heat.shape} but the crop {face.shape}; use Explanation.heatmap")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha} is outside [0, 1]; 0.6 is a good value")
    if channels not in ("bgr", "rgb"):
        raise ValueError(f"channels={channels!r}; use 'bgr' or 'rgb'")
    face = cv2.cvtColor(cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
    heat = np.clip(cv2.resize(heat, (size, size), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    colour = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
    weight = (alpha * heat)[..., None]
    out = (face * (1.0 - weight) + colour * weight + 0.5).astype(np.uint8)
    return np.ascontiguousarray(out[..., ::-1]) if channels == "rgb" else out
