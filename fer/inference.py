"""From a photo or a video frame to emotions: detect, align, classify every face in one call.

::

    rec = EmotionRecognizer()                    # the "photo" profile: shipped ensemble, flip TTA
    rec = EmotionRecognizer(profile="live")      # one pass per model: video and webcams
    rec = EmotionRecognizer("mine.keras")        # a model of your own, under the photo recipe
    for face in rec.analyze(frame_bgr):          # OpenCV / streamlit-webrtc "bgr24" frames
        print(face.box, face.emotion, face.score)

    tracker = FaceTracker(alpha=0.6)             # video: stable ids, smoothed probabilities
    results = tracker.update(rec.analyze(frame_bgr))

One recognizer may be shared by many threads: the detector (ONNX Runtime) and the model's compiled
call (``tf.function``) are both safe to call concurrently, and ``analyze`` keeps no state.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fer.faces import PHOTO_MIN_FACE, Face, align_crop, check_min_score, detect_in_bgr, detector_sizes
from fer.images import FACE_SIZE, load_bgr, to_bgr
from fer.labels import EMOTIONS, NUM_CLASSES
from fer.profiles import DEFAULT_PROFILE, Ensemble, check_profile, load_profile
from fer.results import FaceResult, iou_matrix, make_result

if TYPE_CHECKING:
    from fer.stream import LiveStream

ModelArg = Any
"""None (the shipped default), a path to a ``.keras`` file, ``(keras.Model, ModelCard)``, a keras.Model,
or an :class:`fer.onnx_runtime.OnnxEnsemble`."""




def _check_shape(model) -> None:
    shape = tuple(model.input_shape[1:])
    if shape != (FACE_SIZE, FACE_SIZE, 1) or model.output_shape[-1] != NUM_CLASSES:
        raise ValueError(f"model takes {shape} and gives {model.output_shape[-1]} outputs; "
                         f"expected (48, 48, 1) gray faces and {NUM_CLASSES} emotion probabilities")


ENGINES = ("keras", "onnx")


def load_classifier(profile: str, model: ModelArg, engine: str = "keras"):
    """The emotion models of ``profile`` (or ``model`` under its recipe) on ``engine``: a
    :class:`fer.profiles.Ensemble` ("keras") or :class:`fer.onnx_runtime.OnnxEnsemble` ("onnx")."""
    from fer.detectors import detector_threads
    from fer.onnx_runtime import OnnxEnsemble, load_onnx_profile

    if isinstance(model, OnnxEnsemble):
        return model
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r} is unknown; use one of: {', '.join(ENGINES)}")
    if engine == "onnx":
        return load_onnx_profile(profile, model, threads=detector_threads())
    ensemble = load_profile(profile, model)
    for m in ensemble.models:
        _check_shape(m)
    return ensemble


PROFILE_TTA = object()
"""Default of ``EmotionRecognizer(tta=...)``: the profile's own test-time augmentation."""


class EmotionRecognizer:
    """Detector + aligner + emotion model(s), ready for photos and video frames (thread-safe).

    ``profile`` picks the recipe (:data:`fer.profiles.PROFILES`): "photo" (default; the shipped ensemble,
    or ``model`` alone, with flip TTA) or "live" (one pass per model; ``model`` alone: one pass); both prior-corrected.

    ``detector`` is "centerface" (default) or "haar"; ``input_size`` the longer side CenterFace
    works at (320: 30+ frames/s on 2 cores, faces from ~1/13 of the frame's longer side);
    ``min_face`` the smallest face width that :meth:`analyze` and :meth:`detect` look for in a large
    photo, with a second, finer detector pass where the first would miss it
    (:func:`fer.faces.detector_sizes`; 0: one pass, as the video and live paths use);
    ``min_score`` the default detection threshold of :meth:`analyze`; ``refine`` the second,
    upright look at each face for precise alignment (~2 instead of ~5 degrees; a few ms per face);
    ``tta`` averages each face over test-time views (``"flip"``: the face and its mirror, 2x the
    model's cost, a point more accurate on FER2013 for the shipped model; see
    :data:`fer.evaluate.TTA_MODES`), all in the same single batch.

    ``engine`` runs the emotion models on "keras" (default: the Keras models themselves, as training
    left them; ``self.model`` is the first) or "onnx" (ONNX Runtime: the same probabilities within
    1e-6, about half the cost per face, and no TensorFlow import: the shipped models' graphs are
    committed in models/, another model's conversion is cached, see
    :func:`fer.onnx_runtime.load_onnx_profile`; ``self.model`` is None, so calibration,
    which needs the Keras model, takes a "keras" recognizer; explanations work with both).
    ``model`` may also be an :class:`fer.onnx_runtime.OnnxEnsemble`, which implies "onnx".
    """

    def __init__(self, model: ModelArg = None, *, profile: str = DEFAULT_PROFILE, detector: str = "centerface",
                 input_size: int = 320, min_score: float = 0.5, refine: bool = True,
                 tta: str | None | object = PROFILE_TTA, engine: str = "keras",
                 min_face: int = PHOTO_MIN_FACE) -> None:
        from fer.detectors import get_detector

        check_min_score(min_score)
        self.profile = check_profile(profile)
        ensemble = load_classifier(profile, model, engine)
        if tta is not PROFILE_TTA:
            ensemble = replace(ensemble, tta=tta)  # the ensemble checks it
        self.ensemble = ensemble
        self.engine = "keras" if isinstance(ensemble, Ensemble) else "onnx"
        self.model = ensemble.models[0] if self.engine == "keras" else None
        self.card = ensemble.cards[0]
        self.detector, self.input_size, self.min_score = detector, int(input_size), float(min_score)
        self.refine = bool(refine)
        detector_sizes(1, 1, self.input_size, min_face)  # a bad min_face fails here, not on the first photo
        self.min_face = int(min_face)
        get_detector(detector, self.input_size)  # load now: fail early, not on the first frame
        self.classify(np.zeros((1, FACE_SIZE, FACE_SIZE), np.uint8))  # trace the graph once
        self.detect(np.zeros((240, 320, 3), np.uint8))  # and run the detector once

    @property
    def tta(self) -> str | None:
        """The test-time augmentation each face gets (None: one pass per model)."""
        return self.ensemble.tta

    def with_tta(self, tta: str | None) -> "EmotionRecognizer":
        """This recognizer with another test-time augmentation, sharing its loaded models and detector."""
        twin = copy.copy(self)
        twin.ensemble = replace(self.ensemble, tta=tta)
        return twin

    def classify(self, crops: np.ndarray, corrected: bool = True) -> np.ndarray:
        """Probabilities (n, 7) for uint8 faces (n, 48, 48) or (n, 48, 48, 1), in one compiled call per model:
        this profile's models and TTA views averaged, then prior-corrected (unless ``corrected=False``)."""
        x = np.asarray(crops)
        if x.ndim == 4 and x.shape[-1] == 1:
            x = x[..., 0]
        if x.ndim != 3 or x.shape[1:] != (FACE_SIZE, FACE_SIZE):
            raise ValueError(f"crops have shape {x.shape}; expected (n, 48, 48) gray faces (see fer.faces.crop_faces)")
        return self.ensemble.probabilities(x, corrected=corrected)

    def detect(self, image: np.ndarray, min_score: float | None = None, channels: str = "bgr",
               input_size: int | None = None, min_face: int | None = None) -> list[Face]:
        """Faces in an image array (see :func:`fer.faces.detect_faces`), with this recognizer's settings
        unless given here (``min_face=0`` for video frames: one detector pass)."""
        min_score = self.min_score if min_score is None else min_score
        check_min_score(min_score)
        size = self.input_size if input_size is None else int(input_size)
        min_face = self.min_face if min_face is None else int(min_face)
        return detect_in_bgr(to_bgr(image, channels), min_score, self.detector, size, self.refine, min_face)

    def analyze(self, image: np.ndarray, min_score: float | None = None, channels: str = "bgr",
                input_size: int | None = None, min_face: int | None = None) -> list[FaceResult]:
        """Every face of an image with its emotion: BGR uint8 frames (gray, BGRA, 16-bit accepted too).

        Boxes are in ``image``'s pixel coordinates; faces come left to right; all faces go through
        the model in one batch. ``channels="rgb"`` for RGB arrays; ``input_size`` and ``min_face``
        override the detector's settings for this call (``min_face=0`` for video frames: one pass).
        """
        import cv2

        bgr = to_bgr(image, channels)
        faces = self.detect(bgr, min_score, input_size=input_size, min_face=min_face)
        if not faces:
            return []
        return self.classify_faces(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), faces)

    def classify_faces(self, gray: np.ndarray, faces: list[Face]) -> list[FaceResult]:
        """The second half of :meth:`analyze`: align and crop ``faces`` found in the uint8 ``gray``
        image, classify them in one batch, and return their results in the same order."""
        return self.classify_frames([(gray, faces)])[0]

    def classify_frames(self, frames: Sequence[tuple[np.ndarray | None, list[Face]]]) -> list[list[FaceResult]]:
        """:meth:`classify_faces` for several images (e.g. video frames) at once: every face of every
        ``(gray, faces)`` pair goes through the model in a single call (``gray`` may be None when
        ``faces`` is empty)."""
        crops = [align_crop(gray, f, FACE_SIZE, self.detector) for gray, faces in frames for f in faces]
        probs = self.classify(np.stack(crops)) if crops else np.zeros((0, NUM_CLASSES), np.float32)
        out, k = [], 0
        for _, faces in frames:
            out.append([make_result(f, crops[k + i], probs[k + i]) for i, f in enumerate(faces)])
            k += len(faces)
        return out

    def stream(self, **options) -> "LiveStream":
        """A :class:`fer.stream.LiveStream` for one camera: ``stream.process(frame_bgr)`` per frame gives
        :meth:`analyze`'s results, faster (tracking between detections, ONNX Runtime); ``options`` go to it."""
        from fer.stream import LiveStream

        return LiveStream(self, **options)

    def analyze_file(self, source: str | Path | bytes, min_score: float | None = None,
                     input_size: int | None = None, min_face: int | None = None) -> list[FaceResult]:
        """:meth:`analyze` for an image file or its bytes (EXIF orientation applied: boxes fit the upright image)."""
        return self.analyze(load_bgr(source), min_score, input_size=input_size, min_face=min_face)


# ---------------------------------------------------------------- video

@dataclass
class _Track:
    box: tuple[int, int, int, int]
    probs: np.ndarray
    missed: int = 0


class FaceTracker:
    """Keeps each face's identity across video frames and smooths its probabilities over time.

    A face in a new frame continues the track whose last box overlaps it most (IoU at least
    ``iou_threshold``, greedy, best pairs first); its probabilities become ``alpha * new + (1 -
    alpha) * previous`` (``alpha=1``: no smoothing; smaller: steadier labels, slower to change).
    A track unseen for more than ``max_missed`` frames is dropped. One tracker per video stream.
    """

    def __init__(self, alpha: float = 0.6, iou_threshold: float = 0.3, max_missed: int = 5) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha={alpha} is outside (0, 1]; "
                             "it is the weight of the newest frame (1 = no smoothing)")
        if not 0.0 < iou_threshold < 1.0:
            raise ValueError(f"iou_threshold={iou_threshold} is outside (0, 1); 0.3 is a good value")
        if max_missed < 0:
            raise ValueError(f"max_missed={max_missed} is negative; give the frames a face may vanish for (e.g. 5)")
        self.alpha, self.iou_threshold, self.max_missed = float(alpha), float(iou_threshold), int(max_missed)
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget all tracks (a new video or a new camera session)."""
        with self._lock:
            self._tracks: dict[int, _Track] = {}
            self._next_id = 1

    def update(self, results: list[FaceResult]) -> list[FaceResult]:
        """The same faces with ``track_id`` set and ``scores``/``emotion``/``score`` smoothed (new objects)."""
        with self._lock:
            pairs = self._match([r.box for r in results])
            out = [self._continue(r, pairs.get(i)) for i, r in enumerate(results)]
            self._age(set(pairs.values()) | {r.track_id for r in out})
            return out

    def _match(self, boxes: list[tuple[int, int, int, int]]) -> dict[int, int]:
        ids = list(self._tracks)
        if not boxes or not ids:
            return {}
        iou = iou_matrix(np.array(boxes), np.array([self._tracks[t].box for t in ids]))
        pairs: dict[int, int] = {}
        for flat in np.argsort(-iou, axis=None):
            i, j = divmod(int(flat), len(ids))
            if iou[i, j] < self.iou_threshold:
                break
            if i not in pairs and ids[j] not in pairs.values():
                pairs[i] = ids[j]
        return pairs

    def _continue(self, result: FaceResult, track_id: int | None) -> FaceResult:
        new = np.array([result.scores[e] for e in EMOTIONS], np.float64)
        if track_id is None:
            track_id, self._next_id = self._next_id, self._next_id + 1
            probs = new
        else:
            probs = self.alpha * new + (1.0 - self.alpha) * self._tracks[track_id].probs
        self._tracks[track_id] = _Track(result.box, probs)
        best = int(np.argmax(probs))
        scores = {name: float(p) for name, p in zip(EMOTIONS, probs)}
        return replace(result, track_id=track_id, scores=scores, emotion=EMOTIONS[best], score=float(probs[best]))

    def _age(self, seen: set[int]) -> None:
        for tid in list(self._tracks):
            if tid in seen:
                continue
            self._tracks[tid].missed += 1
            if self._tracks[tid].missed > self.max_missed:
                del self._tracks[tid]
