"""The live webcam pipeline: one processed frame at a time, results passed out through a queue.

A :class:`LiveProcessor` belongs to one browser session. The page sets its options
(:meth:`LiveProcessor.configure`) from widgets outside the frame callback; the callback, running
in streamlit-webrtc's worker thread, only calls :meth:`LiveProcessor.process`, which runs the
session's own :class:`fer.stream.LiveStream` (tracking between detections). From the frames that
arrived meanwhile and their timestamps it also tells the camera's frame rate, the frames skipped
while the server was busy and how far the labels are behind the camera (:class:`CameraClock`). Results go out
through a bounded queue that drops its oldest entry when the page does not keep up. No Streamlit.
"""

from __future__ import annotations

import base64
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from fer.labels import EMOTIONS

TIMELINE_S = 60.0


@dataclass(frozen=True)
class FrameResult:
    t: float  # time.time() when the frame was processed
    fps: float  # processed frames per second (moving average)
    n_faces: int
    emotion: str | None  # main (largest) face
    score: float
    scores: dict  # main face's probabilities (empty without a face)
    latency_ms: float  # time to analyse and draw this frame
    camera_fps: float = 0.0  # the camera's own frame rate (from the frame timestamps; 0: unknown)
    skipped: int = 0  # camera frames skipped so far because the server was busy
    behind_ms: float = 0.0  # how far this frame's labels are behind the camera (0: unknown)


class CameraClock:
    """Camera frame rate, skipped frames and lag, for a stream whose frames come in batches.

    streamlit-webrtc hands the page's queued-frames callback every camera frame that arrived while
    the previous one was being analysed; the newest is analysed, the others are skipped. So the
    skipped frames are counted exactly, and the camera's rate is the frames received over the span
    of their timestamps. The lag is how much later than the least-delayed frame so far a frame is
    done: the waiting and processing the server adds (network and browser delays not counted).
    """

    def __init__(self) -> None:
        self.first: float | None = None  # timestamp of the first frame analysed
        self.last: float | None = None
        self.received = 0  # camera frames received after the first one analysed
        self.offset: float | None = None  # smallest arrival time - frame time seen
        self.skipped = 0

    def tick(self, frame_time: float | None, arrived: float, done: float,
             received: int = 1) -> tuple[float, int, float]:
        """``(camera frames/s, frames skipped so far, ms behind the camera)`` after analysing the newest of
        ``received`` frames (timestamp ``frame_time`` in s, None: unknown; ``arrived``/``done``: time.time())."""
        self.skipped += max(0, int(received) - 1)
        if frame_time is None:
            return 0.0, self.skipped, 0.0
        if self.last is not None and frame_time < self.last:  # a new stream: timestamps restart
            self.first, self.offset, self.received = None, None, 0
        if self.first is None:
            self.first = frame_time
        else:
            self.received += int(received)
        self.last = frame_time
        self.offset = arrived - frame_time if self.offset is None else min(self.offset, arrived - frame_time)
        span = frame_time - self.first
        fps = self.received / span if span > 0 else 0.0
        return fps, self.skipped, 1000.0 * (done - (frame_time + self.offset))


class FpsMeter:
    """Processed frames per second: the inverse of a moving average of the intervals between frames."""

    def __init__(self, smoothing: float = 0.2, gap_s: float = 10.0) -> None:
        self.smoothing, self.gap_s = smoothing, gap_s
        self.last: float | None = None
        self.interval: float | None = None

    def tick(self, now: float) -> float:
        if self.last is not None:
            dt = now - self.last
            if dt > self.gap_s:  # a new stream after a pause: start afresh
                self.interval = None
            elif dt > 0:
                old = dt if self.interval is None else self.interval
                self.interval = (1 - self.smoothing) * old + self.smoothing * dt
        self.last = now
        return 0.0 if not self.interval else 1.0 / self.interval


def main_face(results):
    """The largest face (the one nearest the camera), or None."""
    return max(results, key=lambda r: int(r.box[2]) * int(r.box[3]), default=None)


class LiveProcessor:
    def __init__(self, queue_size: int = 512) -> None:
        from fer.inference import FaceTracker

        self._lock = threading.Lock()
        self.recognizer = None
        self.model_key: str | None = None
        self.smoothing = True
        self.min_score = 0.5
        self.tracker = FaceTracker()
        self.stream = None
        self.clock = CameraClock()
        self.fps = FpsMeter()
        self.results: queue.Queue[FrameResult] = queue.Queue(maxsize=queue_size)
        self.frames = 0
        self.errors = 0
        self.last_error: str | None = None
        self._latest: tuple[np.ndarray, float] | None = None  # main face's 48x48 crop and time

    def latest_face(self) -> tuple[np.ndarray, float] | None:
        """The main face of the latest analysed frame: ``(48x48 uint8 crop, time.time())``, or None.

        Read by the page (calibration snapshots) while the frame callback writes it: thread-safe.
        """
        with self._lock:
            return self._latest

    def configure(self, recognizer, model_key: str, smoothing: bool, min_score: float) -> None:
        """Set the options from the page (called on every rerun, outside the frame callback)."""
        with self._lock:
            if model_key != self.model_key or smoothing != self.smoothing:
                self.tracker.reset()
            if self.stream is None or recognizer is not self.recognizer or float(min_score) != self.min_score:
                self.stream = recognizer.stream(min_score=min_score)
            self.recognizer, self.model_key = recognizer, model_key
            self.smoothing, self.min_score = bool(smoothing), float(min_score)

    def process(self, image_bgr: np.ndarray, frame_time: float | None = None, received: int = 1) -> np.ndarray:
        """Analyse one frame, draw the faces on a copy, queue the main face's result; returns the copy.

        ``frame_time`` is the frame's timestamp in seconds (``av.VideoFrame.time``) and ``received`` the
        camera frames that came in since the last call (this one included: the others are skipped),
        for the camera's frame rate, the skipped frames and the lag; None leaves them unknown."""
        from fer.draw import draw

        t0, arrived = time.perf_counter(), time.time()
        with self._lock:
            stream, smoothing = self.stream, self.smoothing
            if stream is None:
                return image_bgr
            try:
                results = stream.process(image_bgr)
                if smoothing:
                    results = self.tracker.update(results)
            except Exception as exc:  # noqa: BLE001 - a bad frame must not stop the stream
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                return image_bgr
            self.frames += 1
        annotated = draw(image_bgr, results)
        now = time.time()
        face = main_face(results)
        if face is not None:
            with self._lock:
                self._latest = (face.crop, now)
        camera_fps, skipped, behind_ms = self.clock.tick(frame_time, arrived, time.time(), received)
        self.put(FrameResult(
            t=now, fps=self.fps.tick(now), n_faces=len(results),
            emotion=None if face is None else str(face.emotion),
            score=0.0 if face is None else float(face.score),
            scores={} if face is None else {e: float(face.scores.get(e, 0.0)) for e in EMOTIONS},
            latency_ms=(time.perf_counter() - t0) * 1000, camera_fps=camera_fps, skipped=skipped,
            behind_ms=behind_ms))
        return annotated

    def put(self, item: FrameResult) -> None:
        """Queue a result; when the queue is full drop the oldest one (the page will catch up)."""
        while True:
            try:
                self.results.put_nowait(item)
                return
            except queue.Full:
                try:
                    self.results.get_nowait()
                except queue.Empty:
                    pass

    def drain(self) -> list[FrameResult]:
        out = []
        while True:
            try:
                out.append(self.results.get_nowait())
            except queue.Empty:
                return out


class Timeline:
    """The main face's probabilities over the last ``window_s`` seconds, fed from drained results."""

    def __init__(self, window_s: float = TIMELINE_S) -> None:
        self.window_s = window_s
        self.points: deque[FrameResult] = deque()
        self.last: FrameResult | None = None

    def extend(self, items: list[FrameResult], now: float | None = None) -> None:
        for item in items:
            self.last = item
            if item.scores:
                self.points.append(item)
        now = time.time() if now is None else now
        while self.points and now - self.points[0].t > self.window_s:
            self.points.popleft()

    def series(self, now: float | None = None, max_points: int = 300) -> tuple[list[float], list[dict]]:
        """Seconds before ``now`` and probabilities of the kept points, thinned to at most ``max_points``
        (a minute at 30 frames/s is 1800 points: redrawing them every second cost each session ~70 ms
        of server CPU and its browser as much again)."""
        now = time.time() if now is None else now
        points = list(self.points)
        step = max(1, -(-len(points) // max_points))
        kept = points[::-1][::step][::-1]  # thinned from the newest point back
        return [p.t - now for p in kept], [p.scores for p in kept]

    def csv(self) -> bytes:
        """The kept points as CSV: seconds since the first one, then the main face's probabilities."""
        points = list(self.points)
        if not points:
            return b""
        rows = [",".join(["seconds", "emotion", *EMOTIONS])]
        for p in points:
            rows.append(",".join([f"{p.t - points[0].t:.3f}", str(p.emotion),
                                  *(f"{float(p.scores.get(e, 0.0)):.4f}" for e in EMOTIONS)]))
        return ("\n".join(rows) + "\n").encode()


# ---------------------------------------------------------------- the in-browser mode

BROWSER, SERVER = "browser", "server"
LIVE_MODES = {
    BROWSER: "In your browser",
    SERVER: "On the server",
}
MODE_HELP = {
    BROWSER: "The face detector and one emotion model run in this page: the video never leaves your device "
             "and no relay server is needed.",
    SERVER: "Your camera is streamed to the server over WebRTC and sent back with the faces drawn on "
            "(behind strict firewalls this needs a TURN relay). The server runs the whole live profile "
            "(two models for the shipped one).",
}
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


def has_turn(ice_servers: list[dict]) -> bool:
    """True when the ICE configuration names a TURN relay (``turn:`` or ``turns:`` URLs)."""
    for server in ice_servers:
        urls = server.get("urls", [])
        for url in [urls] if isinstance(urls, str) else urls:
            if str(url).lower().startswith(("turn:", "turns:")):
                return True
    return False


def is_local(host: str | None) -> bool:
    """True when the page was opened on this machine (a ``Host`` header such as ``localhost:8501``)."""
    if not host:
        return False
    name = host.strip().lower()
    name = name.rsplit(":", 1)[0] if name.count(":") == 1 or name.startswith("[") else name
    return name in LOCAL_HOSTS


def default_mode(ice_servers: list[dict], host: str | None) -> str:
    """The in-browser mode unless a TURN relay is configured or the page is reached on localhost; the
    server mode too when the host is unknown (no browser request: ``streamlit.testing``, bare runs)."""
    return SERVER if has_turn(ice_servers) or not host or is_local(host) else BROWSER


class BrowserSummaries:
    """Turns the component's summaries (about one a second) into :class:`FrameResult` items for the
    same metrics row and :class:`Timeline` as the server mode; a summary seen twice (a rerun that is
    not the component's) is not counted again."""

    def __init__(self) -> None:
        self.seq: int | None = None
        self.playing = False
        self._face: tuple[np.ndarray, float] | None = None

    def latest_face(self) -> tuple[np.ndarray, float] | None:
        """The main face's 48x48 uint8 crop from the latest summary that carried one (the page sends crops
        only while the visitor captures calibration snapshots) and when it arrived (time.time())."""
        return self._face

    def _take_crop(self, crop, size: int = 48) -> None:
        if not isinstance(crop, str):
            return
        try:
            data = base64.b64decode(crop, validate=True)
        except ValueError:
            return  # not a crop: ignore it rather than stop the page
        if len(data) == size * size:
            self._face = (np.frombuffer(data, np.uint8).reshape(size, size).copy(), time.time())

    def results(self, summary: dict | None) -> list[FrameResult]:
        """The new FrameResults of ``summary``: one per main-face point it carries (or one without a face)."""
        if not isinstance(summary, dict) or summary.get("seq") == self.seq:
            return []
        self.seq = summary.get("seq")
        self.playing = bool(summary.get("playing"))
        self._take_crop(summary.get("crop"))
        common = {"fps": float(summary.get("fps") or 0.0), "n_faces": int(summary.get("n_faces") or 0),
                  "latency_ms": float(summary.get("latency_ms") or 0.0),
                  "camera_fps": float(summary.get("camera_fps") or 0.0), "skipped": int(summary.get("skipped") or 0),
                  "behind_ms": float(summary.get("behind_ms") or 0.0)}
        out = []
        for t, probs in summary.get("points") or []:
            if len(probs) == len(EMOTIONS):
                best = int(np.argmax(probs))
                out.append(FrameResult(t=float(t), emotion=EMOTIONS[best], score=float(probs[best]),
                                       scores=dict(zip(EMOTIONS, map(float, probs))), **common))
        # the state at the summary's time, for the metrics row (no probabilities: not a timeline point)
        out.append(FrameResult(t=float(summary.get("t") or time.time()), emotion=summary.get("emotion"),
                               score=float(summary.get("score") or 0.0), scores={}, **common))
        return out
