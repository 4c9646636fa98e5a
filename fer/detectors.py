"""Face-detector back ends: CenterFace on ONNX Runtime (default) and OpenCV's Haar cascade (baseline).

Each back end is a callable ``detector(bgr, min_score) -> list[RawFace]`` on a uint8 BGR image
(h, w, 3), returning float boxes in that image's pixel coordinates. :mod:`fer.faces` wraps them
with input conversion, alignment and cropping; use :func:`fer.faces.detect_faces` normally.

CenterFace (MIT, Star-Clouds) ships in this package as ``fer/assets/centerface.onnx`` (licence and
origin: ``fer/assets/CENTERFACE_LICENSE.txt``); its graph declares a fixed 10x3x32x32 input, so it
is loaded with the ``onnx`` package and its input and output sizes made free before ONNX Runtime
sees it. Nothing is downloaded at run time.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np

DETECTORS: tuple[str, ...] = ("centerface", "haar")
"""Names accepted by :func:`get_detector`; the first is the default."""


@dataclass(frozen=True)
class RawFace:
    """One detection: box corners (x1, y1, x2, y2), score in 0..1, and landmarks or None.

    Landmarks (k, 2) are x, y points; the first two are the eye on the image's left and the eye on
    the image's right. CenterFace adds the nose tip and the mouth corners (image-left, image-right).
    """

    x1: float
    y1: float
    x2: float
    y2: float
    score: float
    landmarks: np.ndarray | None = None


NMS_IOU = 0.3
"""CenterFace's non-maximum suppression: a box overlapping a better one by more than this IoU is dropped."""
REFINE_SIZE = 96
"""Side of the upright patch of :meth:`CenterFace.refine`'s second look (the face half as wide)."""
REFINE_MIN_SCORE = 0.3
"""Detection threshold inside that patch."""


class Detector(Protocol):
    name: str

    def __call__(self, bgr: np.ndarray, min_score: float) -> list[RawFace]: ...


# ---------------------------------------------------------------- CenterFace

def centerface_model_path() -> str:
    """Path of the CenterFace weights shipped with this package (``fer/assets/centerface.onnx``)."""
    from pathlib import Path

    path = Path(__file__).resolve().parent / "assets" / "centerface.onnx"
    if not path.is_file():
        raise ValueError(f"{path} is missing: the CenterFace face detector's weights ship with the fer package "
                         "(restore the file from the repository), or pass detector='haar'")
    return str(path)


def free_shape_model(path: str) -> bytes:
    """CenterFace graph (serialized) with free batch/height/width and its weights no longer listed as inputs:
    what ONNX Runtime loads here, and what the Live page's in-browser mode serves to onnxruntime-web."""
    import onnx

    model = onnx.load(path)
    weights = {t.name for t in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)  # weights listed as inputs block constant folding in ORT
    for value in [*model.graph.input, *model.graph.output]:
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if axis != 1:
                dim.dim_param = ("batch", "", "height", "width")[axis]
    return model.SerializeToString()


class CenterFace:
    """CenterFace detector: the image is scaled so its longer side is ``input_size`` (padded to /32).

    ``input_size`` trades speed for small faces: at 320 a 640x480 frame runs at 1/4 of the pixels
    and faces down to ~40 px are found (see docs/detectors.md).
    """

    name = "centerface"
    STRIDE = 4

    def __init__(self, input_size: int = 320, threads: int = 0) -> None:
        import onnxruntime as ort

        if input_size < 32:
            raise ValueError(f"input_size {input_size} is too small; use 32 or more (320 is the default)")
        self.input_size = int(input_size)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads
        # no busy-waiting between operators: spinning threads double the time when the cores are
        # shared (web app sessions, the Keras model, other programs) and gain little when they are not
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(free_shape_model(centerface_model_path()), options,
                                            providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def _blob(self, bgr: np.ndarray, input_size: int) -> tuple[np.ndarray, float]:
        import cv2

        h, w = bgr.shape[:2]
        scale = input_size / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        resized = cv2.resize(bgr, (nw, nh), interpolation=interp) if (nw, nh) != (w, h) else bgr
        pad_h, pad_w = -nh % 32, -nw % 32
        if pad_h or pad_w:
            resized = cv2.copyMakeBorder(resized, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        blob = cv2.dnn.blobFromImage(resized, 1.0, swapRB=True)  # RGB, 0..255, NCHW float32
        return blob, nw / w

    def __call__(self, bgr: np.ndarray, min_score: float = 0.5, input_size: int | None = None) -> list[RawFace]:
        """Faces in ``bgr`` with the image scaled to ``input_size`` (default: this detector's).

        A working size above this detector's own gives its memory back after the run (a 1600 px pass
        holds ~400 MB while it runs; ONNX Runtime's arena would otherwise keep it for good)."""
        size_px = self.input_size if input_size is None else int(input_size)
        blob, scale = self._blob(bgr, size_px)
        options = self._shrink_after() if size_px > self.input_size else None
        heat, size, offset, marks = self.session.run(None, {self.input_name: blob}, options)
        faces = _decode_centerface(heat[0, 0], size[0], offset[0], marks[0], min_score, self.STRIDE)
        h, w = bgr.shape[:2]
        return [_rescale(f, 1.0 / scale, w, h) for f in faces]

    @staticmethod
    def _shrink_after():
        import onnxruntime as ort

        options = ort.RunOptions()
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        return options

    def at_sizes(self, bgr: np.ndarray, min_score: float, sizes: tuple[int, ...]) -> list[RawFace]:
        """Faces found at any of several working sizes (an image pyramid; one session serves all), a face
        found at more than one kept once: the best-scored box among those overlapping by more than
        :data:`NMS_IOU`."""
        found = [f for size in sizes for f in self(bgr, min_score, size)]
        return found if len(sizes) < 2 else suppress_overlaps(found)

    def refine(self, bgr: np.ndarray, faces: list[RawFace], size: int = REFINE_SIZE) -> list[RawFace]:
        """Second, sharper look at each face for precise landmarks (eyes to within ~2 degrees).

        Each face is cut out upright (rotated by its first-pass eye angle) at ``size`` px with the
        face half the patch wide, all patches go through the network in one batch, and the landmarks
        are mapped back. Boxes and scores stay from the first pass; a face the second look misses
        keeps its first-pass landmarks.
        """
        from fer.geometry import warp

        todo = [i for i, f in enumerate(faces) if f.landmarks is not None]
        if not todo:
            return faces
        mats = [_upright_patch_matrix(faces[i], size) for i in todo]
        patches = np.stack([warp(bgr, m, (size, size)) for m in mats])
        blob = np.ascontiguousarray(patches[..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32)
        outs = self.session.run(None, {self.input_name: blob})
        out = list(faces)
        for k, (i, m) in enumerate(zip(todo, mats)):
            found = _decode_centerface(outs[0][k, 0], outs[1][k], outs[2][k], outs[3][k], REFINE_MIN_SCORE,
                                       self.STRIDE)
            if found:
                best = min(found, key=lambda r: np.hypot((r.x1 + r.x2 - size) / 2, (r.y1 + r.y2 - size) / 2))
                back = _invert(m)
                marks = (np.hstack([best.landmarks - 0.5, np.ones((len(best.landmarks), 1))]) @ back.T) + 0.5
                out[i] = RawFace(faces[i].x1, faces[i].y1, faces[i].x2, faces[i].y2, faces[i].score,
                                 marks.astype(np.float32))
        return out


def _upright_patch_matrix(face: RawFace, size: int) -> np.ndarray:
    """2x3 matrix (pixel centres) cutting ``face`` upright into a size x size patch, face half as wide."""
    pts = face.landmarks
    (lx, ly), (rx, ry) = pts[0], pts[1]
    angle = np.arctan2(ry - ly, rx - lx)
    cx, cy = pts.mean(axis=0) - 0.5  # continuous -> pixel centres
    scale = 0.5 * size / max(face.x2 - face.x1, 1.0)
    c, s = np.cos(-angle) * scale, np.sin(-angle) * scale
    centre = (size - 1) / 2.0
    return np.array([[c, -s, centre - (c * cx - s * cy)], [s, c, centre - (s * cx + c * cy)]])


def _invert(m: np.ndarray) -> np.ndarray:
    full = np.vstack([m, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def _decode_centerface(heat: np.ndarray, size: np.ndarray, offset: np.ndarray, marks: np.ndarray,
                       min_score: float, stride: int) -> list[RawFace]:
    """Boxes from CenterFace's output maps: heat (h, w), size/offset (2, h, w), marks (10, h, w)."""
    import cv2

    peaks = (heat >= min_score) & (heat >= cv2.dilate(heat, np.ones((3, 3), np.uint8)))
    rows, cols = np.nonzero(peaks)
    if len(rows) == 0:
        return []
    scores = heat[rows, cols]
    bh = np.exp(size[0, rows, cols]) * stride
    bw = np.exp(size[1, rows, cols]) * stride
    cy = (rows + offset[0, rows, cols] + 0.5) * stride
    cx = (cols + offset[1, rows, cols] + 0.5) * stride
    x1, y1 = cx - bw / 2, cy - bh / 2
    lm_x = marks[1::2, rows, cols] * bw + x1  # (5, n): channels alternate y, x
    lm_y = marks[0::2, rows, cols] * bh + y1
    boxes = np.stack([x1, y1, bw, bh], axis=1)
    keep = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), float(min_score), NMS_IOU)
    out = []
    for i in np.asarray(keep, dtype=int).reshape(-1):
        lms = np.stack([lm_x[:, i], lm_y[:, i]], axis=1).astype(np.float32)
        out.append(RawFace(float(x1[i]), float(y1[i]), float(x1[i] + bw[i]), float(y1[i] + bh[i]),
                           float(scores[i]), lms))
    return out


def suppress_overlaps(faces: list[RawFace], iou: float = NMS_IOU) -> list[RawFace]:
    """``faces`` without those overlapping a better-scored one by more than ``iou`` (greedy NMS)."""
    import cv2

    if len(faces) < 2:
        return list(faces)
    boxes = [[f.x1, f.y1, f.x2 - f.x1, f.y2 - f.y1] for f in faces]
    keep = cv2.dnn.NMSBoxes(boxes, [f.score for f in faces], 0.0, iou)
    return [faces[i] for i in sorted(np.asarray(keep, dtype=int).reshape(-1))]


def _rescale(face: RawFace, factor: float, w: int, h: int) -> RawFace:
    lms = None if face.landmarks is None else face.landmarks * factor
    return RawFace(max(0.0, face.x1 * factor), max(0.0, face.y1 * factor), min(float(w), face.x2 * factor),
                   min(float(h), face.y2 * factor), face.score, lms)


# ---------------------------------------------------------------- Haar (baseline)

class HaarDetector:
    """OpenCV's frontal-face Haar cascade (the `fer` package's default detector), as a baseline.

    Eyes come from OpenCV's eye cascade in the upper half of each face when it finds exactly two;
    the score is a fixed 1.0 (cascades give none). ``min_size=50`` reproduces the `fer` package.
    """

    name = "haar"

    def __init__(self, min_size: int = 24, min_neighbors: int = 5, scale_factor: float = 1.1) -> None:
        import cv2

        self.min_size, self.min_neighbors, self.scale_factor = min_size, min_neighbors, scale_factor
        self.face = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        self.eye = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_eye.xml")
        if self.face.empty() or self.eye.empty():
            raise ValueError("OpenCV's Haar cascade files are missing; install opencv-python-headless==4.12.0.88")
        self._lock = threading.Lock()

    def __call__(self, bgr: np.ndarray, min_score: float = 0.5) -> list[RawFace]:
        import cv2

        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        with self._lock:
            boxes = self.face.detectMultiScale(gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                               minSize=(self.min_size, self.min_size))
            return [self._face(gray, int(x), int(y), int(w), int(h)) for x, y, w, h in boxes]

    def _face(self, gray: np.ndarray, x: int, y: int, w: int, h: int) -> RawFace:
        upper = gray[y : y + h // 2, x : x + w]
        eyes = self.eye.detectMultiScale(upper, scaleFactor=1.1, minNeighbors=5, minSize=(max(4, w // 8),) * 2)
        lms = None
        if len(eyes) == 2:
            centres = sorted((x + ex + ew / 2, y + ey + eh / 2) for ex, ey, ew, eh in eyes)
            lms = np.array(centres, np.float32)
        return RawFace(float(x), float(y), float(x + w), float(y + h), 1.0, lms)


# ---------------------------------------------------------------- registry

_LOCK = threading.Lock()


THREADS_ENV = "FER_DETECTOR_THREADS"
"""Environment variable: ONNX Runtime threads per session, the detector's and (``engine="onnx"``) the
emotion models' (unset or 0: one per core). Worker processes that share a machine one per core
(``python -m fer batch``'s actors) set it to 1."""


def detector_threads() -> int:
    value = os.environ.get(THREADS_ENV, "0").strip() or "0"
    if not value.isdigit():
        raise ValueError(f"{THREADS_ENV}={value!r} must be a whole number of threads (0: one per core)")
    return int(value)


@lru_cache(maxsize=8)
def _cached(name: str, input_size: int) -> Detector:
    if name == "centerface":
        return CenterFace(input_size=input_size, threads=detector_threads())
    return HaarDetector()


def get_detector(name: str = "centerface", input_size: int = 320) -> Detector:
    """A shared detector instance (created once per process; safe to call from several threads)."""
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; choose one of: {', '.join(DETECTORS)}")
    with _LOCK:
        return _cached(name, int(input_size) if name == "centerface" else 0)
