"""Training: one config dataclass, ``compile`` + ``fit`` + callbacks, resumable checkpoints.

A run keeps its state in ``<out>.run/`` next to the output model: ``last.keras`` (model and
optimizer after the last finished epoch), ``best.keras`` (best epoch on the validation split) and
``state.json`` (config, epoch, history, best score, elapsed time). ``resume=True`` continues from
there with the optimizer state and schedule position intact. The final model (the best epoch,
without optimizer state, float32) is written to ``out`` with its model card.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Protocol

import numpy as np

from fer.data import Dataset, Split
from fer.labels import EMOTIONS, NUM_CLASSES
from fer.modelfile import ModelCard, atomic_write_bytes, hardware_description, save_model

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "onecycle", "constant")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
CHOICES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "precision": PRECISIONS}
"""The allowed values of the TrainConfig fields that have a fixed list (the CLI and the Train page read them)."""


def _option(default, help: str = "", **cli):
    """A TrainConfig field with its command-line help; ``cli`` may set the ``flag`` and ``metavar``.

    A bool that defaults to True becomes a ``--no-...`` flag, so its help says what turning it off does.
    """
    return field(default=default, metadata={"help": help, **cli})


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved in the run state and the model card.

    The fields are the one list of training options: ``python -m fer train`` makes a flag of each
    (see :func:`fer.cli.add_config_arguments`), with the help text in its metadata.
    """

    arch: str = _option("vgg", "architecture (default %(default)s; a wrong name lists the choices)")
    epochs: int = _option(40, "number of epochs (default %(default)s); with --time-budget, the most to run")
    batch_size: int = _option(64)
    optimizer: str = _option("adamw")
    lr: float = _option(2e-3, "peak learning rate")
    weight_decay: float = _option(0.05)
    momentum: float = _option(0.9, "SGD momentum")
    schedule: str = _option("cosine")
    warmup_epochs: float = _option(2.0)
    label_smoothing: float = _option(0.1)
    class_weights: bool = _option(False, "weight classes by inverse frequency")
    augment: bool = _option(True, "train without the in-model augmentation")
    augment_strength: float = _option(1.0, "scale every augmentation range (0 = none, 1 = default, up to 2)")
    camera: float = _option(0.0, "share of training crops that get one camera condition (blur, sensor noise, JPEG, "
                            "darkness, low contrast, low resolution, tilt, a covered part of the face) at a random "
                            "severity over fer.corruptions.RANGES (default 0: off; 0.5 = half the crops)",
                            metavar="SHARE")
    camera_conditions: str = _option("all", "with --camera: which conditions, 'all' or a comma list of "
                                     "blur,noise,jpeg,dark,contrast,lowres,tilt,occlusion", metavar="LIST")
    precision: str = _option("auto")
    seed: int = _option(0, "random seed (a fine-tuning run adds its stage number to it)")  # see run_seed
    val_fraction: float = _option(0.1, "share of train carved out for selection when the data has no public_test")
    time_budget_s: float = _option(0.0, "time this machine's speed first, then train as many epochs as fit in "
                                   "SECONDS (the cosine schedule is fitted to them)",
                                   flag="--time-budget", metavar="SECONDS")
    keep_checkpoints: bool = _option(False, "keep every epoch's checkpoint in the run folder, for "
                                     "`python -m fer average`")  # epoch_NNN.keras in the run dir
    patience: int = _option(0, "stop early once this many epochs in a row have not beaten the best validation "
                            "accuracy (default 0: off)", metavar="EPOCHS")
    teacher: str = _option("", "distil: learn the soft targets of a shipped profile (photo: the ensemble with TTA) "
                           "or of a .keras model (with flip TTA), computed once and cached in the run folder",
                           metavar="PROFILE|MODEL")
    distill_weight: float = _option(0.7, "with --teacher: the teacher's share of each target (default %(default)s)")
    logit_adjust: float = _option(0.0, "train with the logit-adjusted loss (Menon et al. 2021): tau times the log "
                                  "training prior is added to the logits inside the loss, so that the plain "
                                  "prediction is balanced across classes (default 0: off; 1 is the paper's)",
                                  metavar="TAU")
    pretrained: bool = _option(True, "start from random weights instead of the architecture's ported ImageNet weights "
                               "(effnet_lite0 has them; the other architectures always start from random weights)")
    distribute: bool = _option(False, "data-parallel over all devices (JAX: keras.distribution.DataParallel; "
                               "TensorFlow: MirroredStrategy); --batch-size is per device and --lr is scaled by the "
                               "device count")

    def validate(self) -> None:
        from fer.model import ARCHITECTURES

        checks = [
            (self.arch in ARCHITECTURES, f"arch must be one of {', '.join(ARCHITECTURES)}"),
            (self.epochs >= 1, "epochs must be at least 1"),
            (1 <= self.batch_size <= 4096, "batch_size must be between 1 and 4096"),
            (self.optimizer in OPTIMIZERS, "optimizer must be 'adamw' or 'sgd'"),
            (0 < self.lr <= 10, "lr must be in (0, 10]"),
            (self.schedule in SCHEDULES, "schedule must be cosine, onecycle or constant"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (self.precision in PRECISIONS,
             "precision must be auto, float32, mixed_bfloat16 or mixed_float16"),
            (0 < self.val_fraction < 0.5, "val_fraction must be in (0, 0.5)"),
            (0 <= self.augment_strength <= 2, "augment_strength must be in [0, 2]"),
            (0 <= self.camera <= 1, "camera must be a share in [0, 1] (0: off)"),
            (self.time_budget_s >= 0, "time_budget_s must be 0 (off) or a number of seconds"),
            (self.patience >= 0, "patience must be 0 (off) or a number of epochs"),
            (self.teacher in ("", "photo", "live") or self.teacher.endswith(".keras"),
             "teacher must be empty, a profile (photo, live) or a .keras model file"),
            (0 <= self.distill_weight <= 1, "distill_weight must be in [0, 1]"),
            (0 <= self.logit_adjust <= 3, "logit_adjust must be in [0, 3] (0: off)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"invalid training config: {message}")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


class ProgressListener(Protocol):
    """Receives progress; a web page or a progress bar implements these (all optional)."""

    def on_train_begin(self, epochs: int, steps: int, initial_epoch: int) -> None: ...
    def on_batch(self, epoch: int, step: int, steps: int, logs: dict) -> None: ...
    def on_epoch(self, epoch: int, epochs: int, logs: dict) -> None: ...


@dataclass
class TrainResult:
    model_path: Path
    card: ModelCard
    cancelled: bool


class TrainingCancelled(Exception):
    """Raised inside ``fit`` when a cancel was requested; caught by :func:`train`."""


# ---------------------------------------------------------------- precision


def cpu_has_bf16() -> bool:
    """True on CPUs with AMX or AVX512-BF16, where bfloat16 mixed precision pays."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in ("amx_bf16", "avx512_bf16"))


def resolve_precision(requested: str = "auto") -> str:
    """Pick the Keras dtype policy: bf16 on GPUs and on AMX/AVX512-BF16 CPUs, else float32."""
    if requested != "auto":
        return requested
    from fer.modelfile import gpu_names

    return "mixed_bfloat16" if gpu_names() or cpu_has_bf16() else "float32"


@contextlib.contextmanager
def dtype_policy(policy: str):
    """Temporarily set Keras' global dtype policy (models keep theirs once built)."""
    import keras

    old = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(old)


def build_for(cfg: TrainConfig, policy: str, seed: int | None = None):
    """A fresh model of ``cfg``'s architecture and augmentation, built under dtype ``policy``."""
    import fer.model

    with dtype_policy(policy):
        return fer.model.build_model(cfg.arch, augment=cfg.augment, augment_strength=cfg.augment_strength,
                                     camera=cfg.camera, camera_conditions=cfg.camera_conditions,
                                     seed=cfg.seed if seed is None else seed)


# ---------------------------------------------------------------- devices


@contextlib.contextmanager
def distribution(enabled: bool):
    """Data parallelism over this host's devices while the block runs; yields the number of devices (1: off).

    JAX: Keras 3's ``keras.distribution.DataParallel`` over ``keras.distribution.list_devices()``
    (GPUs, or ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` CPU devices). TensorFlow:
    ``tf.distribute.MirroredStrategy`` over the GPUs, else over the logical CPU devices; models
    built and compiled in the block are mirrored. Several hosts: see docs/scale.md.
    """
    if not enabled:
        yield 1
        return
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        devices = keras.distribution.list_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        try:
            yield len(devices)
        finally:
            keras.distribution.set_distribution(None)
    elif backend == "tensorflow":
        import tensorflow as tf

        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or \
                  [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        with strategy.scope():
            yield strategy.num_replicas_in_sync
    else:
        raise ValueError(f"--distribute works on the jax and tensorflow backends, not {backend}; "
                         "set KERAS_BACKEND=jax or tensorflow")


def scale_for_devices(cfg: TrainConfig, devices: int) -> tuple[TrainConfig, dict]:
    """The run's config on ``devices`` devices: ``batch_size`` per device (the global batch is ``devices``
    times it) and the peak learning rate scaled linearly with the devices; plus the record for the card."""
    record = {"devices": devices, "per_device_batch_size": cfg.batch_size,
              "global_batch_size": cfg.batch_size * devices, "base_lr": cfg.lr, "lr_scale": float(devices),
              "lr": cfg.lr * devices}
    if not cfg.distribute:
        return cfg, {}
    import keras

    record["backend"] = keras.backend.backend()
    scaled = TrainConfig.from_dict({**asdict(cfg), "batch_size": cfg.batch_size * devices, "lr": cfg.lr * devices})
    return scaled, record


def _whole_batches(split: Split, devices: int) -> Split:
    """``split`` cut to a multiple of ``devices`` images, so every batch (the last one too) shards evenly."""
    n = len(split) - len(split) % devices
    return split if n == len(split) else Split(split.x[:n], split.y[:n])


# ---------------------------------------------------------------- compile


def make_schedule(cfg: TrainConfig, steps_per_epoch: int):
    import keras

    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = min(total - 1, int(cfg.warmup_epochs * steps_per_epoch))
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "onecycle":
        warmup = max(1, int(0.3 * total))
        return keras.optimizers.schedules.CosineDecay(
            cfg.lr / 25, total - warmup, alpha=1e-3 / 25, warmup_target=cfg.lr, warmup_steps=warmup)
    return keras.optimizers.schedules.CosineDecay(
        cfg.lr * 0.1 if warmup else cfg.lr, total - warmup, alpha=1e-3,
        warmup_target=cfg.lr if warmup else None, warmup_steps=warmup)


def make_optimizer(cfg: TrainConfig, steps_per_epoch: int):
    import keras

    lr = make_schedule(cfg, steps_per_epoch)
    if cfg.optimizer == "sgd":
        opt = keras.optimizers.SGD(lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay)
    else:
        opt = keras.optimizers.AdamW(lr, weight_decay=cfg.weight_decay)
    opt.exclude_from_weight_decay(var_names=["bn", "batch_normalization", "bias", "beta", "gamma"])
    return opt


def compile_model(model, cfg: TrainConfig | None = None, *, lr: float | None = None, steps: int = 1000,
                  prior: np.ndarray | None = None) -> None:
    """Compile with the config's optimizer, schedule and label-smoothed cross-entropy (one-hot or soft
    targets); with ``cfg.logit_adjust``, the logit-adjusted form for the training ``prior``."""
    import keras

    from fer.model import LogitAdjustedLoss

    cfg = cfg or TrainConfig()
    if lr is not None:
        cfg = TrainConfig.from_dict({**asdict(cfg), "lr": lr})
    if cfg.logit_adjust and prior is None:
        raise ValueError("logit_adjust needs the training split's class prior")
    loss = (LogitAdjustedLoss(prior, cfg.logit_adjust, cfg.label_smoothing) if cfg.logit_adjust
            else keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing))
    model.compile(
        optimizer=make_optimizer(cfg, steps),
        loss=loss,
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )


# ---------------------------------------------------------------- data


def to_inputs(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs (n, 48, 48, 1) float32 in 0-255 and one-hot float32 targets."""
    x = split.x.astype(np.float32)[..., None]
    y = np.eye(NUM_CLASSES, dtype=np.float32)[split.y]
    return x, y


def teacher_probabilities(teacher: str, split: Split, cache: Path | None = None) -> np.ndarray:
    """The teacher's probabilities (n, 7) for ``split``'s faces, without prior correction: a shipped
    profile ("photo": the ensemble with TTA) or a model file (with flip TTA). Computed once and cached
    in ``cache`` (a .npy file), reused while the teacher (its model files) and the faces are the same."""
    import hashlib

    from fer.profiles import load_profile, member_files

    files = member_files(teacher)[0] if teacher in ("photo", "live") else [Path(teacher)]
    digest = hashlib.sha256(teacher.encode() + np.ascontiguousarray(split.x).tobytes())
    for f in files:  # a rebuilt profile or a retrained model is another teacher
        digest.update(f.read_bytes() if f.is_file() else b"missing")
    key = digest.hexdigest()[:16]
    if cache is not None and cache.is_file() and cache.with_suffix(".key").is_file() \
            and cache.with_suffix(".key").read_text() == key:
        return np.load(cache)
    ensemble = load_profile(teacher) if teacher in ("photo", "live") else load_profile("photo", teacher)
    probs = ensemble.probabilities(split.x, corrected=False)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cache, lambda tmp: np.save(open(tmp, "wb"), probs))
        cache.with_suffix(".key").write_text(key)
    return probs


def distill_targets(cfg: TrainConfig, split: Split, y: np.ndarray, cache: Path | None = None) -> np.ndarray:
    """One-hot targets ``y`` mixed with the teacher's soft targets (knowledge distillation), or ``y`` as is."""
    if not cfg.teacher:
        return y
    soft = teacher_probabilities(cfg.teacher, split, cache)
    return (cfg.distill_weight * soft + (1.0 - cfg.distill_weight) * y).astype(np.float32)


def train_val_splits(data: Dataset, cfg: TrainConfig) -> tuple[Split, Split, str]:
    """The training split and the selection split: public_test if present, else a stratified carve-out."""
    train = data.split("train") if "train" in data.splits else data.split("all")
    if "public_test" in data.splits and "train" in data.splits:
        return train, data.splits["public_test"], "public_test"
    rng = np.random.default_rng(cfg.seed)
    val_idx = []
    for c in range(NUM_CLASSES):
        idx = np.flatnonzero(train.y == c)
        k = int(round(len(idx) * cfg.val_fraction)) if len(idx) > 1 else 0
        val_idx.extend(rng.choice(idx, size=k, replace=False).tolist())
    if not val_idx:
        raise ValueError("dataset too small to carve a validation split; add more images per class")
    mask = np.zeros(len(train), bool)
    mask[val_idx] = True
    return Split(train.x[~mask], train.y[~mask]), Split(train.x[mask], train.y[mask]), "validation"


def class_weight_dict(y: np.ndarray) -> dict[int, float]:
    counts = np.bincount(y, minlength=NUM_CLASSES).astype(float)
    weights = len(y) / (NUM_CLASSES * np.maximum(counts, 1))
    return {i: float(w) for i, w in enumerate(weights)}


# ---------------------------------------------------------------- run state and callbacks


def run_dir(out: str | Path) -> Path:
    """Where a run keeps its checkpoints: ``models/x.keras`` -> ``models/x.run/``."""
    out = Path(out)
    return out.with_name(out.stem + ".run")


def epoch_checkpoint(rdir: Path, epoch: int) -> Path:
    """The checkpoint a ``keep_checkpoints`` run keeps of ``epoch`` (1-based)."""
    return Path(rdir) / f"epoch_{epoch:03d}.keras"


def _write_json(path: Path, obj: dict) -> None:
    atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2)))


def read_state(out: str | Path) -> dict | None:
    path = run_dir(out) / "state.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"run state {path} is unreadable ({exc}); delete {path.parent} to start afresh") from None


def _precise_batchnorm_callback(model, x: np.ndarray, steps: int, batch_size: int):
    """A Keras callback that recomputes BatchNorm statistics before each validation, or None.

    Keras keeps BatchNorm's inference statistics as a moving average with a memory of
    ``1 / (1 - momentum)`` steps (100 at the default 0.99). An epoch shorter than that (a small
    dataset, such as the app's quick run) leaves them behind the weights, and the validation
    score, the best-epoch selection and the saved model all see a network that was never trained
    (on 70 generated faces: 14-29% instead of 100%). Such epochs set them to their exact mean over
    the training images instead ("precise BN"), at the cost of one forward pass over them per epoch.
    """
    import keras

    from fer.batchnorm import batchnorm_layers, recompute_batchnorm

    layers = batchnorm_layers(model)
    if not layers or steps >= round(1.0 / (1.0 - max(layer.momentum for layer in layers))):
        return None

    class PreciseBatchNorm(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):
            recompute_batchnorm(self.model, x, batch_size=min(batch_size, len(x)))

    return PreciseBatchNorm()


def _checkpoint_callback(rdir: Path, state: dict, listener, cancel):
    """A Keras callback: per-epoch checkpoint (last + best), state file, progress and cancel."""
    import keras  # imported here so that importing fer.training stays light

    class Checkpoint(keras.callbacks.Callback):
        def __init__(self, rdir, state, listener, cancel):
            super().__init__()
            self.rdir, self.state, self.listener, self.cancel = rdir, state, listener, cancel
            self.t0 = time.monotonic()
            self.epoch_t0 = self.t0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_t0 = time.monotonic()

        def on_train_batch_end(self, batch, logs=None):
            if self.listener is not None and hasattr(self.listener, "on_batch"):
                self.listener.on_batch(self.state["epoch"], batch + 1, self.state["steps"], dict(logs or {}))
            if self.cancel is not None and self.cancel.is_set():
                raise TrainingCancelled()

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: round(float(v), 5) for k, v in (logs or {}).items()}
            logs.update(epoch=epoch + 1, seconds=round(time.monotonic() - self.epoch_t0, 1))
            st = self.state
            st["history"].append(logs)
            st["epoch"] = epoch + 1
            st["elapsed_s"] = round(st.get("elapsed_s_before", 0.0) + time.monotonic() - self.t0, 1)
            score = logs.get("val_accuracy", -logs.get("val_loss", 0.0))
            if score > st["best_score"]:
                st["best_score"], st["best_epoch"] = score, epoch + 1
                atomic_write_bytes(self.rdir / "best.keras", lambda tmp: self.model.save(tmp))
            atomic_write_bytes(self.rdir / "last.keras", lambda tmp: self.model.save(tmp))
            if st["config"].get("keep_checkpoints"):
                atomic_write_bytes(epoch_checkpoint(self.rdir, epoch + 1),
                                   lambda tmp: shutil.copyfile(self.rdir / "last.keras", tmp))
            _write_json(self.rdir / "state.json", st)
            if out_of_patience(st):
                self.model.stop_training = True
            if self.listener is not None and hasattr(self.listener, "on_epoch"):
                self.listener.on_epoch(epoch + 1, st["config"]["epochs"], logs)

    return Checkpoint(rdir, state, listener, cancel)


# ---------------------------------------------------------------- train


def _start_or_resume(cfg: TrainConfig, out: Path, resume: bool, policy: str, steps: int, init_model: str | None,
                     prior: np.ndarray | None = None):
    """Return (model, state): a fresh compiled model, or the last checkpoint of the run."""
    import keras

    rdir = run_dir(out)
    state = read_state(out) if resume else None
    if state is not None and (rdir / "last.keras").is_file():
        saved = TrainConfig.from_dict(state["config"])
        if (saved.arch, saved.batch_size) != (cfg.arch, cfg.batch_size):
            raise ValueError(f"--resume: run in {rdir} used arch={saved.arch} batch_size={saved.batch_size}; "
                             "pass the same settings or train to another --out")
        state["config"]["epochs"] = cfg.epochs
        state["config"]["patience"] = cfg.patience
        state["elapsed_s_before"] = state.get("elapsed_s", 0.0)
        state["config"]["keep_checkpoints"] = state["config"].get("keep_checkpoints") or cfg.keep_checkpoints
        model = keras.saving.load_model(rdir / "last.keras", compile=True, safe_mode=True)
        return model, state
    if rdir.exists():
        shutil.rmtree(rdir)
    rdir.mkdir(parents=True)
    seed = run_seed(cfg, init_model)
    keras.utils.set_random_seed(seed)
    model = build_for(cfg, policy, seed)
    if init_model:
        from fer.modelfile import load_model

        src, _ = load_model(init_model)
        model.set_weights(weights_for(model, src))
    compile_model(model, cfg, steps=steps, prior=prior)
    state = {"config": asdict(cfg), "epoch": 0, "steps": steps, "history": [], "best_score": -math.inf,
             "best_epoch": 0, "elapsed_s": 0.0, "precision": policy, "init_model": init_model, "seed": seed,
             "base_stages": _base_stages(init_model),
             "pretrained_weights": _inherited_pretrained(init_model) if init_model else load_pretrained(model, cfg)}
    return model, state


def load_pretrained(model, cfg: TrainConfig) -> dict | None:
    """Load ``cfg.arch``'s ported ImageNet weights into a fresh ``model`` when ``cfg.pretrained`` and the
    architecture has them (:data:`fer.efficientnet.PRETRAINED`); return their file, origin and licence, else None."""
    from fer.efficientnet import PRETRAINED, load_imagenet_weights

    if not cfg.pretrained or cfg.arch not in PRETRAINED:
        return None
    return {"file": PRETRAINED[cfg.arch].name, **load_imagenet_weights(model, PRETRAINED[cfg.arch])}


def run_seed(cfg: TrainConfig, init_model: str | None) -> int:
    """The random seed of a run: ``cfg.seed``, plus the stage number when fine-tuning.

    A fine-tuning stage with the same ``--seed`` would otherwise replay the first stage's batch
    order, augmentations and dropout masks step for step, so the network would see the very same
    augmented images again in every stage.
    """
    if not init_model:
        return cfg.seed
    return cfg.seed + max(1, len(_base_stages(init_model)))


def weights_for(model, src) -> list:
    """Weights of ``src`` (a model, or weight path -> array) for ``model``, in ``set_weights`` order.

    Same architecture required; the augmentation's RNG state may differ and keeps ``model``'s own.
    """
    by_path = src if isinstance(src, dict) else {w.path: w.numpy() for w in src.weights}
    out = []
    for w in model.weights:
        s = by_path.get(w.path)
        if s is None or tuple(np.shape(s)) != tuple(w.shape):
            if "seed_generator" in w.path:
                out.append(w.numpy())
                continue
            raise ValueError(f"cannot fine-tune: the starting model has no weight matching {w.path}; "
                             "fine-tuning needs the same architecture")
        out.append(s)
    return out


def export_model(best_path: Path, cfg: TrainConfig, out: Path, card: ModelCard) -> Path:
    """Rebuild the architecture in float32 without optimizer, copy the best weights, save with card."""
    import keras

    best = keras.saving.load_model(best_path, compile=False, safe_mode=True)
    clean = build_for(cfg, "float32")
    clean.set_weights(weights_for(clean, best))
    return save_model(clean, out, card)


def train(
    data: Dataset,
    cfg: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    listener: ProgressListener | None = None,
    cancel: threading.Event | None = None,
    init_model: str | Path | None = None,
    command: str = "",
) -> TrainResult:
    """Train ``cfg.arch`` on ``data``, select the best epoch on the validation split, save to ``out``.

    Stops early, keeping the best model so far, when ``cancel`` is set or on Ctrl-C; the run can
    then be continued with ``resume=True``.
    """
    cfg.validate()
    out = Path(out)
    if out.suffix != ".keras":
        raise ValueError(f"--out {out} must end in .keras")
    started = time.monotonic()
    train_split, val_split, val_name = train_val_splits(data, cfg)
    policy = resolve_precision(cfg.precision)
    with distribution(cfg.distribute) as devices:
        cfg, spread = scale_for_devices(cfg, devices)
        fit_split, fit_val = _whole_batches(train_split, devices), _whole_batches(val_split, devices)
        steps = math.ceil(len(fit_split) / cfg.batch_size)
        if cfg.time_budget_s > 0:
            cfg = _budgeted(cfg, out, resume, policy, len(fit_split), len(fit_val), started)
        model, state = _start_or_resume(cfg, out, resume, policy, steps, str(init_model) if init_model else None,
                                        train_prior(train_split) if cfg.logit_adjust else None)
        state["command"] = command
        if spread:
            state["distribution"] = spread
        cancelled = _fit(model, state, cfg, fit_split, fit_val, run_dir(out), listener, cancel)
    rdir = run_dir(out)
    if not (rdir / "best.keras").is_file():
        raise TrainingCancelled("training stopped before the first epoch finished; nothing to save")
    card = make_card(state, cfg, data, val_name)
    best = _load_best(rdir)
    card.metrics = final_metrics(best, data, val_name, val_split)
    card.prior, card.tau = prior_correction(best, train_split, val_split)
    path = export_model(rdir / "best.keras", cfg, out, card)
    return TrainResult(path, card, cancelled)


def _budgeted(cfg: TrainConfig, out: Path, resume: bool, policy: str, n_train: int, n_val: int,
              started: float) -> TrainConfig:
    """``cfg`` with ``epochs`` set to what fits in ``time_budget_s`` (a resumed run keeps its own)."""
    saved = read_state(out) if resume else None
    if saved is not None:
        epochs = int(saved["config"]["epochs"])
    else:
        timing = measure_epoch_seconds(cfg, policy, n_train, n_val)
        left = cfg.time_budget_s - (time.monotonic() - started) - timing["compile_s"]
        epochs = max(1, min(cfg.epochs, int(left // timing["epoch_s"])))
    return TrainConfig.from_dict({**asdict(cfg), "epochs": epochs})


def measure_epoch_seconds(cfg: TrainConfig, policy: str, n_train: int, n_val: int, probe_steps: int = 6) -> dict:
    """Time a throwaway copy of ``cfg``'s model on this machine.

    Returns ``epoch_s`` (training steps, validation and the two checkpoint saves of one epoch)
    and ``compile_s`` (the first step's tracing/compilation, which the real run pays again).
    """
    import tempfile

    probe = build_for(cfg, policy)
    compile_model(probe, cfg, steps=max(1, math.ceil(n_train / cfg.batch_size)))
    rng = np.random.default_rng(cfg.seed)
    x = rng.uniform(0, 255, (cfg.batch_size, 48, 48, 1)).astype(np.float32)
    y = np.eye(NUM_CLASSES, dtype=np.float32)[rng.integers(0, NUM_CLASSES, cfg.batch_size)]
    t0 = time.monotonic()
    probe.train_on_batch(x, y)
    probe.test_on_batch(x, y)
    compile_s = time.monotonic() - t0
    step_s = _seconds_per_call(lambda: probe.train_on_batch(x, y), probe_steps)
    eval_s = _seconds_per_call(lambda: probe.test_on_batch(x, y), probe_steps)
    with tempfile.TemporaryDirectory() as tmp:
        save_s = _seconds_per_call(lambda: probe.save(Path(tmp) / "probe.keras"), 1)
    epoch_s = (math.ceil(n_train / cfg.batch_size) * step_s + math.ceil(n_val / cfg.batch_size) * eval_s
               + 2 * save_s)
    return {"epoch_s": epoch_s, "compile_s": compile_s}


def _seconds_per_call(fn, n: int) -> float:
    t0 = time.monotonic()
    for _ in range(n):
        fn()
    return (time.monotonic() - t0) / n


def _fit(model, state, cfg, train_split, val_split, rdir, listener, cancel) -> bool:
    x, y = to_inputs(train_split)
    y = distill_targets(cfg, train_split, y, Path(rdir) / "teacher_probs.npy")
    xv, yv = to_inputs(val_split)
    if listener is not None and hasattr(listener, "on_train_begin"):
        listener.on_train_begin(cfg.epochs, state["steps"], state["epoch"])
    if state["epoch"] >= cfg.epochs or out_of_patience(state):
        return False
    precise = _precise_batchnorm_callback(model, x, state["steps"], cfg.batch_size)
    callbacks = [precise] if precise is not None else []
    callbacks.append(_checkpoint_callback(rdir, state, listener, cancel))
    try:
        model.fit(x, y, batch_size=cfg.batch_size, epochs=cfg.epochs, initial_epoch=state["epoch"],
                  validation_data=(xv, yv), shuffle=True, verbose=0, callbacks=callbacks,
                  class_weight=class_weight_dict(train_split.y) if cfg.class_weights else None)
    except (TrainingCancelled, KeyboardInterrupt):
        return True
    return False


def out_of_patience(state: dict) -> bool:
    """Whether the run's last ``patience`` epochs all failed to beat its best epoch (early stopping)."""
    patience = int(state["config"].get("patience", 0))
    return patience > 0 and state["epoch"] - state["best_epoch"] >= patience


def _load_best(rdir: Path):
    import keras

    return keras.saving.load_model(rdir / "best.keras", compile=False, safe_mode=True)


def final_metrics(model, data: Dataset, val_name: str, val_split: Split) -> dict:
    """The metrics a model card records: on the selection split, plus flip TTA when that is public_test."""
    from fer.evaluate import evaluate

    metrics = {val_name: evaluate(model, val_split)}
    if val_name == "public_test":
        metrics["public_test_tta_flip"] = evaluate(model, val_split, tta="flip")
    return metrics


def train_prior(split: Split) -> np.ndarray:
    """The class frequencies of ``split`` (``ValueError`` when a class has no face: no prior to adjust by)."""
    from fer.prior import class_prior

    counts = np.bincount(np.asarray(split.y, np.int64), minlength=NUM_CLASSES)
    if np.any(counts == 0):
        missing = [EMOTIONS[i] for i in np.flatnonzero(counts == 0)]
        raise ValueError(f"the training split has no {', '.join(missing)} face; logit_adjust needs every class")
    return class_prior(counts)


def prior_correction(model, train_split: Split, val_split: Split) -> tuple[list[float], float]:
    """The training split's class prior and the ``tau`` that corrects it best on the validation split
    (:func:`fer.prior.tune_tau`); no correction (``[]``, 0) when a class is missing from either split."""
    from fer.evaluate import probabilities
    from fer.prior import class_prior, tune_tau

    counts = np.bincount(np.asarray(train_split.y, np.int64), minlength=NUM_CLASSES)
    if np.any(counts == 0) or len(np.unique(val_split.y)) < NUM_CLASSES:
        return [], 0.0
    prior = class_prior(counts)
    tau, _ = tune_tau(probabilities(model, val_split.x), val_split.y, prior)
    return [round(float(p), 6) for p in prior], tau


def make_card(state: dict, cfg: TrainConfig, data: Dataset, val_name: str) -> ModelCard:
    """The model card of a run (its ``state``), without metrics: the caller evaluates and sets them."""
    return ModelCard(
        architecture=cfg.arch,
        config={**asdict(cfg), "selection_split": val_name, "init_model": state.get("init_model"),
                **({"pretrained_weights": state["pretrained_weights"]} if state.get("pretrained_weights") else {}),
                **({"distribution": state["distribution"]} if state.get("distribution") else {})},
        data=data.describe(),
        epochs=state["epoch"],
        best_epoch=state["best_epoch"],
        wall_time_s=state.get("elapsed_s", 0.0),
        hardware=hardware_description(),
        precision=state.get("precision", ""),
        history=state["history"],
        command=state.get("command", ""),
        stages=_run_base_stages(state),
    )


def _run_base_stages(state: dict) -> list[dict]:
    """The lineage recorded when the run started (the init model may have been overwritten since,
    e.g. by shipping an earlier result over it); runs that predate the record read it again."""
    if "base_stages" in state:
        return state["base_stages"]
    return _base_stages(state.get("init_model"))


def _inherited_pretrained(init_model: str) -> dict | None:
    """The pretrained weights (file, origin, licence) that the fine-tuned model's own first stage started from."""
    from fer.modelfile import read_card

    try:
        return read_card(init_model).config.get("pretrained_weights")
    except ValueError:
        return None


def _base_stages(init_model: str | None) -> list[dict]:
    """The training stages of the model this run was fine-tuned from (none if it has no card)."""
    from fer.modelfile import lineage, read_card

    if not init_model:
        return []
    try:
        return lineage(read_card(init_model))
    except ValueError:
        return []
