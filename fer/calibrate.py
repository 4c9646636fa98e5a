"""Calibrate a model to one person's face: fine-tune its classifier head on a few labelled snapshots.

The convolutional trunk stays frozen. Each snapshot (a 48x48 gray face crop, as the app's pipeline
makes them) and its mirror image go through the trunk once, to the *penultimate features* (the
input of the ``predictions`` layer); then only the softmax head (weights and bias) is trained on
those features, mixed with a *replay* of FER2013 training features so that the other faces are
not forgotten, and pulled towards its original weights. That takes seconds on a CPU. The result is
a normal model of the same architecture (the trunk's weights unchanged, the new head in place).

A :class:`Replay` holds the penultimate features of stratified FER2013 training images (for the
mix) and of the whole ``public_test`` split (to measure the accuracy on other faces before and
after, exactly: the trunk does not change, so the features stay valid). It is tied to the trunk
by :func:`trunk_fingerprint`; a replay made for another trunk is refused. The shipped model's
replay is ``models/fer_default.replay.npz``, made by ``python scripts/make_replay.py``.

::

    from fer.calibrate import calibrate, load_replay
    result = calibrate(model, crops, labels, replay=load_replay("models/fer_default.replay.npz", model))
    result.model, result.report.heldout_after, result.report.public_after
"""

from __future__ import annotations

import hashlib
import json
import time
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from fer.labels import EMOTIONS, NUM_CLASSES

HEAD = "predictions"
REPLAY_FORMAT = 1
Progress = Callable[[float, str], None]
_FEATURES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


class StaleReplay(ValueError):
    """A replay file made for another model's trunk (or not a replay file at all)."""


# ---------------------------------------------------------------- features and fingerprint


def trunk_fingerprint(model) -> str:
    """SHA-256 (16 hex digits) of every weight except the head's and the augmentation's RNG state.

    Two models with the same fingerprint map a face to the same penultimate features, so they can
    share a replay: a calibrated model keeps the fingerprint of the model it was calibrated from.
    """
    h = hashlib.sha256()
    for w in model.weights:
        if w.path.startswith(f"{HEAD}/") or "seed_generator" in w.path:
            continue
        h.update(w.path.encode())
        h.update(np.ascontiguousarray(np.asarray(w.numpy(), np.float32)).tobytes())
    return h.hexdigest()[:16]


def _feature_fn(model) -> Callable[[np.ndarray], np.ndarray]:
    if model not in _FEATURES:
        import keras

        from fer.predictor import compiled_predictor

        try:
            head_input = model.get_layer(HEAD).input
        except ValueError:
            raise ValueError(f"model {model.name!r} has no {HEAD!r} layer; calibration needs the "
                             "architectures of fer.model (seed, vgg, vgg_wide)") from None
        _FEATURES[model] = compiled_predictor(keras.Model(model.inputs, head_input, name=f"{model.name}_features"))
    return _FEATURES[model]


def features(model, x: np.ndarray, batch_size: int = 256, progress: Progress | None = None) -> np.ndarray:
    """Penultimate features (n, d) float32 of uint8 faces (n, 48, 48), in inference mode."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[1:] != (48, 48):
        raise ValueError(f"faces have shape {x.shape}; expected (n, 48, 48) gray face crops")
    fn = _feature_fn(model)
    out = []
    for i in range(0, len(x), batch_size):
        out.append(fn(x[i : i + batch_size, :, :, None].astype(np.float32)))
        if progress is not None:
            progress(min(1.0, (i + batch_size) / len(x)), f"features of {min(len(x), i + batch_size)}/{len(x)} faces")
    dim = int(model.get_layer(HEAD).input.shape[-1])
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, dim), np.float32)


def head_weights(model) -> tuple[np.ndarray, np.ndarray]:
    """The head's kernel (d, 7) and bias (7,) as float32 copies."""
    kernel, bias = model.get_layer(HEAD).get_weights()
    return np.array(kernel, np.float32), np.array(bias, np.float32)


def head_probs(feats: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Softmax probabilities of the head on features (what the full model outputs in inference)."""
    logits = feats.astype(np.float32) @ kernel + bias
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- replay


@dataclass
class Replay:
    """Penultimate features of FER2013 faces for one trunk: a training mix and ``public_test``."""

    train_f: np.ndarray  # (n, d) float32
    train_y: np.ndarray  # (n,) int64
    test_f: np.ndarray  # (m, d) float32; may be empty
    test_y: np.ndarray
    fingerprint: str
    source: str = ""
    model_name: str = ""
    path: str = ""

    def check(self, model) -> None:
        """Raise :class:`StaleReplay` unless this replay was made for ``model``'s trunk."""
        have = trunk_fingerprint(model)
        if have != self.fingerprint:
            where = f"{self.path} " if self.path else ""
            raise StaleReplay(
                f"replay {where}was made for model {self.model_name or '?'} (trunk {self.fingerprint}), not for "
                f"this model (trunk {have}); regenerate it with: python scripts/make_replay.py --model MODEL.keras")


def stratified_indices(y: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """About ``n`` indices of ``y`` with every class in its own proportion (at least 1 each if present)."""
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    if n >= len(y):
        return np.arange(len(y))
    picks = []
    for c in range(NUM_CLASSES):
        idx = np.flatnonzero(y == c)
        if len(idx):
            k = max(1, int(round(n * len(idx) / len(y))))
            picks.append(rng.choice(idx, min(k, len(idx)), replace=False))
    return np.sort(np.concatenate(picks))


def make_replay(model, data, n_train: int = 2000, test_split: str = "public_test", seed: int = 0,
                progress: Progress | None = None, model_name: str = "") -> Replay:
    """A :class:`Replay` from a loaded :class:`fer.data.Dataset`: ``n_train`` stratified training
    faces and the whole ``test_split`` (when the data has it)."""
    train = data.split("train") if "train" in data.splits else data.split("all")
    idx = stratified_indices(train.y, n_train, seed)
    test = data.splits.get(test_split)
    n_all = len(idx) + (len(test) if test is not None else 0)

    def part(offset: int) -> Progress | None:
        if progress is None:
            return None
        return lambda f, msg: progress((offset + f * (n_all - offset if offset else len(idx))) / n_all, msg)

    train_f = features(model, train.x[idx], progress=part(0))
    if test is not None:
        test_f, test_y = features(model, test.x, progress=part(len(idx))), test.y
    else:
        test_f, test_y = np.zeros((0, train_f.shape[1]), np.float32), np.zeros(0, np.int64)
    return Replay(train_f, train.y[idx].astype(np.int64), test_f, np.asarray(test_y, np.int64),
                  trunk_fingerprint(model), source=str(data.source), model_name=model_name)


def save_replay(replay: Replay, path: str | Path) -> Path:
    """Write a replay as ``.npz`` (features in float16: half the size, same accuracy to 0.1 point)."""
    from fer.modelfile import atomic_write_bytes

    path = Path(path)
    info = {"format": REPLAY_FORMAT, "fingerprint": replay.fingerprint, "source": replay.source,
            "model_name": replay.model_name}

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, info=np.array(json.dumps(info)), train_f=replay.train_f.astype(np.float16),
                                train_y=replay.train_y.astype(np.int8), test_f=replay.test_f.astype(np.float16),
                                test_y=replay.test_y.astype(np.int8))

    atomic_write_bytes(path, write)
    return path


def load_replay(path: str | Path, model=None) -> Replay:
    """Read a replay file; with ``model``, also check it belongs to that model's trunk (else :class:`StaleReplay`)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            info = json.loads(str(z["info"]))
            arrays = {k: z[k] for k in ("train_f", "train_y", "test_f", "test_y")}
    except (OSError, KeyError, ValueError) as exc:
        raise StaleReplay(f"{path} is not a readable replay file ({type(exc).__name__}: {exc}); "
                          "regenerate it with python scripts/make_replay.py") from None
    if info.get("format") != REPLAY_FORMAT:
        raise StaleReplay(f"{path} has replay format {info.get('format')}, this version reads {REPLAY_FORMAT}; "
                          "regenerate it with python scripts/make_replay.py")
    replay = Replay(arrays["train_f"].astype(np.float32), arrays["train_y"].astype(np.int64),
                    arrays["test_f"].astype(np.float32), arrays["test_y"].astype(np.int64),
                    info["fingerprint"], info.get("source", ""), info.get("model_name", ""), str(path))
    if model is not None:
        replay.check(model)
    return replay


def replay_path(model_path: str | Path) -> Path:
    """Where a model's replay lives: ``name.replay.npz`` beside ``name.keras``."""
    return Path(model_path).with_suffix(".replay.npz")


def find_replay(model, candidates: list[Path]) -> tuple[Replay | None, list[str]]:
    """The first candidate replay file that matches ``model``'s trunk, and why the others did not."""
    notes: list[str] = []
    have = None
    for path in dict.fromkeys(Path(p) for p in candidates):
        if not path.is_file():
            continue
        try:
            replay = load_replay(path)
        except StaleReplay as exc:
            notes.append(str(exc))
            continue
        have = have or trunk_fingerprint(model)
        if replay.fingerprint == have:
            return replay, notes
        notes.append(f"{path.name} belongs to another model ({replay.model_name or replay.fingerprint}); ignored")
    return None, notes


# ---------------------------------------------------------------- calibration


@dataclass
class CalibrationConfig:
    """How the head is fine-tuned (the defaults are the ones measured in the README)."""

    steps: int = 300  # full-batch Adam steps on the features
    lr: float = 0.01
    replay_weight: float = 10.0  # weight of the replay's mean loss against the snapshots' mean loss
    anchor: float = 0.01  # L2 pull of the head towards its original weights
    flip: bool = True  # add each snapshot's mirror image
    heldout_fraction: float = 1 / 3  # of each emotion's snapshots, the last ones, kept out for the check
    refit_all: bool = True  # after the check, train the saved head on every snapshot
    seed: int = 0

    def validate(self) -> None:
        checks = [(self.steps >= 1, "steps must be at least 1"), (0 < self.lr <= 1, "lr must be in (0, 1]"),
                  (self.replay_weight >= 0, "replay_weight must be 0 or more"),
                  (self.anchor >= 0, "anchor must be 0 or more"),
                  (0 <= self.heldout_fraction < 1, "heldout_fraction must be in [0, 1)")]
        for ok, msg in checks:
            if not ok:
                raise ValueError(f"calibration config: {msg}")


@dataclass
class CalibrationReport:
    n_snapshots: int
    per_class: dict[str, int]
    n_train: int
    n_heldout: int
    heldout_before: float | None
    heldout_after: float | None
    public_before: dict | None  # metrics (fer.evaluate.metrics_from_probs) on public_test, or None
    public_after: dict | None
    replay: str  # where the replay came from, or why there was none
    n_replay: int
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def public_drop(self) -> float | None:
        """Accuracy points lost on public_test (positive = worse), or None when not measured."""
        if self.public_before is None or self.public_after is None:
            return None
        return round(self.public_before["accuracy"] - self.public_after["accuracy"], 4)

    def to_dict(self) -> dict:
        return {**asdict(self), "public_drop": self.public_drop}


@dataclass
class CalibrationResult:
    model: object  # keras.Model: the calibrated copy
    kernel: np.ndarray
    bias: np.ndarray
    report: CalibrationReport


def heldout_split(y: np.ndarray, fraction: float = 1 / 3) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices: per emotion, the last ``round(n * fraction)`` snapshots (in capture
    order, so held-out faces are the latest, least like the training ones), none when n < 2."""
    train, held = [], []
    y = np.asarray(y)
    for c in range(NUM_CLASSES):
        idx = np.flatnonzero(y == c)
        k = min(len(idx) - 1, int(round(len(idx) * fraction))) if len(idx) >= 2 else 0
        train.extend(idx[: len(idx) - k].tolist())
        held.extend(idx[len(idx) - k :].tolist())
    return np.array(sorted(train), np.int64), np.array(sorted(held), np.int64)


def fit_head(feats: np.ndarray, y: np.ndarray, kernel: np.ndarray, bias: np.ndarray, cfg: CalibrationConfig,
             replay: Replay | None = None, progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fine-tune the softmax head: mean cross-entropy of the snapshots + ``replay_weight`` x that of
    the replay + ``anchor`` x squared distance to the original head; full-batch Adam."""
    k0, b0 = kernel.astype(np.float32), bias.astype(np.float32)
    parts = [_part(feats, y, 1.0)]
    if replay is not None and len(replay.train_y) and cfg.replay_weight > 0:
        parts.append(_part(replay.train_f, replay.train_y, cfg.replay_weight))
    params = [k0.copy(), b0.copy()]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for step in range(1, cfg.steps + 1):
        grads = _head_grads(parts, params, (k0, b0), cfg.anchor)
        for p, g, mi, vi in zip(params, grads, m, v):
            mi *= 0.9
            mi += 0.1 * g
            vi *= 0.999
            vi += 0.001 * g * g
            p -= cfg.lr * (mi / (1 - 0.9**step)) / (np.sqrt(vi / (1 - 0.999**step)) + 1e-8)
        if progress is not None and (step % 25 == 0 or step == cfg.steps):
            progress(step / cfg.steps, f"fine-tuning the head: step {step}/{cfg.steps}")
    return params[0].astype(np.float32), params[1].astype(np.float32)


def _part(f: np.ndarray, y: np.ndarray, weight: float) -> tuple:
    f = np.ascontiguousarray(f, np.float32)
    return f, np.ascontiguousarray(f.T), np.asarray(y, np.int64), float(weight)


def _head_grads(parts, params, origin, anchor: float) -> list[np.ndarray]:
    kernel, bias = params
    gk = 2 * anchor * (kernel - origin[0])
    gb = 2 * anchor * (bias - origin[1])
    for f, f_t, y, weight in parts:
        if not len(y):
            continue
        p = head_probs(f, kernel, bias)
        p[np.arange(len(y)), y] -= 1.0
        p *= weight / len(y)
        gk = gk + f_t @ p
        gb = gb + p.sum(axis=0)
    return [gk, gb]


def _with_flips(x: np.ndarray, y: np.ndarray, flip: bool) -> tuple[np.ndarray, np.ndarray]:
    return (np.concatenate([x, x[:, :, ::-1]]), np.concatenate([y, y])) if flip and len(x) else (x, y)


def _accuracy(probs: np.ndarray, y: np.ndarray) -> float | None:
    return round(float((probs.argmax(axis=1) == y).mean()), 4) if len(y) else None


def check_snapshots(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate snapshots: uint8 (n, 48, 48) faces and n labels in 0-6, at least one face."""
    x, y = np.asarray(x), np.asarray(y, np.int64)
    if x.ndim != 3 or x.shape[1:] != (48, 48):
        raise ValueError(f"snapshots have shape {x.shape}; expected (n, 48, 48) gray face crops")
    if len(x) != len(y):
        raise ValueError(f"{len(x)} snapshots but {len(y)} labels; give one label per snapshot")
    if not len(y):
        raise ValueError("no snapshots: capture at least one emotion first")
    if y.min() < 0 or y.max() >= NUM_CLASSES:
        raise ValueError(f"labels must be class ids 0-{NUM_CLASSES - 1} ({', '.join(EMOTIONS)})")
    return x, y


def calibrate(model, x: np.ndarray, y: np.ndarray, replay: Replay | None = None,
              config: CalibrationConfig | None = None, progress: Progress | None = None,
              replay_note: str = "") -> CalibrationResult:
    """Fine-tune ``model``'s head on snapshots ``x`` (uint8 (n, 48, 48), capture order) with labels
    ``y``; returns a calibrated copy of the model and a :class:`CalibrationReport`.

    ``replay`` (checked against the model) is mixed into the training and gives the public_test
    accuracy before and after; without it the head is only pulled towards its original weights.
    ``progress(fraction, message)`` is called along the way. ``model`` is not modified.
    """
    t0 = time.perf_counter()
    cfg = config or CalibrationConfig()
    cfg.validate()
    x, y = check_snapshots(x, y)
    if replay is not None:
        replay.check(model)
    say = progress or (lambda f, msg: None)
    say(0.0, "computing the snapshots' features")
    xa, ya = _with_flips(x, y, cfg.flip)
    feats = features(model, xa)
    n = len(x)
    feats_orig, feats_flip = feats[:n], feats[n:]
    kernel0, bias0 = head_weights(model)
    train_idx, held_idx = heldout_split(y, cfg.heldout_fraction)
    notes = _notes(y, held_idx)

    def train_set(idx):
        f = np.concatenate([feats_orig[idx], feats_flip[idx]]) if cfg.flip else feats_orig[idx]
        return f, np.concatenate([y[idx], y[idx]]) if cfg.flip else y[idx]

    sub = lambda a, b: (lambda f, msg: say(a + (b - a) * f, msg))  # noqa: E731
    kernel, bias = fit_head(*train_set(train_idx), kernel0, bias0, cfg, replay, sub(0.1, 0.5 if cfg.refit_all else 0.9))
    held_before = _accuracy(head_probs(feats_orig[held_idx], kernel0, bias0), y[held_idx])
    held_after = _accuracy(head_probs(feats_orig[held_idx], kernel, bias), y[held_idx])
    if cfg.refit_all and len(held_idx):
        kernel, bias = fit_head(*train_set(np.arange(n)), kernel0, bias0, cfg, replay, sub(0.5, 0.9))
        notes.append("held-out accuracy is that of a head trained without the held-out snapshots; "
                     f"the saved head was then trained on all {n} snapshots")
    say(0.9, "assembling the calibrated model")
    public_before, public_after = _public(replay, kernel0, bias0, kernel, bias)
    calibrated = with_head(model, kernel, bias)
    say(1.0, "done")
    report = CalibrationReport(
        n_snapshots=n, per_class={e: int((y == i).sum()) for i, e in enumerate(EMOTIONS) if (y == i).any()},
        n_train=int(len(train_idx)), n_heldout=int(len(held_idx)), heldout_before=held_before, heldout_after=held_after,
        public_before=public_before, public_after=public_after,
        replay=replay_note or (f"{len(replay.train_y)} FER2013 training faces from {replay.path or replay.source}"
                               if replay is not None else "none: the head was only kept near its original weights"),
        n_replay=0 if replay is None else int(len(replay.train_y)),
        seconds=round(time.perf_counter() - t0, 2), notes=notes)
    return CalibrationResult(calibrated, kernel, bias, report)


def _notes(y: np.ndarray, held_idx: np.ndarray) -> list[str]:
    notes = []
    if not len(held_idx):
        notes.append("too few snapshots for a held-out check (an emotion needs at least 2); accuracy not measured")
    elif len(held_idx) < 5:
        notes.append(f"only {len(held_idx)} held-out snapshot(s): the held-out accuracy is a rough indication")
    if len(np.unique(y)) == 1:
        notes.append("only one emotion captured: the calibrated model will lean towards it")
    return notes


def _public(replay: Replay | None, k0, b0, k1, b1) -> tuple[dict | None, dict | None]:
    if replay is None or not len(replay.test_y):
        return None, None
    from fer.evaluate import metrics_from_probs

    before = metrics_from_probs(head_probs(replay.test_f, k0, b0), replay.test_y)
    after = metrics_from_probs(head_probs(replay.test_f, k1, b1), replay.test_y)
    return before, after


def with_head(model, kernel: np.ndarray, bias: np.ndarray):
    """A copy of ``model`` (same architecture and trunk weights) with a new head."""
    import keras

    import fer.model  # noqa: F401 - registers the custom layers

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    copy.get_layer(HEAD).set_weights([kernel, bias])
    return copy


def calibration_card(base_card, base_name: str, report: CalibrationReport, config: CalibrationConfig | None = None):
    """The model card of a calibrated model: the base's card with the calibration's metrics and notes.

    ``metrics`` gets ``public_test`` (after calibration, full per-class figures; the accuracy before
    is in ``public_test_before``) and ``snapshots_heldout`` (accuracy before and after).
    """
    from fer.modelfile import ModelCard, hardware_description

    cfg = config or CalibrationConfig()
    metrics = {}
    if report.public_after is not None:
        metrics["public_test"] = {**report.public_after, "tta": None}
        metrics["public_test_before"] = {**report.public_before, "tta": None}
    if report.heldout_after is not None:
        metrics["snapshots_heldout"] = {"accuracy": report.heldout_after, "accuracy_before": report.heldout_before,
                                        "n": report.n_heldout}
    return ModelCard(
        architecture=base_card.architecture, labels=list(base_card.labels), input_shape=list(base_card.input_shape),
        config={**base_card.config, "calibration": {**asdict(cfg), "base_model": base_name,
                                                      "replay": report.replay, "n_replay": report.n_replay}},
        data={"source": "webcam snapshots (Calibrate to my face)", "form": "snapshots",
              "splits": {"snapshots": {"n": report.n_snapshots, "classes": dict(report.per_class)}},
              "base_model_data": base_card.data},
        epochs=base_card.epochs, best_epoch=base_card.best_epoch, wall_time_s=report.seconds,
        hardware=hardware_description(), precision=base_card.precision, metrics=metrics, history=base_card.history,
        command=base_card.command, notes=calibration_notes(base_name, report))


def calibration_notes(base_name: str, report: CalibrationReport) -> str:
    """One paragraph for the card: what was calibrated, on what, and what it changed."""
    counts = ", ".join(f"{e} {n}" for e, n in report.per_class.items())
    parts = [f"Personal calibration of {base_name} with {report.n_snapshots} webcam snapshots ({counts}); "
             f"only the classifier head was fine-tuned, in {report.seconds:.1f} s."]
    if report.heldout_after is not None:
        parts.append(f"Held-out snapshots ({report.n_heldout}): {report.heldout_before:.0%} before, "
                     f"{report.heldout_after:.0%} after.")
    if report.public_drop is not None:
        parts.append(f"FER2013 public_test: {report.public_before['accuracy']:.1%} before, "
                     f"{report.public_after['accuracy']:.1%} after.")
    parts.append(f"Replay: {report.replay}.")
    return " ".join(parts)
