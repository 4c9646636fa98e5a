"""'Calibrate to my face' on the live page: the guided capture, the snapshot zip, the personal model.

:class:`CaptureSession` is the capture's state machine, driven by the page with the current time
and the webcam's latest face crop (:meth:`ui.live.LiveProcessor.latest_face`): for each emotion in
turn a countdown, then ``shots`` snapshots a little apart, then a review (next, retake, skip); any
snapshot can be deleted and any emotion retaken. It lives in ``st.session_state`` only: nothing is
written to disk unless the visitor downloads the snapshots (:func:`snapshots_zip`) or saves a
personal model (:func:`save_personal`). No Streamlit here.
"""

from __future__ import annotations

import io
import itertools
import re
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer.labels import EMOTIONS

ORDER: tuple[str, ...] = ("happy", "surprise", "sad", "angry", "fear", "disgust", "neutral")
"""The order the emotions are asked for: the easy ones to act first."""

HINTS = {
    "happy": "a big smile", "surprise": "eyebrows up, mouth open", "sad": "corners of the mouth down",
    "angry": "frown, eyebrows down and together", "fear": "eyes wide, mouth stretched",
    "disgust": "wrinkle your nose, upper lip up", "neutral": "a relaxed, blank face",
}
PHASES = ("idle", "countdown", "capturing", "review", "finished")
PERSONAL_STEM = "fer_personal_v"
_VERSION = re.compile(rf"^{PERSONAL_STEM}(\d+)$")
_save_lock = threading.Lock()
_ids = itertools.count(1)


@dataclass(frozen=True)
class Snapshot:
    crop: np.ndarray  # (48, 48) uint8, as the model sees the face
    t: float  # when the frame was processed (time.time())
    id: int = field(default_factory=lambda: next(_ids))


@dataclass
class CaptureSession:
    """The guided capture: which emotion is asked for, the countdown, the snapshots taken."""

    order: tuple[str, ...] = ORDER
    shots: int = 5
    countdown_s: float = 3.0
    interval_s: float = 0.3
    max_age_s: float = 2.0  # a face older than this is not "the current face" (slow frames under load)
    give_up_s: float = 10.0  # capturing without a usable face for this long ends the take
    index: int = 0
    phase: str = "idle"
    phase_t: float = 0.0
    next_shot_t: float = 0.0
    progress_t: float = 0.0  # the capture's start or its last snapshot
    message: str = ""
    snapshots: dict[str, list[Snapshot]] = field(default_factory=lambda: {e: [] for e in EMOTIONS})
    skipped: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        unknown = [e for e in self.order if e not in EMOTIONS]
        if unknown or not self.order:
            raise ValueError(f"unknown emotion(s) {unknown} in the capture order; use names from {EMOTIONS}")
        if self.shots < 1 or self.countdown_s < 0 or self.interval_s < 0:
            raise ValueError("shots must be at least 1, countdown_s and interval_s 0 or more")

    # ------------------------------------------------------------ views

    @property
    def current(self) -> str | None:
        """The emotion being asked for, or None when every emotion has been through."""
        return self.order[self.index] if self.index < len(self.order) else None

    @property
    def active(self) -> bool:
        """True while counting down or capturing (the page should poll often)."""
        return self.phase in ("countdown", "capturing")

    def countdown_left(self, now: float) -> int:
        """Whole seconds left in the countdown (3, 2, 1), 0 outside it."""
        if self.phase != "countdown":
            return 0
        return max(1, int(np.ceil(self.countdown_s - (now - self.phase_t))))

    def counts(self) -> dict[str, int]:
        return {e: len(self.snapshots[e]) for e in self.order}

    def total(self) -> int:
        return sum(len(s) for s in self.snapshots.values())

    def dataset(self) -> tuple[np.ndarray, np.ndarray]:
        """Every snapshot as ``(x (n, 48, 48) uint8, y (n,) class ids)``, each emotion in capture order."""
        pairs = [(s.crop, EMOTIONS.index(e)) for e in EMOTIONS for s in self.snapshots[e]]
        if not pairs:
            return np.zeros((0, 48, 48), np.uint8), np.zeros(0, np.int64)
        return np.stack([p[0] for p in pairs]), np.array([p[1] for p in pairs], np.int64)

    # ------------------------------------------------------------ actions

    def start(self, now: float | None = None) -> None:
        """Start (or restart) the countdown for the current emotion (``now``: default the clock's time)."""
        if self.current is None:
            self.index = 0
        self.skipped.discard(self.current)
        self._enter("countdown", now, "")

    def retake(self, emotion: str | None = None, now: float | None = None) -> None:
        """Delete the snapshots of ``emotion`` (default: the current one) and capture it again."""
        emotion = emotion or self.current
        if emotion not in self.order:
            raise ValueError(f"cannot retake {emotion!r}: the capture asks for {', '.join(self.order)}")
        self.index = self.order.index(emotion)
        self.snapshots[emotion] = []
        self.start(now)

    def skip(self, now: float | None = None, expect: str | None = None) -> None:
        """Leave the current emotion out (its snapshots, if any, are kept) and ask for the next one.

        ``expect``: the emotion the button was showing; when the current one is another (the click
        was delivered twice), nothing happens.
        """
        if expect is not None and expect != self.current:
            return
        if self.current is not None and not self.snapshots[self.current]:
            self.skipped.add(self.current)
        self.next(now)

    def next(self, now: float | None = None, expect: str | None = None) -> None:
        """Go to the next emotion and start its countdown; after the last one the capture is finished.

        ``expect`` as in :meth:`skip`: a repeated click does not skip an emotion.
        """
        if expect is not None and expect != self.current:
            return
        self.index += 1
        if self.current is None:
            self._enter("finished", now, "Every emotion has been through. Calibrate, or retake any of them.")
        else:
            self.start(now)

    def stop(self, now: float | None = None) -> None:
        """Stop a countdown or capture in progress (the snapshots taken so far are kept)."""
        if self.active:
            self._enter("review", now, "Stopped.")

    def delete(self, emotion: str, snapshot_id: int) -> bool:
        """Delete one snapshot; returns whether it was there."""
        before = len(self.snapshots.get(emotion, []))
        self.snapshots[emotion] = [s for s in self.snapshots.get(emotion, []) if s.id != snapshot_id]
        return len(self.snapshots[emotion]) < before

    def reset(self) -> None:
        """Forget every snapshot and start over from the first emotion."""
        self.snapshots = {e: [] for e in EMOTIONS}
        self.skipped.clear()
        self.index, self.phase, self.message = 0, "idle", ""

    def tick(self, now: float, face: tuple[np.ndarray, float] | None) -> bool:
        """Advance with the clock and the latest face ``(crop, t)``; returns True when the phase changed."""
        if self.phase == "countdown" and now - self.phase_t >= self.countdown_s:
            began = self.phase_t + self.countdown_s
            self._enter("capturing", began, "")
            self.next_shot_t = self.progress_t = began
        if self.phase != "capturing":
            return False
        if self._take(now, face):
            if len(self.snapshots[self.current]) >= self.shots:
                self._enter("review", now, f"{self.shots} snapshots of {self.current} taken.")
                return True
        elif now - self.progress_t > self.give_up_s:
            self._enter("review", now, "No face seen: face the camera in good light, then retake.")
            return True
        return False

    def _take(self, now: float, face: tuple[np.ndarray, float] | None) -> bool:
        if face is None or now < self.next_shot_t:
            return False
        crop, t = face
        taken = self.snapshots[self.current]
        if now - t > self.max_age_s or (taken and t <= taken[-1].t):
            return False  # stale, or the same frame as the last snapshot
        crop = np.asarray(crop)
        if crop.shape != (48, 48) or crop.dtype != np.uint8:
            raise ValueError(f"face crop has shape {crop.shape} and dtype {crop.dtype}; expected (48, 48) uint8")
        taken.append(Snapshot(crop.copy(), float(t)))
        self.next_shot_t, self.progress_t = now + self.interval_s, now
        return True

    def _enter(self, phase: str, now: float | None, message: str) -> None:
        self.phase, self.phase_t, self.message = phase, time.time() if now is None else now, message


# ---------------------------------------------------------------- outputs


def snapshots_zip(session: CaptureSession, folder: str = "my_faces") -> bytes:
    """The snapshots as a zip of class folders ``folder/<emotion>/<n>.png``: the Train page's zip upload."""
    from PIL import Image

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for emotion in EMOTIONS:
            for i, snap in enumerate(session.snapshots[emotion], 1):
                png = io.BytesIO()
                Image.fromarray(snap.crop, mode="L").save(png, format="PNG")
                zf.writestr(f"{folder}/{emotion}/{i:03d}.png", png.getvalue())
    return buf.getvalue()


def next_personal_path(models_dir: Path) -> Path:
    versions = [int(m.group(1)) for p in models_dir.glob(f"{PERSONAL_STEM}*.*") if (m := _VERSION.match(p.stem))]
    return models_dir / f"{PERSONAL_STEM}{max(versions, default=0) + 1}.keras"


def save_personal(result, base_path: Path, base_card, models_dir: Path) -> Path:
    """Save a calibrated model as the next free ``fer_personal_vN.keras`` with its card; never overwrites.

    The sidebar's model selector offers every ``*.keras`` with a card in ``models_dir``. The
    personal model keeps its base's trunk, so the base's replay file serves it too (it can be
    calibrated again).
    """
    from fer.calibrate import calibration_card
    from fer.modelfile import card_path, save_model

    models_dir.mkdir(parents=True, exist_ok=True)
    card = calibration_card(base_card, Path(base_path).name, result.report)
    with _save_lock:
        target = next_personal_path(models_dir)
        if target.exists() or card_path(target).exists():
            raise ValueError(f"{target} already exists; not overwriting it")
        save_model(result.model, target, card)
    return target
