"""Similarity warps that stay sharp without aliasing when they shrink a lot."""

from __future__ import annotations

import numpy as np


def warp(image: np.ndarray, m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``cv2.warpAffine(image, m, size)`` (pixel-centre convention, replicated border), but a
    region shrunk more than 2x is first area-averaged (``cv2.resize``), as warpAffine alone aliases."""
    import cv2

    m = np.asarray(m, np.float64)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if scale < 0.5:
        image, m = _shrink_region(image, m, size, scale)
    return cv2.warpAffine(image, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _shrink_region(image: np.ndarray, m: np.ndarray, size: tuple[int, int],
                   scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The part of ``image`` the warp reads, resized to 2x the output scale, and the matching matrix."""
    import cv2

    w_out, h_out = size
    inv = cv2.invertAffineTransform(m)
    corners = np.array([[0, 0, 1], [w_out, 0, 1], [0, h_out, 1], [w_out, h_out, 1]], np.float64) @ inv.T
    pad = 2.0 / scale
    h, w = image.shape[:2]
    x0 = int(np.clip(np.floor(corners[:, 0].min() - pad), 0, w - 1))
    y0 = int(np.clip(np.floor(corners[:, 1].min() - pad), 0, h - 1))
    x1 = int(np.clip(np.ceil(corners[:, 0].max() + pad), x0 + 1, w))
    y1 = int(np.clip(np.ceil(corners[:, 1].max() + pad), y0 + 1, h))
    roi = image[y0:y1, x0:x1]
    k = scale * 2.0  # leave a 2x margin for the final interpolation
    rw, rh = max(1, round(roi.shape[1] * k)), max(1, round(roi.shape[0] * k))
    small = cv2.resize(roi, (rw, rh), interpolation=cv2.INTER_AREA)
    kx, ky = rw / roi.shape[1], rh / roi.shape[0]
    # small pixel centre u -> roi pixel centre (u + 0.5) / k - 0.5 -> image pixel centre (+ x0, y0)
    back = np.array([[1 / kx, 0, 0.5 / kx - 0.5 + x0], [0, 1 / ky, 0.5 / ky - 0.5 + y0], [0, 0, 1]])
    return small, m @ back
