"""Prior (logit) correction: undo the FER2013 class prior that a model learnt from its training data.

A network trained on imbalanced data scores rare classes low (disgust is 1.5% of FER2013's training
faces). Post-hoc logit adjustment (Menon et al., 2021, "Long-tail learning via logit adjustment")
divides that prior back out::

    adjusted(c | x) = softmax(log p(c | x) - tau * log prior(c))

``tau = 0`` is the model as trained; ``tau = 1`` is the balanced-error-optimal correction for a
perfectly calibrated model. ``tau`` is chosen on a held-out split by balanced accuracy (mean
per-class recall) under a bound on the loss of plain accuracy (:func:`tune_tau`), and travels in the
model card with the prior it was chosen for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from fer.labels import EMOTIONS, NUM_CLASSES

TAU_GRID = tuple(round(t, 2) for t in np.arange(0.0, 1.501, 0.05))
"""The values :func:`tune_tau` tries."""


def class_prior(counts: Mapping[str, int] | Sequence[int] | np.ndarray) -> np.ndarray:
    """Class frequencies (7,) in :data:`fer.labels.EMOTIONS` order from per-class counts (a dict by name,
    or counts in label order). Every class needs at least one example."""
    if isinstance(counts, Mapping):
        missing = [e for e in EMOTIONS if e not in counts]
        if missing:
            raise ValueError(f"class counts lack {', '.join(missing)}; give a count for every emotion")
        counts = [counts[e] for e in EMOTIONS]
    c = np.asarray(counts, dtype=np.float64)
    if c.shape != (NUM_CLASSES,) or np.any(c <= 0):
        raise ValueError(f"class counts must be {NUM_CLASSES} positive numbers, got {c.tolist()}")
    return c / c.sum()


def check_prior(prior: Sequence[float] | np.ndarray) -> np.ndarray:
    """``prior`` as a (7,) float array; ``ValueError`` unless it is 7 positive frequencies summing to 1."""
    p = np.asarray(prior, dtype=np.float64)
    if p.shape != (NUM_CLASSES,) or np.any(~np.isfinite(p)) or np.any(p <= 0) or abs(p.sum() - 1.0) > 1e-3:
        raise ValueError(f"a class prior must be {NUM_CLASSES} positive frequencies that sum to 1, got {p.tolist()}")
    return p


def adjust(probs: np.ndarray, prior: Sequence[float] | np.ndarray | None, tau: float) -> np.ndarray:
    """Probabilities (n, 7) with the prior divided out to the power ``tau``, renormalised (float32).

    ``prior=None`` or ``tau=0`` returns ``probs`` unchanged.
    """
    probs = np.asarray(probs, dtype=np.float32)
    if prior is None or tau == 0 or len(probs) == 0:
        return probs
    logits = np.log(np.clip(probs.astype(np.float64), 1e-12, 1.0)) - float(tau) * np.log(check_prior(prior))
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def balanced_accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    """Mean per-class recall over the classes present in ``y`` (predicted labels or probabilities)."""
    pred, y = np.asarray(pred), np.asarray(y, dtype=np.int64)
    if pred.ndim == 2:
        pred = pred.argmax(axis=1)
    recalls = [float(np.mean(pred[y == c] == c)) for c in range(NUM_CLASSES) if np.any(y == c)]
    return float(np.mean(recalls)) if recalls else 0.0


def tune_tau(probs: np.ndarray, y: np.ndarray, prior: Sequence[float] | np.ndarray,
             max_accuracy_drop: float = 0.003, grid: Sequence[float] = TAU_GRID) -> tuple[float, list[dict]]:
    """The ``tau`` of ``grid`` with the best balanced accuracy on (``probs``, ``y``) among those whose plain
    accuracy is at most ``max_accuracy_drop`` below the uncorrected one; ties go to the smaller tau.

    Returns ``(tau, table)``, the table listing tau, accuracy and balanced accuracy for every value tried.
    """
    y = np.asarray(y, dtype=np.int64)
    if len(y) == 0:
        raise ValueError("cannot tune the prior correction on an empty split")
    table = []
    for tau in grid:
        pred = adjust(probs, prior, tau).argmax(axis=1)
        table.append({"tau": float(tau), "accuracy": round(float(np.mean(pred == y)), 4),
                      "balanced_accuracy": round(balanced_accuracy(pred, y), 4)})
    base = float(np.mean(np.asarray(probs).argmax(axis=1) == y))
    allowed = [row for row in table if row["accuracy"] >= base - max_accuracy_drop - 1e-9]
    best = max(allowed, key=lambda row: (row["balanced_accuracy"], -row["tau"]))
    return best["tau"], table
