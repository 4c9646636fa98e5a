"""The live path: one camera stream, frame after frame, with the state that makes it fast.

::

    stream = fer.EmotionRecognizer(profile="live").stream()
    for frame_bgr in camera:                      # e.g. streamlit-webrtc "bgr24" frames
        for face in stream.process(frame_bgr):     # the same FaceResult list as analyze()
            print(face.track_id, face.box, face.emotion)

What it does differently from :meth:`fer.inference.EmotionRecognizer.analyze` (each lever is
timed by ``benchmarks/pipeline_speed.py``):

- **detect every Nth frame, track in between** (and on frames without a face, look every Nth
  frame only: a new face shows up within N frames): the faces' five landmarks are followed with
  pyramidal Lucas-Kanade optical flow (forward and backward); the box moves with them. A face whose
  points do not come back to where they started (the tracker lost confidence), or whose eye
  distance jumps, makes the detector run again on that same frame.
- **a detector input that fits the faces**: CenterFace at ``detect_size`` (160: 160x120 for a
  640x480 webcam, where faces are large), then at the recognizer's own size when it finds nothing.
- **refinement only when needed**: on a detection frame, a face whose first-pass eye points agree
  with the tracked (refined) ones keeps those; only the others get the second, upright look.
- **classification on ONNX Runtime** (:mod:`fer.onnx_runtime`), all faces of a frame in one batch,
  with the profile's prior correction; gray and input buffers are reused between frames.

One stream per camera, used from one thread at a time (a lock guards it); streams of one
recognizer share its detector and the converted model.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np

from fer.faces import Face, align_crop, check_min_score, detect_in_bgr
from fer.images import FACE_SIZE, to_bgr
from fer.results import iou_matrix, make_result

_ONNX: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_ONNX_LOCK = threading.Lock()

LK_PARAMS = {"winSize": (21, 21), "maxLevel": 3}


def onnx_classifier(recognizer):
    """The recognizer's profile on ONNX Runtime (:class:`fer.onnx_runtime.OnnxEnsemble`), converted once."""
    from fer.onnx_runtime import OnnxEnsemble

    if isinstance(recognizer.ensemble, OnnxEnsemble):  # an engine="onnx" recognizer
        return recognizer.ensemble
    with _ONNX_LOCK:
        cached = _ONNX.get(recognizer.model)
        if cached is None or cached[0] is not recognizer.ensemble:
            cached = (recognizer.ensemble, OnnxEnsemble.from_ensemble(recognizer.ensemble))
            _ONNX[recognizer.model] = cached
        return cached[1]


@dataclass
class StreamStats:
    """What a stream did so far: frames, detector runs (and why), refinements skipped, faces."""

    frames: int = 0
    detections: int = 0
    redetections: int = 0  # detections forced by a lost track, between the scheduled ones
    fallbacks: int = 0  # detections repeated at the recognizer's larger input size
    refined: int = 0
    refine_skipped: int = 0
    faces: int = 0


@dataclass
class _Tracked:
    face: Face
    track_id: int
    refined: bool = False  # its landmarks come from the refinement (or were tracked from refined ones)


class LiveStream:
    """Per-camera state for :meth:`process`; make it with ``EmotionRecognizer.stream()``.

    ``detect_every``: the detector runs at least every that many frames (1: every frame);
    ``detect_size``: CenterFace's input size first tried (the recognizer's ``input_size`` is the
    fallback); ``backend``: "onnx" (ONNX Runtime) or "keras" (the recognizer's own compiled model);
    ``max_flow_error``: the largest forward-backward disagreement of a tracked point, as a share of
    the face's width, before the face counts as lost; ``stable_eyes``: how far (share of the face's
    width) the detector's first-pass eyes may lie from the tracked eyes and still skip refinement.
    """

    def __init__(self, recognizer, *, detect_every: int = 5, detect_size: int = 160, min_score: float | None = None,
                 backend: str = "onnx", max_flow_error: float = 0.02, stable_eyes: float = 0.04) -> None:
        if int(detect_every) < 1:
            raise ValueError(f"detect_every={detect_every} must be 1 or more (5 is a good value for webcams)")
        if int(detect_size) < 32:
            raise ValueError(f"detect_size={detect_size} is too small; use 32 or more (160 suits webcams)")
        if backend not in ("onnx", "keras"):
            raise ValueError(f"backend={backend!r} is unknown; use 'onnx' (ONNX Runtime) or 'keras'")
        self.recognizer = recognizer
        self.detect_every, self.detect_size = int(detect_every), int(detect_size)
        self.min_score = recognizer.min_score if min_score is None else float(min_score)
        check_min_score(self.min_score)
        self.backend, self.max_flow_error, self.stable_eyes = backend, float(max_flow_error), float(stable_eyes)
        self._classify = onnx_classifier(recognizer).probabilities if backend == "onnx" else recognizer.classify
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget the faces and the previous frame (a new camera session)."""
        self._tracks: list[_Tracked] = []
        self._prev_gray: np.ndarray | None = None
        self._gray: np.ndarray | None = None
        self._since_detect = self.detect_every  # the first frame is a detection frame
        self._next_id = 1
        self.stats = StreamStats()

    def process(self, frame: np.ndarray, channels: str = "bgr") -> list:
        """The faces of this frame with their emotions (:class:`fer.inference.FaceResult`, left to right),
        each with a ``track_id`` that stays with the face across frames."""
        import cv2


        with self._lock:
            bgr = to_bgr(frame, channels)
            gray = self._gray_of(bgr, cv2)
            self.stats.frames += 1
            due = self._since_detect >= self.detect_every
            if due:
                tracked = None
            elif self._tracks:
                tracked = self._track(gray, cv2)  # None when a face was lost
            else:  # no face lately: the detector looks again every Nth frame only
                tracked, self._since_detect = [], self._since_detect + 1
            if tracked is None:
                tracked = self._detect(bgr, gray, cv2)
            self._tracks = tracked
            self._prev_gray, self._gray = gray, self._prev_gray  # the old frame's buffer is reused next time
            if not tracked:
                return []
            crops = np.stack([align_crop(gray, t.face, FACE_SIZE, self.recognizer.detector) for t in tracked])
            probs = self._classify(crops)
            self.stats.faces += len(tracked)
            results = [make_result(t.face, c, p, t.track_id) for t, c, p in zip(tracked, crops, probs)]
            return sorted(results, key=lambda r: (r.box[0], r.box[1]))

    def _gray_of(self, bgr: np.ndarray, cv2) -> np.ndarray:
        buf = self._gray
        if self._prev_gray is not None and self._prev_gray.shape != bgr.shape[:2]:
            self._prev_gray, self._tracks = None, []  # a new frame size: nothing to track from, detect now
            self._since_detect = self.detect_every
        if buf is None or buf.shape != bgr.shape[:2]:
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY, dst=buf)

    # ------------------------------------------------------------ tracking

    def _flow(self, gray: np.ndarray, cv2) -> list[np.ndarray | None]:
        """Each track's points moved into ``gray`` (None where the tracker lost confidence)."""
        if self._prev_gray is None or not self._tracks:
            return [None] * len(self._tracks)
        pts = [_points(t.face) for t in self._tracks]
        p0 = np.concatenate(pts).astype(np.float32).reshape(-1, 1, 2)
        p1, ok1, _ = cv2.calcOpticalFlowPyrLK(self._prev_gray, gray, p0, None, **LK_PARAMS)
        back, ok2, _ = cv2.calcOpticalFlowPyrLK(gray, self._prev_gray, p1, None, **LK_PARAMS)
        err = np.linalg.norm((back - p0).reshape(-1, 2), axis=1)
        good = (ok1.reshape(-1) == 1) & (ok2.reshape(-1) == 1)
        out, start = [], 0
        for t, p in zip(self._tracks, pts):
            k = slice(start, start + len(p))
            start += len(p)
            limit = self.max_flow_error * max(t.face.box[2], 1)
            out.append(p1[k].reshape(-1, 2) if good[k].all() and err[k].max() <= limit else None)
        return out

    def _track(self, gray: np.ndarray, cv2) -> list[_Tracked] | None:
        """Every face followed into this frame, or None when one was lost (then the detector runs)."""
        moved = self._flow(gray, cv2)
        h, w = gray.shape
        out = []
        for t, pts in zip(self._tracks, moved):
            face = None if pts is None else _moved_face(t.face, pts, w, h, cv2)
            if face is None:
                self.stats.redetections += 1
                return None
            out.append(_Tracked(face, t.track_id, t.refined))
        self._since_detect += 1
        return out

    # ------------------------------------------------------------ detection

    def _detect(self, bgr: np.ndarray, gray: np.ndarray, cv2) -> list[_Tracked]:
        rec = self.recognizer
        self.stats.detections += 1
        self._since_detect = 1
        faces = detect_in_bgr(bgr, self.min_score, rec.detector, self.detect_size, refine=False)
        if not faces and rec.detector == "centerface" and rec.input_size > self.detect_size:
            self.stats.fallbacks += 1
            faces = detect_in_bgr(bgr, self.min_score, rec.detector, rec.input_size, refine=False)
        if not faces:
            return []
        predicted = self._flow(gray, cv2)
        out = []
        for face in faces:
            match = self._match(face, predicted)
            out.append(_Tracked(face, self._new_id()) if match is None else match)
        return self._refine(bgr, out)

    def _match(self, face: Face, predicted: list[np.ndarray | None]) -> _Tracked | None:
        """The track this detected face continues (same id; tracked landmarks when its eyes are stable)."""

        best, best_iou = None, 0.3
        for t, pts in zip(self._tracks, predicted):
            overlap = float(iou_matrix(np.array([face.box]), np.array([t.face.box]))[0, 0])
            if overlap >= best_iou:
                best, best_iou = (t, pts), overlap
        if best is None:
            return None
        t, pts = best
        stable = (pts is not None and face.eyes is not None and t.face.landmarks is not None
                  and t.refined
                  and np.abs(np.asarray(face.eyes) - pts[:2]).max() <= self.stable_eyes * max(face.box[2], 1))
        if stable:
            kept = Face(face.box, face.score, (tuple(pts[0]), tuple(pts[1])), tuple(map(tuple, pts)))
            self.stats.refine_skipped += 1
            return _Tracked(kept, t.track_id, refined=True)
        return _Tracked(face, t.track_id)

    def _refine(self, bgr: np.ndarray, tracks: list[_Tracked]) -> list[_Tracked]:
        """The second, upright look (batched) for the faces whose landmarks were not kept from tracking."""
        from fer.detectors import RawFace, get_detector

        rec = self.recognizer
        todo = [t for t in tracks if not t.refined and t.face.landmarks is not None]
        det = get_detector(rec.detector, self.detect_size)
        if not rec.refine or not todo or not hasattr(det, "refine"):
            return tracks
        raw = [RawFace(t.face.box[0], t.face.box[1], t.face.box[0] + t.face.box[2], t.face.box[1] + t.face.box[3],
                       t.face.score, np.asarray(t.face.landmarks, np.float32)) for t in todo]
        for t, r in zip(todo, det.refine(bgr, raw)):
            marks = tuple((float(x), float(y)) for x, y in r.landmarks)
            t.face = Face(t.face.box, t.face.score, (marks[0], marks[1]), marks)
            t.refined = True
        self.stats.refined += len(todo)
        return tracks

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1


def _points(face: Face) -> np.ndarray:
    """The points tracked for a face: its landmarks, or a 3x3 grid in its box without them."""
    if face.landmarks is not None:
        return np.asarray(face.landmarks, np.float32)
    x, y, w, h = face.box
    gx, gy = np.meshgrid([0.3, 0.5, 0.7], [0.3, 0.5, 0.7])
    return np.stack([x + gx.ravel() * w, y + gy.ravel() * h], axis=1).astype(np.float32)


def _moved_face(face: Face, pts: np.ndarray, w: int, h: int, cv2) -> Face | None:
    """``face`` carried along by its points' motion (a similarity fit), or None if the fit is implausible."""
    old = _points(face)
    m, _ = cv2.estimateAffinePartial2D(old, pts)
    if m is None:
        return None
    scale = float(np.hypot(m[0, 0], m[1, 0]))
    if not 0.8 <= scale <= 1.25:
        return None
    x, y, bw, bh = face.box
    cx, cy = m @ np.array([x + bw / 2, y + bh / 2, 1.0])
    nw, nh = bw * scale, bh * scale
    x1, y1 = int(np.clip(round(cx - nw / 2), 0, w)), int(np.clip(round(cy - nh / 2), 0, h))
    x2, y2 = int(np.clip(round(cx + nw / 2), 0, w)), int(np.clip(round(cy + nh / 2), 0, h))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    if face.landmarks is None:
        return Face((x1, y1, x2 - x1, y2 - y1), face.score)
    marks = tuple((float(px), float(py)) for px, py in pts)
    return Face((x1, y1, x2 - x1, y2 - y1), face.score, (marks[0], marks[1]), marks)
