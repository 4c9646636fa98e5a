"""Model files: a ``.keras`` file plus a JSON model card beside it (``name.keras`` + ``name.json``).

The card holds the labels in order, the input shape, the architecture, the training config, the
data used, the training budget and the metrics per split. Loading checks the card against
:data:`fer.labels.EMOTIONS` and against the model; writes are atomic (temp file, then rename).
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from fer.labels import EMOTIONS

CARD_FORMAT = 1
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL = MODELS_DIR / "fer_default.keras"


@dataclass
class ModelCard:
    """Everything a user (or the app) needs to know about a model file."""

    architecture: str
    labels: list[str] = field(default_factory=lambda: list(EMOTIONS))
    input_shape: list[int] = field(default_factory=lambda: [48, 48, 1])
    config: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    epochs: int = 0
    best_epoch: int = 0
    wall_time_s: float = 0.0
    hardware: str = ""
    backend: str = ""
    keras_version: str = ""
    precision: str = ""
    metrics: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    command: str = ""
    notes: str = ""
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    format: int = CARD_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelCard":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "architecture" not in known:
            raise ValueError("model card has no 'architecture' field")
        return cls(**known)


def card_path(model_path: str | Path) -> Path:
    return Path(model_path).with_suffix(".json")


def hardware_description() -> str:
    import keras

    gpus = _gpu_names()
    where = ", ".join(gpus) if gpus else f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    return f"{where}; Keras {keras.__version__} on {keras.backend.backend()}"


def _gpu_names() -> list[str]:
    import keras

    try:
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            return [d.name for d in tf.config.list_physical_devices("GPU")]
        if keras.backend.backend() == "jax":
            import jax

            return [str(d) for d in jax.devices() if d.platform != "cpu"]
    except Exception:  # noqa: BLE001 - hardware probing must never break saving
        return []
    return []


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then atomically rename the temp file onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(model, path: str | Path, card: ModelCard) -> Path:
    """Save ``model`` and its card atomically; returns the model path."""
    import keras

    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"model path {path} must end in .keras")
    card.keras_version = card.keras_version or keras.__version__
    card.backend = card.backend or keras.backend.backend()
    atomic_write_bytes(path, lambda tmp: model.save(tmp))
    atomic_write_bytes(card_path(path), lambda tmp: Path(tmp).write_text(card.to_json()))
    return path


def read_card(model_path: str | Path) -> ModelCard:
    cpath = card_path(model_path)
    if not cpath.is_file():
        raise ValueError(f"model card {cpath} is missing; every .keras model needs its .json card beside it")
    try:
        card = ModelCard.from_dict(json.loads(cpath.read_text()))
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"model card {cpath} is not valid JSON ({exc})") from None
    if list(card.labels) != list(EMOTIONS):
        raise ValueError(f"model card {cpath} has labels {card.labels}; this version expects {list(EMOTIONS)}")
    return card


def load_model(path: str | Path | None = None, *, compile: bool = False):
    """Load a model and its card: returns ``(keras.Model, ModelCard)``; clear ``ValueError`` on bad files.

    ``path=None`` loads the shipped default model. Loading uses Keras safe mode.
    """
    path = Path(path) if path is not None else DEFAULT_MODEL
    if not path.is_file():
        raise ValueError(f"model file {path} does not exist")
    card = read_card(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(f"model file {path} is not a valid .keras archive (truncated or corrupt?)")
    import keras

    import fer.model  # noqa: F401 - registers the custom layers
    try:
        model = keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for broken files
        raise ValueError(f"could not load model {path}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    _check_against_card(model, card, path)
    return model, card


def _check_against_card(model, card: ModelCard, path: Path) -> None:
    in_shape = list(model.input_shape[1:])
    if in_shape != list(card.input_shape):
        raise ValueError(f"model {path} takes input {in_shape} but its card says {card.input_shape}")
    n_out = model.output_shape[-1]
    if n_out != len(card.labels):
        raise ValueError(f"model {path} has {n_out} outputs but its card lists {len(card.labels)} labels")
