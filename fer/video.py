"""Video files: every face found, tracked and classified; an annotated video and a per-frame table.

::

    rec = EmotionRecognizer()
    info = probe_video("clip.mp4")                       # size, fps, frames, duration
    VideoLimits(max_mb=200, max_seconds=300).check(info)  # ValueError before any work
    result = analyze_video(rec, "clip.mp4", out="annotated.mp4", progress=lambda done, total: ...)
    result.write_csv("timeline.csv"); result.summary()   # per frame and face; share of time per emotion

Speed: the face detector (~20 ms a frame on 2 cores) runs on every ``detect_every``-th frame
only (default 3). The frames between two such key frames get their faces by interpolating the
boxes and landmarks of the faces matched between the two key frames; when the faces found at the
two key frames do not pair up one to one (a face appears, leaves, or moves too far), every frame
between them is detected instead. The model still classifies every face on every frame, from
that frame's own pixels, with several frames' faces batched into one call. A
:class:`fer.inference.FaceTracker` gives stable ids and smooths the probabilities.

The annotated video is H.264 in MP4 (or VP8 in WebM), encoded by the ffmpeg binary that the
``imageio-ffmpeg`` wheel ships (with libx264 and libvpx), so browsers play it; it has no audio track.
"""

from __future__ import annotations

import csv
import io
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from fer.faces import Face
from fer.labels import EMOTIONS

CSV_FIELDS = ["frame", "time_s", "track_id", "x", "y", "w", "h", "emotion", "score", *EMOTIONS]
"""Columns of the per-frame table: one row per face per frame, box in the video's pixels."""

VIDEO_TYPES = ["mp4", "mov", "m4v", "avi", "mkv", "webm", "mpg", "mpeg", "wmv"]
"""File types offered for upload (anything FFmpeg in OpenCV decodes is read)."""

OUTPUT_CODECS: dict[str, tuple[str, tuple[str, ...]]] = {
    ".mp4": ("libx264", ("-preset", "superfast", "-crf", "23", "-movflags", "+faststart")),
    ".webm": ("libvpx", ("-deadline", "realtime", "-cpu-used", "8", "-b:v", "2M")),
}
"""Encoder and ffmpeg output options per suffix: both play in every current browser."""

FALLBACK_FPS = 25.0
BATCH_FRAMES = 12
"""Frames whose faces go through the model together (one compiled call)."""

Progress = Callable[[int, int], None]
"""``progress(frames_done, frames_total)``; ``frames_total`` is the container's estimate (0 if unknown)."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video, read without decoding it."""

    width: int
    height: int
    fps: float
    frames: int  # 0 when the container does not say
    size_mb: float

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps if self.frames else 0.0


@dataclass(frozen=True)
class VideoLimits:
    """The largest video accepted: file size in MB, length in seconds, number of frames (None: no limit)."""

    max_mb: float | None = None
    max_seconds: float | None = None
    max_frames: int | None = None

    def check(self, info: VideoInfo) -> None:
        """``ValueError`` naming the limit when ``info`` is over one of them."""
        if self.max_mb is not None and info.size_mb > self.max_mb:
            raise ValueError(f"the video file is {info.size_mb:.1f} MB, over the {self.max_mb:g} MB limit; "
                             "cut it shorter or compress it and try again")
        if self.max_seconds is not None and info.duration_s > self.max_seconds:
            raise ValueError(f"the video lasts {info.duration_s:.1f} s, over the {self.max_seconds:g} s limit; "
                             "cut it shorter and try again")
        if self.max_frames is not None and info.frames > self.max_frames:
            raise ValueError(f"the video has {info.frames} frames, over the {self.max_frames} frame limit; "
                             "cut it shorter or lower its frame rate and try again")

    def check_running(self, frames: int, fps: float) -> None:
        """The same limits on the frames actually read (containers may understate their length)."""
        self.check(VideoInfo(0, 0, fps, frames, 0.0))


def probe_video(path: str | Path) -> VideoInfo:
    """Size, frame rate and length of a video file; ``ValueError`` when it cannot be opened."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"cannot open video {path}: there is no such file")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ValueError(f"cannot open video {path.name} (not a video, or an unsupported codec); "
                             "try an MP4 (H.264) or WebM file")
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps, frames = _fps(cap.get(cv2.CAP_PROP_FPS)), max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
    finally:
        cap.release()
    if width <= 0 or height <= 0:
        raise ValueError(f"video {path.name} has no picture (no video stream); upload a video with images")
    return VideoInfo(width, height, fps, frames, path.stat().st_size / 1e6)


def _fps(value: float) -> float:
    return float(value) if value and np.isfinite(value) and 1.0 <= value <= 240.0 else FALLBACK_FPS


# ---------------------------------------------------------------- result


@dataclass
class VideoResult:
    """The analysis of one video: the per-frame table, the timing, and where the annotated copy went."""

    info: VideoInfo
    frames: int = 0
    detected_frames: int = 0
    rows: list[list] = field(default_factory=list)  # CSV_FIELDS order; probabilities as floats
    seconds: float = 0.0
    cancelled: bool = False
    output: Path | None = None

    @property
    def fps(self) -> float:
        return self.info.fps

    @property
    def realtime_factor(self) -> float:
        """Video seconds processed per wall-clock second (1 = exactly real time)."""
        return (self.frames / self.fps) / self.seconds if self.seconds > 0 else 0.0

    def track_ids(self) -> list[int]:
        return sorted({int(r[2]) for r in self.rows})

    def summary(self) -> list[dict]:
        """One dict per tracked face: id, frames, seconds on screen, first/last time, main emotion and
        the share of its frames spent in each emotion (the most probable one after smoothing)."""
        out = []
        for tid in self.track_ids():
            rows = [r for r in self.rows if r[2] == tid]
            counts = {e: sum(r[7] == e for r in rows) for e in EMOTIONS}
            shares = {e: counts[e] / len(rows) for e in EMOTIONS}
            out.append({"face": tid, "frames": len(rows), "seconds": round(len(rows) / self.fps, 2),
                        "first_s": rows[0][1], "last_s": rows[-1][1],
                        "main emotion": max(EMOTIONS, key=lambda e: counts[e]), **shares})
        return out

    def timeline(self, track_id: int) -> tuple[list[float], list[dict[str, float]]]:
        """Times (s) and smoothed probabilities of one tracked face, frame by frame."""
        rows = [r for r in self.rows if r[2] == track_id]
        return [r[1] for r in rows], [dict(zip(EMOTIONS, r[9:])) for r in rows]

    def csv_text(self) -> str:
        buf = io.StringIO()
        self._write_csv(buf)
        return buf.getvalue()

    def write_csv(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            self._write_csv(f)
        return path

    def _write_csv(self, f) -> None:
        writer = csv.writer(f)
        writer.writerow(CSV_FIELDS)
        for r in self.rows:
            writer.writerow([r[0], f"{r[1]:.3f}", *r[2:8], f"{r[8]:.4f}", *(f"{p:.4f}" for p in r[9:])])


# ---------------------------------------------------------------- analysis


def analyze_video(recognizer, source: str | Path, out: str | Path | None = None, *, detect_every: int = 3,
                  alpha: float = 0.6, min_score: float | None = None, limits: VideoLimits | None = None,
                  progress: Progress | None = None, cancel: Callable[[], bool] | None = None) -> VideoResult:
    """Detect, track and classify every face of a video file; write the annotated copy to ``out``.

    ``limits`` are checked before any frame is decoded (and again as frames are read);
    ``detect_every`` is the key-frame step (1: detect every frame); ``alpha`` the tracker's
    smoothing; ``progress`` is called every few frames; when ``cancel()`` returns True the
    analysis stops and the result (frames so far) has ``cancelled=True``.
    """
    if int(detect_every) < 1:
        raise ValueError(f"detect_every={detect_every} must be 1 or more (3 is a good value)")
    check_output_name(out)
    info = probe_video(source)
    limits = limits or VideoLimits()
    limits.check(info)
    result, start = VideoResult(info), time.perf_counter()
    try:
        _run(recognizer, source, out, result, limits, int(detect_every), alpha, min_score, progress, cancel)
    except BaseException:
        if result.output is not None:
            result.output.unlink(missing_ok=True)  # no half-written video left behind
        raise
    if result.frames == 0:
        raise ValueError(f"no frames could be read from {Path(source).name}; the file may be damaged")
    result.seconds = time.perf_counter() - start
    return result


def _run(recognizer, source, out, result: VideoResult, limits: VideoLimits, every: int, alpha: float,
         min_score: float | None, progress: Progress | None, cancel: Callable[[], bool] | None) -> None:
    import cv2

    from fer.inference import FaceTracker

    tracker, cap, writer = FaceTracker(alpha=alpha), cv2.VideoCapture(str(source)), None
    try:
        keyed = _keyed_frames(_read_frames(cap, limits, result.fps), recognizer, every, min_score, result)
        for batch in _batches(keyed):
            for (frame, _, _), faces in zip(batch, _classify(recognizer, batch)):
                if writer is None and out is not None:
                    writer, result.output = VideoWriter(out, result.fps, frame.shape), Path(out)
                _emit(result, tracker.update(faces), frame, writer)
            if progress is not None:
                progress(result.frames, result.info.frames)
            if cancel is not None and cancel():
                result.cancelled = True
                return
    finally:
        cap.release()
        if writer is not None:
            writer.close()


def _read_frames(cap, limits: VideoLimits, fps: float) -> Iterator[np.ndarray]:
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            return
        n += 1
        limits.check_running(n, fps)
        yield frame


def sample_frames(source: str | Path, every: int = 1,
                  limits: VideoLimits | None = None) -> Iterator[tuple[int, float, np.ndarray]]:
    """``(frame index, time in s, BGR frame)`` of every ``every``-th frame of a video (the first one
    included), read as :func:`analyze_video` reads them; ``limits`` checked first and as frames come."""
    import cv2

    if int(every) < 1:
        raise ValueError(f"every={every} must be 1 or more")
    info = probe_video(source)
    limits = limits or VideoLimits()
    limits.check(info)
    cap = cv2.VideoCapture(str(source))
    try:
        for i, frame in enumerate(_read_frames(cap, limits, info.fps)):
            if i % int(every) == 0:
                yield i, round(i / info.fps, 3), frame
    finally:
        cap.release()


def _emit(result: VideoResult, faces: list, frame: np.ndarray, writer) -> None:
    from fer.draw import draw

    t = round(result.frames / result.fps, 3)
    for f in faces:
        result.rows.append([result.frames, t, int(f.track_id), *(int(v) for v in f.box), f.emotion,
                            float(f.score), *(float(f.scores[e]) for e in EMOTIONS)])
    if writer is not None:
        writer.write(draw(frame, faces))
    result.frames += 1


# A keyed frame: (BGR frame, its faces, whether the detector ran on it).
Keyed = tuple[np.ndarray, list[Face], bool]


def _keyed_frames(frames: Iterator[np.ndarray], recognizer, every: int, min_score: float | None,
                  result: VideoResult) -> Iterator[Keyed]:
    """Every frame with its faces: detected on key frames, interpolated (or detected) in between."""

    def detect(frame: np.ndarray) -> list[Face]:
        result.detected_frames += 1
        return recognizer.detect(frame, min_score, min_face=0)  # frames: one detector pass, for speed

    key: Keyed | None = None
    pending: list[np.ndarray] = []
    for frame in frames:
        if key is None:
            key = (frame, detect(frame), True)
            continue
        pending.append(frame)
        if len(pending) == every:
            nxt = (pending[-1], detect(pending[-1]), True)
            yield key
            yield from _between(key[1], nxt[1], pending[:-1], detect)
            key, pending = nxt, []
    if key is None:
        return
    yield key
    if pending:  # the video ends between two key frames: its last frame closes the gap
        last = (pending[-1], detect(pending[-1]), True)
        yield from _between(key[1], last[1], pending[:-1], detect)
        yield last


def _between(a: list[Face], b: list[Face], frames: list[np.ndarray], detect) -> Iterator[Keyed]:
    pairs = pair_faces(a, b)
    for i, frame in enumerate(frames):
        if pairs is None:
            yield frame, detect(frame), True
        else:
            t = (i + 1) / (len(frames) + 1)
            yield frame, [interpolate_face(fa, fb, t) for fa, fb in pairs], False


def pair_faces(a: list[Face], b: list[Face], min_iou: float = 0.3) -> list[tuple[Face, Face]] | None:
    """The faces of two key frames paired one to one by box overlap, or None when they do not all pair."""
    from fer.inference import iou_matrix

    if len(a) != len(b):
        return None
    if not a:
        return []
    iou = iou_matrix(np.array([f.box for f in a]), np.array([f.box for f in b]))
    pairs: dict[int, int] = {}
    for flat in np.argsort(-iou, axis=None):
        i, j = divmod(int(flat), len(b))
        if iou[i, j] < min_iou:
            break
        if i not in pairs and j not in pairs.values():
            pairs[i] = j
    if len(pairs) != len(a):
        return None
    return [(a[i], b[j]) for i, j in sorted(pairs.items())]


def interpolate_face(a: Face, b: Face, t: float) -> Face:
    """The face a fraction ``t`` of the way from ``a`` (t=0) to ``b`` (t=1): box, score and landmarks."""
    box = tuple(int(round((1 - t) * p + t * q)) for p, q in zip(a.box, b.box))
    marks = None
    if a.landmarks is not None and b.landmarks is not None and len(a.landmarks) == len(b.landmarks):
        marks = tuple(tuple(float((1 - t) * p + t * q) for p, q in zip(pa, pb))
                      for pa, pb in zip(a.landmarks, b.landmarks))
    eyes = (marks[0], marks[1]) if marks else (a.eyes if t < 0.5 else b.eyes)
    if marks is None and (a.landmarks is not None or b.landmarks is not None):
        marks = a.landmarks if t < 0.5 else b.landmarks
    return replace(a, box=box, score=float((1 - t) * a.score + t * b.score), eyes=eyes, landmarks=marks)


def _batches(keyed: Iterator[Keyed], size: int = BATCH_FRAMES) -> Iterator[list[Keyed]]:
    batch: list[Keyed] = []
    for item in keyed:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _classify(recognizer, batch: list[Keyed]) -> list[list]:
    """The FaceResults of every frame of ``batch``, all faces through the model in one call."""
    import cv2

    frames = [(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if faces else None, faces) for frame, faces, _ in batch]
    return recognizer.classify_frames(frames)


# ---------------------------------------------------------------- writing


def check_output_name(path: str | Path | None) -> None:
    """``ValueError`` unless ``path`` is None or ends in a suffix this module can write."""
    if path is not None and Path(path).suffix.lower() not in OUTPUT_CODECS:
        raise ValueError(f"cannot write {Path(path).name}: use a name ending in {' or '.join(OUTPUT_CODECS)}")


class VideoWriter:
    """H.264/MP4 or VP8/WebM: raw BGR frames piped to imageio-ffmpeg's ffmpeg; even frame sizes."""

    def __init__(self, path: str | Path, fps: float, shape: tuple[int, ...]) -> None:
        import imageio_ffmpeg

        self.path = Path(path)
        check_output_name(self.path)
        codec, options = OUTPUT_CODECS[self.path.suffix.lower()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.height, self.width = shape[0] + shape[0] % 2, shape[1] + shape[1] % 2
        rate = Fraction(fps).limit_denominator(1001)
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{self.width}x{self.height}", "-r", str(rate),
               "-i", "-", "-an", "-c:v", codec, *options, "-pix_fmt", "yuv420p", str(self.path)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, bgr: np.ndarray) -> None:
        import cv2

        h, w = bgr.shape[:2]
        if (h, w) != (self.height, self.width):  # odd sizes: repeat the last row / column
            bgr = cv2.copyMakeBorder(bgr, 0, self.height - h, 0, self.width - w, cv2.BORDER_REPLICATE)
        try:
            self.proc.stdin.write(np.ascontiguousarray(bgr, dtype=np.uint8).tobytes())
        except BrokenPipeError:
            self.close()  # ffmpeg quit: close() raises with its message

    def close(self) -> None:
        """Finish the file; ``OSError`` with ffmpeg's last message if it failed (again on every call)."""
        if self.proc.returncode is None:
            self.proc.stdin.close()
            with self.proc.stderr:
                self.error = self.proc.stderr.read().decode(errors="replace").strip().splitlines()
            self.proc.wait()
        if self.proc.returncode:
            raise OSError(f"cannot write video {self.path}: {self.error[-1] if self.error else 'ffmpeg failed'}")


def write_video(path: str | Path, frames, fps: float) -> Path:
    """Write BGR frames to a browser-playable ``.mp4`` (H.264) or ``.webm`` (VP8) file."""
    writer = None
    try:
        for frame in frames:
            writer = writer or VideoWriter(path, fps, frame.shape)
            writer.write(frame)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise ValueError("no frames to write")
    return Path(path)
