"""Annotated pictures: a box per face and a label with its emotion and confidence.

``draw(image, results)`` returns an annotated copy; lines and text scale with the image so they
stay readable from thumbnails to 4K frames. :data:`EMOTION_COLORS` is the one colour per emotion
shared with the app's charts. Both ``fer.draw(...)`` and ``fer.draw.EMOTION_COLORS`` work, whether
``fer.draw`` resolves to this module or to the function.
"""

from __future__ import annotations

import sys
import types
from typing import Iterable

import numpy as np

from fer.images import to_bgr

EMOTION_COLORS: dict[str, str] = {
    "angry": "#E53935",
    "disgust": "#43A047",
    "fear": "#8E24AA",
    "happy": "#FDD835",
    "sad": "#1E88E5",
    "surprise": "#FB8C00",
    "neutral": "#90A4AE",
}
"""Hex colour per emotion (in :data:`fer.labels.EMOTIONS` order), for boxes and for charts."""


def hex_to_bgr(color: str) -> tuple[int, int, int]:
    """'#RRGGBB' -> (b, g, r) for OpenCV."""
    value = color.lstrip("#")
    if len(value) != 6:
        raise ValueError(f"colour {color!r} is not of the form '#RRGGBB'")
    r, g, b = (int(value[i : i + 2], 16) for i in (0, 2, 4))
    return b, g, r


def _label(result) -> str:
    text = f"{result.emotion} {result.score:.0%}"
    track = getattr(result, "track_id", None)
    return text if track is None else f"#{track} {text}"


def _text_color(bgr: tuple[int, int, int]) -> tuple[int, int, int]:
    b, g, r = bgr
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def draw(image: np.ndarray, results: Iterable, *, channels: str = "bgr") -> np.ndarray:
    """An annotated copy of ``image``: each result's box in its emotion's colour, labelled
    "emotion NN%" (with "#id" for tracked faces). Returns BGR (RGB when ``channels="rgb"``);
    gray and BGRA inputs come back as BGR. ``results`` are :class:`fer.inference.FaceResult`."""
    import cv2

    out = to_bgr(image, channels).copy()
    h, w = out.shape[:2]
    unit = max(h, w) / 640.0
    thick = max(1, round(2 * unit))
    font, font_scale = cv2.FONT_HERSHEY_SIMPLEX, max(0.35, 0.6 * unit)
    text_thick = max(1, round(1.5 * unit))
    for r in results:
        color = hex_to_bgr(EMOTION_COLORS.get(r.emotion, "#FFFFFF"))
        x, y, bw, bh = (int(v) for v in r.box)
        cv2.rectangle(out, (x, y), (x + bw - 1, y + bh - 1), color, thick)
        _put_label(out, _label(r), (x, y, bw, bh), color, font, font_scale, text_thick)
    return np.ascontiguousarray(out[..., ::-1]) if channels == "rgb" else out


def _put_label(img: np.ndarray, text: str, box: tuple[int, int, int, int], color: tuple[int, int, int],
               font: int, scale: float, thick: int) -> None:
    import cv2

    h, w = img.shape[:2]
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    pad = max(2, th // 4)
    lw, lh = tw + 2 * pad, th + base + 2 * pad
    x, y, _, bh = box
    top = y - lh if y - lh >= 0 else min(y + bh, h - lh)  # above the box, else below it
    top = max(0, top)
    left = int(np.clip(x, 0, max(0, w - lw)))
    cv2.rectangle(img, (left, top), (left + lw, top + lh), color, -1)
    cv2.putText(img, text, (left + pad, top + pad + th), font, scale, _text_color(color), thick, cv2.LINE_AA)


draw.EMOTION_COLORS = EMOTION_COLORS  # type: ignore[attr-defined]  # fer.draw may resolve to the function


class _CallableModule(types.ModuleType):
    """Lets ``fer.draw(image, results)`` work once ``fer.draw`` is this module (after any import of it)."""

    def __call__(self, image: np.ndarray, results: Iterable, **kwargs) -> np.ndarray:
        return draw(image, results, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
