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
from dataclasses import MISSING, asdict, dataclass, field
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
    stages: list[dict] = field(default_factory=list)
    averaged: dict = field(default_factory=dict)  # weight averaging (SWA) of this run's epochs, if any
    prior: list[float] = field(default_factory=list)  # training split's class frequencies (fer.prior)
    tau: float = 0.0  # prior-correction strength for this model alone (0 = off; see fer.prior.tune_tau)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    format: int = CARD_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelCard":
        """A card from its JSON object; ``ValueError`` naming the field when one has the wrong type."""
        if not isinstance(d, dict):
            raise ValueError(f"model card is a JSON {type(d).__name__}, not an object with the card's fields")
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "architecture" not in known:
            raise ValueError("model card has no 'architecture' field")
        for name, value in known.items():
            _check_field(name, value, _field_type(cls.__dataclass_fields__[name]))
        return cls(**known)


def _field_type(f) -> tuple[type, ...]:
    """The JSON type a card field must have, from its default value (``architecture``: str)."""
    default = f.default_factory() if f.default_factory is not MISSING else f.default
    if default is MISSING or isinstance(default, str):
        return (str,)
    if isinstance(default, float):
        return (int, float)
    return (type(default),)


def _check_field(name: str, value, types: tuple[type, ...]) -> None:
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        want = " or ".join({"str": "a string", "list": "a list", "dict": "an object", "int": "a whole number",
                            "float": "a number"}.get(t.__name__, t.__name__) for t in types)
        raise ValueError(f"model card field {name!r} is {json.dumps(value)[:40]}, expected {want}")
    if name == "labels" and not all(isinstance(v, str) for v in value):
        raise ValueError(f"model card field 'labels' must list the emotion names, got {json.dumps(value)[:60]}")
    if name == "input_shape" and not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ValueError(f"model card field 'input_shape' must be whole numbers like [48, 48, 1], got {value!r}")


def stage_summary(card: ModelCard) -> dict:
    """One training stage of ``card`` (for the ``stages`` of a model fine-tuned from it)."""
    keys = ("command", "epochs", "best_epoch", "wall_time_s", "hardware", "precision", "config", "history",
            "averaged")
    return {k: getattr(card, k) for k in keys}


def lineage(base: ModelCard) -> list[dict]:
    """The ``stages`` of a model fine-tuned from a model with card ``base``: its stages, then itself."""
    return [*base.stages, stage_summary(base)]


def full_history(card: ModelCard) -> list[dict]:
    """Every epoch of every stage in order, renumbered 1..N, each row tagged with its ``stage``."""
    rows, n = [], 0
    for i, stage in enumerate([*card.stages, {"history": card.history}]):
        for h in stage.get("history", []):
            n += 1
            rows.append({**h, "epoch": n, "stage": i + 1})
    return rows


def card_path(model_path: str | Path) -> Path:
    return Path(model_path).with_suffix(".json")


def hardware_description() -> str:
    import keras

    gpus = gpu_names()
    where = ", ".join(gpus) if gpus else f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    return f"{where}; Keras {keras.__version__} on {keras.backend.backend()}"


def gpu_names() -> list[str]:
    """The GPUs Keras' backend sees (empty on CPU-only machines, or when probing fails)."""
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


def read_json(path: Path, what: str, why_needed: str):
    """The JSON document at ``path``; ``ValueError`` naming ``what`` it is when missing or not valid JSON."""
    if not path.is_file():
        raise ValueError(f"{what} {path} is missing; {why_needed}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what} {path} is not valid JSON ({exc})") from None


def read_card(model_path: str | Path) -> ModelCard:
    cpath = card_path(model_path)
    doc = read_json(cpath, "model card", "every .keras model needs its .json card beside it")
    try:
        card = ModelCard.from_dict(doc)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{exc} (in {cpath}); fix the card or save the model again") from None
    if list(card.labels) != list(EMOTIONS):
        raise ValueError(f"model card {cpath} has labels {card.labels}; this version expects {list(EMOTIONS)}")
    return card


def check_archive(path: str | Path) -> None:
    """Raise ``ValueError`` unless ``path`` is a complete zip archive whose members all pass their CRC check.

    Catches truncated and damaged ``.keras`` files without loading Keras (~10 ms for a 5 MB model).
    """
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, NotImplementedError):
        raise ValueError(f"model file {path} is not a valid .keras archive (truncated or corrupt?)") from None
    if bad is not None:
        raise ValueError(f"model file {path} is not a valid .keras archive: member {bad!r} is damaged "
                         "(corrupt copy?); save or copy the model again")


def load_model(path: str | Path | None = None, *, compile: bool = False):
    """Load a model and its card: returns ``(keras.Model, ModelCard)``; clear ``ValueError`` on bad files.

    ``path=None`` loads the shipped default model. Loading uses Keras safe mode.
    """
    path = Path(path) if path is not None else DEFAULT_MODEL
    if not path.is_file():
        raise ValueError(f"model file {path} does not exist")
    card = read_card(path)
    check_archive(path)
    import keras

    import fer.model  # noqa: F401 - registers the custom layers
    try:
        model = keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for broken files
        first_line = str(exc).splitlines()[0][:200]
        raise ValueError(f"could not load model {path}: {type(exc).__name__}: {first_line}") from None
    _check_against_card(model, card, path)
    return model, card


def _check_against_card(model, card: ModelCard, path: Path) -> None:
    in_shape = list(model.input_shape[1:])
    if in_shape != list(card.input_shape):
        raise ValueError(f"model {path} takes input {in_shape} but its card says {card.input_shape}")
    n_out = model.output_shape[-1]
    if n_out != len(card.labels):
        raise ValueError(f"model {path} has {n_out} outputs but its card lists {len(card.labels)} labels")
    from fer.model import ARCHITECTURES

    if model.name in ARCHITECTURES and card.architecture in ARCHITECTURES and model.name != card.architecture:
        raise ValueError(f"model {path} is a '{model.name}' network but its card says '{card.architecture}'; "
                         "the card belongs to another model")
