"""Weight averaging (SWA): one model from the mean weights of several checkpoints of one run.

Stochastic weight averaging (Izmailov et al., 2018) averages the weights a run visits at a
constant or cyclic learning rate; the mean lies nearer the centre of a flat minimum than any one
checkpoint and usually generalises better. Averaged convolution weights no longer match the
BatchNormalization statistics the checkpoints carried, so those are recomputed on training images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fer.batchnorm import recompute_batchnorm
from fer.training import (
    TrainConfig,
    build_for,
    epoch_checkpoint,
    final_metrics,
    make_card,
    prior_correction,
    read_state,
    run_dir,
    train_val_splits,
    weights_for,
)


def _load_checkpoint(path: str | Path):
    import keras

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist; give the epoch checkpoints of one run "
                         "(train with --keep-checkpoints: models/NAME.run/epoch_NNN.keras)")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a bad file
        raise ValueError(f"cannot load checkpoint {path}: {exc}") from None


def mean_weights(paths: list[str | Path]) -> dict[str, np.ndarray]:
    """The element-wise mean of the float weights of ``paths``, keyed by weight path.

    Every checkpoint must have the same weights (same architecture); integer state such as the
    augmentation's random seed is not averaged.
    """
    if not paths:
        raise ValueError("averaging needs at least one checkpoint")
    sums: dict[str, np.ndarray] = {}
    for i, path in enumerate(paths):
        arrays = {w.path: w.numpy() for w in _load_checkpoint(path).weights}
        weights = {key: value for key, value in arrays.items() if np.issubdtype(value.dtype, np.floating)}
        if i and weights.keys() != sums.keys():
            raise ValueError(f"checkpoint {path} has other weights than {paths[0]}; "
                             "average checkpoints of one architecture only")
        for key, value in weights.items():
            sums[key] = sums.get(key, 0.0) + value.astype(np.float64)
    return {key: (value / len(paths)).astype(np.float32) for key, value in sums.items()}


def run_checkpoints(out: str | Path, first_epoch: int, base_weight: float = 0.0) -> tuple[list[Path], dict]:
    """The kept epoch checkpoints of the run that writes ``out``, from ``first_epoch`` on, and its state.

    Averaging needs two checkpoints at least, or one blended with the run's starting model (``base_weight`` > 0).
    """
    state = read_state(out)
    if state is None:
        raise ValueError(f"no training run found for {out} (no {run_dir(out) / 'state.json'}); "
                         "give the --out of a run trained with --keep-checkpoints")
    last = int(state["epoch"])
    top = last if base_weight > 0 else last - 1
    if not 1 <= first_epoch <= top:
        raise ValueError(f"--from-epoch must be between 1 and {top} (the run has {last} epochs), "
                         f"got {first_epoch}")
    if base_weight > 0 and not state.get("init_model"):
        raise ValueError("--base-weight blends the run with the model it fine-tuned (--init-model), but this run "
                         "started from scratch")
    paths = [epoch_checkpoint(run_dir(out), e) for e in range(first_epoch, last + 1)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"the run {run_dir(out)} did not keep {', '.join(missing[:3])}; "
                         "train with --keep-checkpoints to keep every epoch's checkpoint")
    return paths, state


def blend(averaged: dict[str, np.ndarray], base, base_weight: float) -> dict[str, np.ndarray]:
    """``(1 - base_weight) * averaged + base_weight * base`` weight by weight (WiSE-FT, Wortsman et al. 2022:
    a fine-tuned model blended with the model it started from keeps more of the starting model's strengths)."""
    if not 0 <= base_weight < 1:
        raise ValueError(f"base_weight must be in [0, 1); got {base_weight}")
    theirs = {w.path: w.numpy() for w in base.weights}
    missing = [k for k in averaged if k not in theirs or theirs[k].shape != averaged[k].shape]
    if missing:
        raise ValueError(f"the starting model has no weight matching {missing[0]}; blend models of one architecture")
    return {k: ((1 - base_weight) * v + base_weight * theirs[k]).astype(np.float32) for k, v in averaged.items()}


def average_run(data, out: str | Path, dest: str | Path, *, first_epoch: int, command: str = "",
                batch_size: int = 256, base_weight: float = 0.0):
    """Average the kept checkpoints of the run that wrote ``out`` from ``first_epoch`` on; save to ``dest``.

    ``base_weight`` > 0 blends the average with the run's ``--init-model`` (see :func:`blend`).

    The BatchNorm statistics are recomputed on the run's training split; the averaged model is
    evaluated on the run's selection split like any trained model, and its card records which
    epochs were averaged and how the best single epoch of the run did, for comparison.
    Returns ``(path, card)``.
    """
    import keras

    from fer.modelfile import save_model

    dest = Path(dest)
    if dest.suffix != ".keras":
        raise ValueError(f"--out {dest} must end in .keras")
    paths, state = run_checkpoints(out, first_epoch, base_weight)
    cfg = TrainConfig.from_dict(state["config"])
    train_split, val_split, val_name = train_val_splits(data, cfg)
    seed = int(state.get("seed") or 0)
    keras.utils.set_random_seed(seed)  # the dropout masks of the BatchNorm passes: same command, same model
    model = build_for(cfg, "float32", seed)
    weights = mean_weights(paths)
    if base_weight > 0:
        from fer.modelfile import load_model

        weights = blend(weights, load_model(state["init_model"])[0], base_weight)
    model.set_weights(weights_for(model, weights))
    order = np.random.default_rng(seed).permutation(len(train_split.x))
    batch_size = min(batch_size, len(order))
    batches = recompute_batchnorm(model, train_split.x[order], batch_size)
    card = make_card(state, cfg, data, val_name)
    card.best_epoch = 0
    card.averaged = {"first_epoch": first_epoch, "last_epoch": int(state["epoch"]), "checkpoints": len(paths),
                     "batchnorm_images": batches * batch_size, "command": command,
                     **({"base_model": state["init_model"], "base_weight": base_weight} if base_weight else {}),
                     "best_single_epoch": {"epoch": state["best_epoch"], "accuracy": state["best_score"]}}
    card.metrics = final_metrics(model, data, val_name, val_split)
    card.prior, card.tau = prior_correction(model, train_split, val_split)
    return save_model(model, dest, card), card
