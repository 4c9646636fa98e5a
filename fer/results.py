"""What the recognizer returns for a face (:class:`FaceResult`), shared by the photo path
(:mod:`fer.inference`) and the live path (:mod:`fer.stream`), and box overlap for tracking."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fer.faces import Face, Point
from fer.labels import EMOTIONS


@dataclass
class FaceResult:
    """One face of an image: where it is, and what the model makes of it.

    ``box`` is (x, y, w, h) in the original image's pixels, ``eyes`` the eye points (image-left
    eye first) or None, ``scores`` all 7 probabilities in :data:`fer.labels.EMOTIONS` order,
    ``emotion``/``score`` the most probable one, ``crop`` the 48x48 uint8 face the model saw, and
    ``track_id`` the identity :class:`FaceTracker` gave it (None outside video).
    """

    box: tuple[int, int, int, int]
    eyes: tuple[Point, Point] | None
    detector_score: float
    emotion: str
    score: float
    scores: dict[str, float]
    crop: np.ndarray
    track_id: int | None = None

    def to_dict(self) -> dict:
        """JSON-friendly form: box, eyes, detector_score, emotion, score, scores, track_id (no crop)."""
        eyes = None if self.eyes is None else [[round(float(v), 1) for v in p] for p in self.eyes]
        return {
            "box": [int(v) for v in self.box],
            "eyes": eyes,
            "detector_score": round(float(self.detector_score), 4),
            "emotion": self.emotion,
            "score": round(float(self.score), 4),
            "scores": {k: round(float(v), 4) for k, v in self.scores.items()},
            "track_id": self.track_id,
        }


def make_result(face: Face, crop: np.ndarray, probs: np.ndarray, track_id: int | None = None) -> FaceResult:
    """The :class:`FaceResult` of a detected face, its 48x48 crop and its 7 probabilities."""
    best = int(np.argmax(probs))
    scores = {name: float(p) for name, p in zip(EMOTIONS, probs)}
    return FaceResult(face.box, face.eyes, face.score, EMOTIONS[best], float(probs[best]), scores, crop, track_id)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``a`` (n, 4) with every box in ``b`` (m, 4), as x, y, w, h."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    ax2, ay2, bx2, by2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
