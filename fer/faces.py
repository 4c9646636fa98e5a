"""Face detection, eye-level alignment and FER2013-style 48x48 crops.

::

    faces = detect_faces(frame_bgr)              # boxes, eye points, scores (original pixels)
    crops = crop_faces(frame_bgr, faces)         # (n, 48, 48) uint8, framed like FER2013

The crop is a similarity transform (rotation, scale, shift; no shear) that puts the detector's
landmarks where FER2013 faces have them: the rotation makes the eyes level, the scale and shift
are the least-squares fit of the five landmarks (eyes, nose, mouth corners) to the FER2013 means
below, so the face fills the frame from the forehead to the chin as in the training data. Without
landmarks the detector's box is mapped onto the box that detector draws on FER2013 crops. See
docs/framing.md; ``benchmarks/fer_framing.py`` re-measures the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fer.detectors import DETECTORS, RawFace, get_detector
from fer.geometry import warp
from fer.images import FACE_SIZE, to_bgr

Point = tuple[float, float]

FER2013_LANDMARKS = np.array(
    [[14.85, 18.65], [33.15, 18.65], [24.0, 28.2], [16.8, 36.15], [31.2, 36.15]], np.float64)
"""Where FER2013 faces have their eyes, nose tip and mouth corners (48x48, continuous pixel units,
image-left first): medians of the refined CenterFace landmarks on 294 of 300 FER2013 test crops,
mirrored to be symmetric about the centre (``benchmarks/fer_framing.py``)."""

FER2013_BOXES: dict[str, tuple[float, float, float, float]] = {
    "centerface": (4.5, 2.8, 44.4, 47.2),
    "haar": (0.5, 0.8, 47.0, 47.0),
}
"""Median box (x1, y1, x2, y2) each detector draws around FER2013 faces, for crops without landmarks."""

PHOTO_MIN_FACE = 40
"""The smallest face width (pixels of the photo) that still photos are searched for by default
(:func:`detector_sizes`); a face much smaller than the 48 px crop carries little expression anyway."""
DETECTOR_MIN_FACE = 24
"""Face width, in pixels of CenterFace's working image, from which it finds faces reliably (docs/detectors.md)."""
LARGEST_INPUT = 1600
"""The largest working size of the finer pass (its cost grows with the square of the size)."""


def detector_sizes(height: int, width: int, input_size: int = 320, min_face: int = 0) -> tuple[int, ...]:
    """CenterFace's working sizes (longer side) for an image of ``height`` x ``width``.

    ``input_size`` alone finds faces from about 1/13 of the image's longer side (24 px of 320) up to
    the whole frame. ``min_face`` > 0 asks for faces down to that many pixels of the image: when the
    first pass would shrink them below :data:`DETECTOR_MIN_FACE`, a second, finer pass is added (at most
    :data:`LARGEST_INPUT`). Both are needed: at a large working size CenterFace misses faces that
    fill much of the image. A 12-megapixel group photo (4000 px) at 320 px loses every face under
    ~150 px; with ``min_face=40`` it is also searched at 1600 px.
    """
    if min_face < 0 or 0 < min_face < 8:
        raise ValueError(f"min_face={min_face} must be 0 (one pass) or at least 8 pixels")
    if min_face == 0:
        return (input_size,)
    needed = -(-round(max(height, width) * DETECTOR_MIN_FACE / min_face) // 32) * 32
    fine = min(needed, LARGEST_INPUT)
    return (input_size, fine) if fine > 1.25 * input_size else (input_size,)


@dataclass(frozen=True)
class Face:
    """One detected face, in the original image's pixel coordinates.

    ``box`` is (x, y, w, h) in whole pixels, clipped to the image; ``eyes`` is (eye on the image's
    left, eye on the image's right) or None; ``landmarks`` adds the nose tip and the mouth corners
    when the detector gives them; ``score`` is the detector's confidence (0..1).
    """

    box: tuple[int, int, int, int]
    score: float
    eyes: tuple[Point, Point] | None = None
    landmarks: tuple[Point, ...] | None = None


def detect_faces(image: np.ndarray, *, min_score: float = 0.5, detector: str = "centerface",
                 channels: str = "bgr", input_size: int = 320, refine: bool = True,
                 min_face: int = PHOTO_MIN_FACE) -> list[Face]:
    """Find every face in an image array (gray, BGR, BGRA; RGB with ``channels="rgb"``; any size).

    ``min_score`` is the detector's threshold (CenterFace: 0..1); ``input_size`` the longer side
    the image is scaled to for CenterFace (bigger finds smaller faces, slower); ``min_face`` the
    smallest face width to find in a large photo, by a second, finer CenterFace pass when needed
    (:func:`detector_sizes`; 0: one pass, as for video frames); ``refine`` takes a
    second, upright look at each face for precise landmarks (alignment to ~2 degrees instead of
    ~5; a few ms per face). Faces come left to right. For files use
    :func:`fer.images.load_bgr` first (it applies EXIF orientation).
    """
    check_min_score(min_score)
    bgr = to_bgr(image, channels)
    return detect_in_bgr(bgr, min_score, detector, input_size, refine, min_face)


def check_min_score(min_score: float) -> None:
    """Raise ValueError unless 0 < min_score <= 1."""
    if not 0.0 < float(min_score) <= 1.0:
        raise ValueError(f"min_score={min_score} is outside (0, 1]; 0.5 is the default, lower finds more faces")


def detect_in_bgr(bgr: np.ndarray, min_score: float, detector: str = "centerface", input_size: int = 320,
                  refine: bool = True, min_face: int = 0) -> list[Face]:
    """:func:`detect_faces` for an array that is already uint8 BGR (h, w, 3): no conversion
    (``min_face`` 0 here: one pass, the live paths' default)."""
    import cv2

    if detector not in DETECTORS:
        raise ValueError(f"unknown face detector {detector!r}; choose one of: {', '.join(DETECTORS)}")
    det = get_detector(detector, input_size)
    sizes = detector_sizes(*bgr.shape[:2], input_size, min_face)
    raw = det.at_sizes(bgr, min_score, sizes) if len(sizes) > 1 and hasattr(det, "at_sizes") else det(bgr, min_score)
    if not raw and detector == "centerface":
        raw = _detect_padded(det, bgr, min_score, cv2)
    if refine and raw and hasattr(det, "refine"):
        raw = det.refine(bgr, raw)
    h, w = bgr.shape[:2]
    faces = [_to_face(r, w, h) for r in raw]
    return sorted((f for f in faces if f.box[2] > 1 and f.box[3] > 1), key=lambda f: (f.box[0], f.box[1]))


def _detect_padded(det, bgr: np.ndarray, min_score: float, cv2) -> list[RawFace]:
    """Second look with a grey border: a face filling the whole picture (a face crop) has no context."""
    h, w = bgr.shape[:2]
    py, px = h // 3, w // 3
    padded = cv2.copyMakeBorder(bgr, py, py, px, px, cv2.BORDER_CONSTANT, value=(128, 128, 128))
    shift = np.array([px, py], np.float32)
    return [RawFace(r.x1 - px, r.y1 - py, r.x2 - px, r.y2 - py, r.score,
                    None if r.landmarks is None else r.landmarks - shift) for r in det(padded, min_score)]


def _to_face(r: RawFace, w: int, h: int) -> Face:
    x1, y1 = int(np.clip(np.floor(r.x1), 0, w)), int(np.clip(np.floor(r.y1), 0, h))
    x2, y2 = int(np.clip(np.ceil(r.x2), 0, w)), int(np.clip(np.ceil(r.y2), 0, h))
    marks = None if r.landmarks is None else tuple((float(x), float(y)) for x, y in r.landmarks)
    eyes = None if marks is None else (marks[0], marks[1])
    return Face((x1, y1, x2 - x1, y2 - y1), float(r.score), eyes, marks)


# ---------------------------------------------------------------- alignment and crops

def face_transform(face: Face, size: int = FACE_SIZE, detector: str = "centerface") -> np.ndarray:
    """The 2x3 affine matrix taking image pixel centres to ``size`` x ``size`` crop pixel centres.

    With landmarks: rotation that levels the eyes, then the least-squares scale and shift that
    put the landmarks on :data:`FER2013_LANDMARKS`. Without: the detector's box onto its FER2013 box.
    """
    if face.landmarks is not None and len(face.landmarks) >= 2:
        m = _landmark_transform(np.asarray(face.landmarks, np.float64))
    else:
        m = _box_transform(face.box, FER2013_BOXES.get(detector, FER2013_BOXES["centerface"]))
    m = m * (size / FACE_SIZE)
    # continuous coordinates -> pixel centres: x_pc = x_c - 0.5 on both sides
    m[:, 2] += m[:, :2].sum(axis=1) * 0.5 - 0.5
    return m


def _landmark_transform(points: np.ndarray) -> np.ndarray:
    template = FER2013_LANDMARKS[: len(points)]
    (lx, ly), (rx, ry) = points[0], points[1]
    angle = np.arctan2(ry - ly, rx - lx)
    c, s = np.cos(-angle), np.sin(-angle)
    rot = np.array([[c, -s], [s, c]])
    p = points @ rot.T
    pc, tc = p - p.mean(0), template - template.mean(0)
    scale = float((pc * tc).sum() / max((pc**2).sum(), 1e-9))
    shift = template.mean(0) - scale * p.mean(0)
    return np.hstack([scale * rot, shift[:, None]])


def _box_transform(box: tuple[int, int, int, int], ref: tuple[float, float, float, float]) -> np.ndarray:
    x, y, w, h = box
    rw, rh = ref[2] - ref[0], ref[3] - ref[1]
    scale = 0.5 * (rw / max(w, 1) + rh / max(h, 1))
    tx = (ref[0] + ref[2]) / 2 - scale * (x + w / 2)
    ty = (ref[1] + ref[3]) / 2 - scale * (y + h / 2)
    return np.array([[scale, 0.0, tx], [0.0, scale, ty]])


def align_crop(gray: np.ndarray, face: Face, size: int = FACE_SIZE, detector: str = "centerface") -> np.ndarray:
    """The face as a ``size`` x ``size`` uint8 crop framed like FER2013, from a uint8 gray image."""
    return warp(gray, face_transform(face, size, detector), (size, size))


def crop_faces(image: np.ndarray, faces: list[Face], *, channels: str = "bgr", size: int = FACE_SIZE,
               detector: str = "centerface") -> np.ndarray:
    """Aligned FER2013-style crops of ``faces`` in ``image``: (n, size, size) uint8 gray."""
    import cv2

    if not faces:
        return np.zeros((0, size, size), np.uint8)
    gray = cv2.cvtColor(to_bgr(image, channels), cv2.COLOR_BGR2GRAY)
    return np.stack([align_crop(gray, f, size, detector) for f in faces])
