"""Video analysis for the "Analyze video" page: a temporary working copy, the kept results.

No Streamlit here. An upload is written to a fresh temporary folder (never a path the visitor
chooses), analysed by :func:`fer.video.analyze_video`, and the folder is deleted before the
function returns, whatever happens; only the returned :class:`VideoOutcome` (bytes and tables,
kept in the visitor's session) remains.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from fer.labels import EMOTIONS
from fer.video import VIDEO_TYPES, VideoInfo, VideoLimits, analyze_video

PRIVACY = ("Your video is processed on this server, in memory and in temporary files that are deleted as soon "
           "as processing ends; it is never stored. The results stay in this browser session only.")


@dataclass
class VideoOutcome:
    """What the page shows and offers for download after one video."""

    name: str
    info: VideoInfo
    video: bytes  # annotated H.264 MP4
    csv: bytes
    summary: list[dict]
    tracks: dict[int, tuple[list[float], list[dict[str, float]]]] = field(default_factory=dict)
    frames: int = 0
    detected_frames: int = 0
    seconds: float = 0.0
    realtime_factor: float = 0.0
    cancelled: bool = False

    @property
    def video_name(self) -> str:
        return f"{PurePath(self.name).stem}_annotated.mp4"

    @property
    def csv_name(self) -> str:
        return f"{PurePath(self.name).stem}_emotions.csv"


def process_upload(recognizer, name: str, data: bytes, video_limits: VideoLimits,
                   progress: Callable[[int, int], None] | None = None, min_score: float | None = None,
                   cancel: Callable[[], bool] | None = None) -> VideoOutcome:
    """Analyse uploaded video bytes in a private temporary folder, deleted before returning.

    The size limit is checked before anything is written, the length (from the container)
    before any frame is decoded; both raise ``ValueError`` with the limit in the message.
    """
    if not data:
        raise ValueError("the file is empty; upload a video file")
    video_limits.check(VideoInfo(0, 0, 25.0, 0, len(data) / 1e6))
    folder = Path(tempfile.mkdtemp(prefix="fer-video-"))
    try:
        src = folder / f"input{_suffix(name)}"
        src.write_bytes(data)
        try:
            result = analyze_video(recognizer, src, folder / "annotated.mp4", limits=video_limits,
                                   progress=progress, cancel=cancel, min_score=min_score)
        except ValueError as exc:  # speak of the visitor's file, not of the working copy
            raise ValueError(str(exc).replace(src.name, PurePath(name).name)) from None
        return _outcome(name, result)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _suffix(name: str) -> str:
    """The upload's own extension when it is a known video type (helps the demuxer), else none."""
    ext = PurePath(name).suffix.lower().lstrip(".")
    return f".{ext}" if ext in VIDEO_TYPES else ""


def _outcome(name: str, result) -> VideoOutcome:
    return VideoOutcome(
        name=name, info=result.info, video=result.output.read_bytes(), csv=result.csv_text().encode(),
        summary=result.summary(), tracks={tid: result.timeline(tid) for tid in result.track_ids()},
        frames=result.frames, detected_frames=result.detected_frames, seconds=result.seconds,
        realtime_factor=result.realtime_factor, cancelled=result.cancelled)


def summary_rows(outcome: VideoOutcome) -> list[dict]:
    """The per-face summary as table rows: face, time on screen, main emotion, share per emotion."""
    return [{"face": f"#{s['face']}", "on screen (s)": s["seconds"], "from (s)": s["first_s"], "to (s)": s["last_s"],
             "main emotion": s["main emotion"], **{e: s[e] for e in EMOTIONS}} for s in outcome.summary]


def busiest_tracks(outcome: VideoOutcome, n: int = 6) -> dict[int, tuple[list[float], list[dict[str, float]]]]:
    """The ``n`` faces seen longest (in id order), for the timeline chart."""
    keep = sorted(outcome.tracks, key=lambda tid: -len(outcome.tracks[tid][0]))[:n]
    return {tid: outcome.tracks[tid] for tid in sorted(keep)}
