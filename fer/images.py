"""Decoding image files and arrays into the model's input form (48x48 uint8 grayscale)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

FACE_SIZE = 48
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
MAX_PIXELS = 40_000_000
"""Images declaring more pixels than this are refused before decoding (decompression bombs)."""


def open_image(source: str | Path | bytes) -> Image.Image:
    """Open an image file or bytes, refusing bombs, with EXIF orientation applied and pixels loaded."""
    fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        img = Image.open(fp)
        w, h = img.size
        if w * h > MAX_PIXELS:
            raise ValueError(f"image is {w}x{h} pixels, more than the {MAX_PIXELS:,} allowed; downscale it first")
        img.seek(0)  # first frame of animations
        img = ImageOps.exif_transpose(img)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"not a readable image ({type(exc).__name__}: {exc})") from None
    return img


def pil_to_gray(img: Image.Image) -> np.ndarray:
    """Convert any PIL mode (RGB, RGBA, palette, CMYK, 16-bit, float) to a uint8 gray array."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img).astype(np.float64)
        top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        return np.clip(arr * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
    if img.mode == "F":
        return np.clip(np.asarray(img), 0, 255).astype(np.uint8)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("L"), dtype=np.uint8)


def to_face_array(gray: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """Centre-crop a gray array to a square and resize it to ``size`` x ``size`` uint8."""
    import cv2

    h, w = gray.shape[:2]
    side = min(h, w)
    if side == 0:
        raise ValueError("image has zero width or height")
    top, left = (h - side) // 2, (w - side) // 2
    square = gray[top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(square, dtype=np.uint8)
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(square, (size, size), interpolation=interp).astype(np.uint8)


def load_face_file(path: str | Path) -> np.ndarray:
    """Read a face-crop image file of any size/mode into a 48x48 uint8 gray array."""
    return to_face_array(pil_to_gray(open_image(path)))
