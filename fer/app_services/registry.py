"""The models the app offers: the shipped default plus the versioned models trained in the app.

Also holds the server-wide *active* model ("Use this model" on the Train page): one per server
process, so every session switches to it. No Streamlit here.
"""

from __future__ import annotations

import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from fer.modelfile import ModelCard, atomic_write_bytes, card_path, check_archive, read_card

APP_STEM = "fer_app_v"
_VERSION = re.compile(rf"^{APP_STEM}(\d+)$")
_save_lock = threading.Lock()


@dataclass(frozen=True)
class ModelEntry:
    path: Path
    card: ModelCard | None
    error: str | None = None
    is_default: bool = False

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def usable(self) -> bool:
        """The card reads and the model file is a complete, undamaged archive."""
        return self.card is not None and self.error is None

    def headline_accuracy(self) -> tuple[str, float] | None:
        """(split, accuracy) of the first split with metrics, preferring public_test."""
        metrics = (self.card.metrics if self.card else None) or {}
        for split in ("public_test", "validation", *metrics):
            if split in metrics and "accuracy" in metrics[split]:
                return split, float(metrics[split]["accuracy"])
        return None

    def label(self) -> str:
        who = "shipped default" if self.is_default else self.name
        if not self.usable:
            return f"{who} (unreadable: {self.error})"
        acc = self.headline_accuracy()
        score = f", {acc[1]:.1%} {acc[0].replace('_', ' ')}" if acc else ""
        return f"{who} ({self.card.architecture}{score})"


def _entry(path: Path, is_default: bool) -> ModelEntry:
    try:
        card = read_card(path)
    except (ValueError, OSError) as exc:
        return ModelEntry(path, None, str(exc), is_default)
    return ModelEntry(path, card, _archive_problem(path), is_default)


_checked: dict[tuple[str, int, int], str | None] = {}
_checked_lock = threading.Lock()


def _archive_problem(path: Path) -> str | None:
    """Why the model file is damaged (truncated, bad CRC), or None; checked once per file version."""
    try:
        st = path.stat()
    except OSError as exc:
        return f"model file {path} cannot be read ({exc.strerror})"
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _checked_lock:
        if key in _checked:
            return _checked[key]
    try:
        check_archive(path)
        problem = None
    except ValueError as exc:
        problem = str(exc)
    with _checked_lock:
        _checked[key] = problem
    return problem


def fallback(entries: list[ModelEntry] | tuple[ModelEntry, ...]) -> ModelEntry | None:
    """The model to use when the chosen one is unusable: the shipped default, else the first usable one."""
    usable = [e for e in entries if e.usable]
    return next((e for e in usable if e.is_default), usable[0] if usable else None)


def list_models(models_dir: Path, default_model: Path) -> list[ModelEntry]:
    """The shipped default (if its file exists) first, then every other ``*.keras`` with a card, by name."""
    out = []
    if default_model.is_file():
        out.append(_entry(default_model, True))
    if models_dir.is_dir():
        for path in sorted(models_dir.glob("*.keras"), key=_sort_key):
            if path.resolve() != default_model.resolve() and card_path(path).is_file():
                out.append(_entry(path, False))
    return out


def _sort_key(path: Path):
    m = _VERSION.match(path.stem)
    return (0, int(m.group(1)), "") if m else (1, 0, path.stem)


def next_version_path(models_dir: Path) -> Path:
    versions = [int(m.group(1)) for p in models_dir.glob(f"{APP_STEM}*.*") if (m := _VERSION.match(p.stem))]
    return models_dir / f"{APP_STEM}{max(versions, default=0) + 1}.keras"


def save_as_new(model_path: Path, models_dir: Path, default_model: Path, note: str = "") -> Path:
    """Copy a trained model and its card to the next free ``fer_app_vN.keras``; never overwrites."""
    models_dir.mkdir(parents=True, exist_ok=True)
    card = read_card(model_path)
    if note:
        card.notes = (card.notes + "\n" + note).strip()
    with _save_lock:
        target = next_version_path(models_dir)
        if target.exists() or card_path(target).exists() or target.resolve() == default_model.resolve():
            raise ValueError(f"{target} already exists; not overwriting it")
        atomic_write_bytes(target, lambda tmp: shutil.copyfile(model_path, tmp))
        atomic_write_bytes(card_path(target), lambda tmp: Path(tmp).write_text(card.to_json()))
    return target


class ActiveModel:
    """The server-wide active model: ``None`` means the shipped default. ``version`` counts changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._path: Path | None = None
        self._version = 0

    def get(self) -> tuple[Path | None, int]:
        with self._lock:
            return self._path, self._version

    def set(self, path: Path | None) -> int:
        with self._lock:
            self._path = Path(path) if path is not None else None
            self._version += 1
            return self._version


ACTIVE = ActiveModel()
