"""Frames of a real face for Chromium's fake camera (a Y4M file) and for the parity checks.

Used by ``tests/e2e/test_e2e_browser_live.py`` and ``benchmarks/browser_live.py``. Chromium wants
``C420jpeg`` in the Y4M header (ffmpeg's ``C420mpeg2`` files are refused), an absolute path, and
plays the file in a loop.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def face_frames(image_bgr: np.ndarray, n: int = 30, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """``n`` frames (n, h, w, 3) BGR of a photo drifting and zooming a little, like a person before a webcam."""
    w, h = size
    ih, iw = image_bgr.shape[:2]
    frames = np.full((n, h, w, 3), 90, np.uint8)
    for i in range(n):
        phase = 2 * np.pi * i / max(n, 1)
        scale = min((h - 40) / ih, (w - 60) / iw) * (0.92 + 0.06 * np.sin(phase))
        small = cv2.resize(image_bgr, (int(iw * scale), int(ih * scale)), interpolation=cv2.INTER_AREA)
        x0 = (w - small.shape[1]) // 2 + int(12 * np.sin(phase))
        y0 = (h - small.shape[0]) // 2 + int(6 * np.cos(phase))
        frames[i, y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
    return frames


def write_y4m(path: Path, frames: np.ndarray, fps: int = 30) -> Path:
    """``frames`` (n, h, w, 3) BGR as a Y4M file Chromium's fake camera plays (4:2:0, ``C420jpeg``)."""
    n, h, w = frames.shape[:3]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            f.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return Path(path).resolve()
