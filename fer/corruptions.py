"""Camera conditions: the degradations real cameras give a face crop, for measuring and for training.

Eight conditions, each with five severities in the style of ImageNet-C (Hendrycks & Dietterich, 2019):
blur, sensor noise, JPEG compression, darkness, low contrast, low resolution, in-plane tilt and a
partly covered face. :data:`RANGES` is the one source of truth for their parameter ranges, shared by
this module's deterministic corruptions (NumPy + OpenCV, for the benchmark: ``python -m fer evaluate
--corruptions all``) and by the training-time augmentation :class:`fer.camera_augment.CameraAugment`.

All functions take and return 48x48 gray crops as ``uint8`` (N, 48, 48) or (N, 48, 48, 1) arrays.
"""

from __future__ import annotations

import zlib
from typing import Callable

import numpy as np

RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "blur": {"sigma": (0.5, 2.0)},                              # Gaussian blur, pixels
    "noise": {"sigma": (5.0, 25.0)},                            # Gaussian sensor noise, 0-255 units
    "jpeg": {"quality": (50.0, 10.0)},                          # JPEG quality (lower is worse)
    "dark": {"gamma": (1.5, 2.5), "exposure": (0.8, 0.4)},      # 255 * exposure * (x / 255) ** gamma
    "contrast": {"factor": (0.7, 0.3)},                         # scaled around the crop's mean
    "lowres": {"size": (24.0, 12.0)},                           # downscaled to SIZE px and back
    "tilt": {"degrees": (4.0, 20.0)},                           # in-plane rotation, either way
    "occlusion": {"area": (0.20, 0.35)},                        # a dark or skin-toned band or blob
}
"""Each condition's parameters as (mildest, harshest) over severities 1-5."""

CONDITIONS: tuple[str, ...] = tuple(RANGES)
SEVERITIES = (1, 2, 3, 4, 5)
OCCLUDED_REGIONS = ("mouth", "eyes", "side", "blob")


def level(condition: str, severity: float) -> dict[str, float]:
    """The parameters of ``condition`` at ``severity`` (1-5, fractions allowed), linear between its range's ends."""
    if condition not in RANGES:
        raise ValueError(f"unknown camera condition {condition!r}; choose from: {', '.join(CONDITIONS)}")
    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be between 1 and 5; got {severity}")
    t = (severity - 1) / 4
    return {k: lo + (hi - lo) * t for k, (lo, hi) in RANGES[condition].items()}


def parse_conditions(spec: str) -> tuple[str, ...]:
    """``"all"`` or a comma-separated list of condition names, checked."""
    names = CONDITIONS if spec.strip() in ("all", "") else tuple(s.strip() for s in spec.split(",") if s.strip())
    unknown = [n for n in names if n not in RANGES]
    if unknown:
        raise ValueError(f"unknown camera condition(s) {', '.join(unknown)}; choose from: all, {', '.join(CONDITIONS)}")
    return names


# ---------------------------------------------------------------- one crop, one condition


def _blur(img: np.ndarray, p: dict, rng: np.random.Generator) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(img, (0, 0), p["sigma"], borderType=cv2.BORDER_REFLECT_101)


def _noise(img: np.ndarray, p: dict, rng: np.random.Generator) -> np.ndarray:
    return img.astype(np.float32) + rng.normal(0.0, p["sigma"], img.shape).astype(np.float32)


def _jpeg(img: np.ndarray, p: dict, rng: np.random.Generator) -> np.ndarray:
    import cv2

    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(round(p["quality"]))])
    if not ok:
        raise RuntimeError("OpenCV could not JPEG-encode a crop")
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def _dark(img: np.ndarray, p: dict, rng: np.random.Generator) -> np.ndarray:
    return 255.0 * p["exposure"] * (img.astype(np.float32) / 255.0) ** p["gamma"]


def _contrast(img: np.ndarray, p: dict, rng: np.random.Generator) -> np.ndarray:
    x = img.astype(np.float32)
    return (x - x.mean()) * p["factor"] + x.mean()


def _lowres(img: np.ndarray, p: dict, rng: np.random.Generator) -> np.ndarray:
    import cv2

    s = int(round(p["size"]))
    small = cv2.resize(img, (s, s), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, img.shape[::-1], interpolation=cv2.INTER_LINEAR)


def _tilt(img: np.ndarray, p: dict, rng: np.random.Generator) -> np.ndarray:
    import cv2

    h, w = img.shape
    angle = p["degrees"] * (1 if rng.random() < 0.5 else -1)
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def occlusion_mask(shape: tuple[int, int], area: float, region: str, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask covering ``area`` of a face crop: a band over the mouth or the eyes, one side, or a blob."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    if region in ("mouth", "eyes"):
        band = area * h
        centre = (0.76 if region == "mouth" else 0.40) * h + rng.uniform(-0.04, 0.04) * h
        return np.abs(yy - centre) < band / 2
    if region == "side":
        band = area * w
        return xx < band if rng.random() < 0.5 else xx > w - band
    if region == "blob":  # an ellipse (a hand, a cup) over the lower or the upper face
        ry = np.sqrt(area * h * w / np.pi / 1.3)
        rx = 1.3 * ry
        cy = rng.uniform(0.30, 0.80) * h
        cx = rng.uniform(0.30, 0.70) * w
        return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
    raise ValueError(f"unknown occluded region {region!r}; choose from {', '.join(OCCLUDED_REGIONS)}")


def _occlusion(img: np.ndarray, p: dict, rng: np.random.Generator) -> np.ndarray:
    region = OCCLUDED_REGIONS[rng.integers(len(OCCLUDED_REGIONS))]
    mask = occlusion_mask(img.shape, p["area"], region, rng)
    x = img.astype(np.float32)
    if rng.random() < 0.5:  # dark: a sleeve, hair, a phone
        fill = rng.uniform(0, 40)
    else:  # skin-toned: a hand, about the face's own brightness, with a little texture
        fill = x[~mask].mean() * rng.uniform(0.85, 1.15) + rng.normal(0, 4, img.shape).astype(np.float32)[mask]
    x[mask] = fill
    return x


_APPLY: dict[str, Callable[[np.ndarray, dict, np.random.Generator], np.ndarray]] = {
    "blur": _blur, "noise": _noise, "jpeg": _jpeg, "dark": _dark, "contrast": _contrast,
    "lowres": _lowres, "tilt": _tilt, "occlusion": _occlusion,
}


def corrupt_one(img: np.ndarray, condition: str, severity: float, rng: np.random.Generator) -> np.ndarray:
    """One 2-D uint8 crop under ``condition`` at ``severity`` (1-5), as uint8."""
    out = _APPLY[condition](np.ascontiguousarray(img, dtype=np.uint8), level(condition, severity), rng)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- a whole split


def _squeeze(faces: np.ndarray) -> tuple[np.ndarray, bool]:
    faces = np.asarray(faces)
    channel = faces.ndim == 4
    if channel:
        if faces.shape[-1] != 1:
            raise ValueError(f"expected gray crops (N, H, W) or (N, H, W, 1); got shape {faces.shape}")
        faces = faces[..., 0]
    if faces.ndim != 3:
        raise ValueError(f"expected gray crops (N, H, W) or (N, H, W, 1); got shape {faces.shape}")
    return np.clip(faces, 0, 255).astype(np.uint8), channel


def severities_for(n: int, severity: int | str, seed: int) -> np.ndarray:
    """Each crop's severity: ``severity`` for all, or with ``"all"`` an equal share of 1-5 in a seeded order.

    Sharing the five severities out over the crops estimates ImageNet-C's mean over severities at a fifth of the cost.
    """
    if severity == "all":
        rng = np.random.default_rng([seed, 5])
        return (rng.permutation(n) % len(SEVERITIES)) + 1
    s = int(severity)
    if s not in SEVERITIES:
        raise ValueError(f"severity must be 1-5 or 'all'; got {severity!r}")
    return np.full(n, s)


def corrupt(faces: np.ndarray, condition: str, severity: int | str = "all", seed: int = 0) -> np.ndarray:
    """``faces`` under ``condition``: deterministic for a seed (each crop has its own random stream)."""
    level(condition, 1)  # checks the name
    imgs, channel = _squeeze(faces)
    sev = severities_for(len(imgs), severity, seed)
    key = zlib.crc32(condition.encode())
    out = np.empty_like(imgs)
    for i, img in enumerate(imgs):
        out[i] = corrupt_one(img, condition, float(sev[i]), np.random.default_rng([seed, key, i]))
    return out[..., None] if channel else out


# ---------------------------------------------------------------- whole photos

PHOTO_CONDITIONS: dict[str, str] = {
    "half": "shrunk to half size",
    "quarter": "shrunk to a quarter size",
    "dark": "darkened (gamma 2, exposure x0.5)",
    "noise": "sensor noise (sigma 15 per channel)",
    "blur": "Gaussian blur (sigma 2 px)",
    "jpeg": "saved at JPEG quality 12",
}
"""Whole-photo conditions: a photo as a phone, a webcam or a messaging app might hand it over."""


def photo_scale(condition: str) -> float:
    """How much ``condition`` resizes a photo (face boxes scale by the same factor)."""
    return {"half": 0.5, "quarter": 0.25}.get(condition, 1.0)


def degrade_photo(bgr: np.ndarray, condition: str, seed: int = 0) -> np.ndarray:
    """A uint8 BGR photo under one of :data:`PHOTO_CONDITIONS`, deterministic for ``seed``."""
    import cv2

    if condition not in PHOTO_CONDITIONS:
        raise ValueError(f"unknown photo condition {condition!r}; choose from: {', '.join(PHOTO_CONDITIONS)}")
    img = np.ascontiguousarray(bgr, dtype=np.uint8)
    scale = photo_scale(condition)
    if scale != 1.0:
        size = (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale)))
        return cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    if condition == "dark":
        out = 255.0 * 0.5 * (img / 255.0) ** 2.0
    elif condition == "noise":
        out = img + np.random.default_rng(seed).normal(0, 15, img.shape)
    elif condition == "blur":
        out = cv2.GaussianBlur(img, (0, 0), 2.0)
    else:
        return cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 12])[1], cv2.IMREAD_COLOR)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
