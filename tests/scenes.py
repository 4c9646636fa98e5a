"""Test scenes made from the real photographs in tests/data, with their true face boxes.

The three portraits have hand-checked face boxes (forehead to chin, cheek to cheek) in
``FACES``. Scenes paste them onto a real face-free background (the coffee photo) with a known
similarity transform (size, rotation, mirror), so the true box of every face in a scene is known:
the bounding box of the transformed true box. Shared by the tests and
``benchmarks/detector_quality.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

DATA = Path(__file__).resolve().parent / "data"

FACES: dict[str, tuple[int, int, int, int]] = {
    "astronaut.jpg": (184, 62, 85, 113),     # frontal, smiling
    "grace_hopper.jpg": (183, 119, 180, 220),  # frontal, glasses, cap
    "camera.jpg": (197, 112, 61, 89),        # turned ~45-60 degrees, looking into a camera
}
"""True face box (x, y, w, h) of each portrait, checked by eye."""

NEGATIVES = ("coffee.jpg", "chelsea.jpg")
"""Real photographs without a human face (a cup of coffee; a cat's face: a hard negative)."""

Box = tuple[int, int, int, int]


@dataclass
class Scene:
    name: str
    image: np.ndarray  # uint8 BGR
    boxes: list[Box]
    sources: list[str] = field(default_factory=list)  # the portrait (a FACES key) of each box


def load(name: str) -> np.ndarray:
    """A tests/data photo as uint8 BGR."""
    img = cv2.imread(str(DATA / name), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(DATA / name)
    return img


def background(size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """A real, face-free photo (coffee) resized to ``size`` (w, h)."""
    return cv2.resize(load("coffee.jpg"), size, interpolation=cv2.INTER_AREA)


def paste(canvas: np.ndarray, name: str, centre: tuple[float, float], face_px: float, angle: float = 0.0,
          mirror: bool = False, margin: float = 0.9) -> Box:
    """Paste the head of portrait ``name`` (face box grown by ``margin`` each side) onto ``canvas``,
    face ``face_px`` wide, centred at ``centre``, rotated ``angle`` degrees (counter-clockwise);
    returns the true box of the pasted face."""
    src = load(name)
    x, y, w, h = FACES[name]
    if mirror:
        src, x = src[:, ::-1].copy(), src.shape[1] - x - w
    scale = face_px / w
    m = cv2.getRotationMatrix2D((x + w / 2, y + h / 2), angle, scale)
    m[:, 2] += np.array(centre) - (x + w / 2, y + h / 2)
    mask = np.zeros(src.shape[:2], np.uint8)
    mx, my = margin * w, margin * h
    cv2.rectangle(mask, (int(x - mx), int(y - my)), (int(x + w + mx), int(y + h + my)), 255, -1)
    size = (canvas.shape[1], canvas.shape[0])
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    warped = cv2.warpAffine(src, m, size, flags=interp)
    on = cv2.warpAffine(mask, m, size, flags=cv2.INTER_NEAREST) > 0
    canvas[on] = warped[on]
    corners = np.array([[x, y, 1], [x + w, y, 1], [x, y + h, 1], [x + w, y + h, 1]], np.float64) @ m.T
    (x1, y1), (x2, y2) = corners.min(0), corners.max(0)
    return round(x1), round(y1), round(x2 - x1), round(y2 - y1)


def portrait(name: str, face_px: float, angle: float = 0.0, mirror: bool = False, light: float = 1.0,
             size: tuple[int, int] = (640, 480)) -> Scene:
    """One face in a ``size`` frame; ``light`` < 1 darkens the whole frame (dim room)."""
    canvas = background(size)
    box = paste(canvas, name, (size[0] / 2, size[1] / 2), face_px, angle, mirror)
    tag = f"{Path(name).stem}{'-mirror' if mirror else ''} {face_px:.0f}px"
    tag += f" rot{angle:+.0f}" if angle else ""
    tag += f" light{light:.2f}" if light != 1.0 else ""
    return Scene(tag, darken(canvas, light), [box], [name])


def darken(image: np.ndarray, light: float) -> np.ndarray:
    """Dim light: scale brightness by ``light`` with a little sensor noise (fixed seed)."""
    if light == 1.0:
        return image
    noise = np.random.default_rng(0).normal(0, 2.0, image.shape)
    return np.clip(image.astype(np.float64) * light + noise, 0, 255).astype(np.uint8)


def in_turn(n: int) -> list[str]:
    """``n`` portrait names, cycling through :data:`FACES`."""
    names = list(FACES)
    return [names[i % len(names)] for i in range(n)]


def grid(face_px: int, cols: int, rows: int, size: tuple[int, int] = (640, 480)) -> Scene:
    """``cols`` x ``rows`` faces ``face_px`` wide, cycling through the portraits and their mirrors."""
    canvas = background(size)
    sources = in_turn(cols * rows)
    boxes = []
    for i, name in enumerate(sources):
        cx = (i % cols + 0.5) * size[0] / cols
        cy = (i // cols + 0.5) * size[1] / rows
        boxes.append(paste(canvas, name, (cx, cy), face_px, mirror=bool((i // 3) % 2), margin=0.45))
    return Scene(f"grid {cols * rows} x {face_px}px", canvas, boxes, sources)


def group(seed: int, n: int = 5, size: tuple[int, int] = (640, 480)) -> Scene:
    """``n`` faces side by side, of random size (50 px up to 3/4 of the spacing), tilt (+-20 degrees)
    and side (mirrored or not)."""
    rng = np.random.default_rng(seed)
    canvas = background(size)
    sources = in_turn(n)
    boxes = []
    for i, name in enumerate(sources):
        face_px = float(rng.uniform(50, min(140, 0.75 * size[0] / n)))
        cx = (i + 0.5) * size[0] / n
        cy = float(rng.uniform(0.35, 0.65) * size[1])
        boxes.append(paste(canvas, name, (cx, cy), face_px, float(rng.uniform(-20, 20)),
                           bool(rng.integers(2)), margin=0.3))
    return Scene(f"group of {n} (seed {seed})", canvas, boxes, sources)


def big_photo(seed: int, size: tuple[int, int] = (4000, 3000), rows: int = 3, cols: int = 4) -> Scene:
    """A camera-sized photo: ``rows`` x ``cols`` faces of random width (40 to 160 px, tilt +-15
    degrees) over the left 60%, and one face 20-30% of the photo's width on the right (a group at the
    back, someone close to the camera)."""
    rng = np.random.default_rng(seed)
    canvas = background(size)
    w, h = size
    sources = in_turn(rows * cols) + [list(FACES)[seed % 3]]
    boxes = []
    for i, name in enumerate(sources[:-1]):
        cx, cy = (i % cols + 0.5) * 0.6 * w / cols, (i // cols + 0.5) * h / rows
        boxes.append(paste(canvas, name, (cx, cy), float(rng.uniform(40, 160)), float(rng.uniform(-15, 15)),
                           bool(rng.integers(2)), margin=0.45))
    big = float(rng.uniform(0.2, 0.3) * w)
    boxes.append(paste(canvas, sources[-1], (0.8 * w, 0.5 * h), big, mirror=bool(seed % 2), margin=0.3))
    return Scene(f"{w}x{h} photo (seed {seed})", canvas, boxes, sources)


def negatives() -> list[Scene]:
    """Face-free images: the two photos, mirrored and cropped variants, noise and a gradient."""
    out = []
    for name in NEGATIVES:
        img = load(name)
        out += [Scene(name, img, []), Scene(f"{name} mirrored", img[:, ::-1].copy(), []),
                Scene(f"{name} centre", _centre(img), [])]
    rng = np.random.default_rng(1)
    out.append(Scene("noise", rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), []))
    ramp = np.tile(np.linspace(0, 255, 640, dtype=np.uint8), (480, 1))
    out.append(Scene("gradient", cv2.cvtColor(ramp, cv2.COLOR_GRAY2BGR), []))
    return out


def _centre(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    return img[h // 4 : h - h // 4, w // 4 : w - w // 4].copy()


def iou(a: Box, b: Box) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union else 0.0


def match(found: list[Box], truth: list[Box], threshold: float = 0.3) -> tuple[int, int]:
    """(true faces found, false positives) with greedy one-to-one IoU matching."""
    pairs = sorted(((iou(f, t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth)), reverse=True)
    used_f, used_t = set(), set()
    for value, i, j in pairs:
        if value >= threshold and i not in used_f and j not in used_t:
            used_f.add(i)
            used_t.add(j)
    return len(used_t), len(found) - len(used_f)


def benchmark_set() -> list[Scene]:
    """The detector-quality set: 8 variants x 3 portraits x 2 sides, 2 grids, 3 groups, 8 negatives."""
    scenes = []
    for name in FACES:
        for mirror in (False, True):
            scenes += [portrait(name, 300, mirror=mirror), portrait(name, 160, mirror=mirror),
                       portrait(name, 80, mirror=mirror), portrait(name, 40, mirror=mirror),
                       portrait(name, 120, 30, mirror), portrait(name, 120, -30, mirror),
                       portrait(name, 120, mirror=mirror, light=0.25),
                       portrait(name, 60, 15, mirror, light=0.4)]
    scenes += [grid(60, 5, 2), grid(40, 5, 2)]
    scenes += [group(seed) for seed in (1, 2, 3)]
    return scenes + negatives()


def moving_face(n: int = 60, name: str = "grace_hopper.jpg", face_px: float = 180.0,
                size: tuple[int, int] = (640, 480), fps: float = 30.0) -> list[Scene]:
    """``n`` frames of a webcam: one face ``face_px`` wide drifting on a slow loop (about 60 px/s),
    nodding a few degrees and leaning in and out by ~10%, over a fixed background."""
    bg = background(size)
    out = []
    for i in range(n):
        t = i / fps
        centre = (size[0] / 2 + 80 * np.sin(0.8 * t), size[1] / 2 + 30 * np.sin(1.3 * t))
        canvas = bg.copy()
        box = paste(canvas, name, centre, face_px * (1 + 0.1 * np.sin(0.5 * t)), angle=6 * np.sin(1.1 * t))
        out.append(Scene(f"moving {i}", canvas, [box], [name]))
    return out
