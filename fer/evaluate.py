"""Evaluation: loss, accuracy, per-class precision/recall/F1, confusion matrix, optional TTA."""

from __future__ import annotations

import numpy as np

from fer.data import Split
from fer.labels import EMOTIONS, NUM_CLASSES
from fer.predictor import compiled_predictor, predict_proba

TTA_MODES = {
    "flip": "mean of the image and its horizontal mirror (2 passes)",
    "crops": "mean over the mirror pair of 5 shifted views (centre and +-2 px in x and y; 10 passes)",
}


def tta_views(x: np.ndarray, mode: str) -> list[np.ndarray]:
    """The test-time-augmentation views of a batch (n, 48, 48) for ``mode`` in :data:`TTA_MODES`."""
    if mode not in TTA_MODES:
        raise ValueError(f"unknown TTA mode {mode!r}; choose one of: {', '.join(TTA_MODES)}")
    views = [x]
    if mode == "crops":
        pad = np.pad(x, ((0, 0), (2, 2), (2, 2)), mode="edge")
        views += [pad[:, 2 + dy : 50 + dy, 2 + dx : 50 + dx] for dy, dx in ((-2, 0), (2, 0), (0, -2), (0, 2))]
    return views + [v[:, :, ::-1] for v in views]


def probabilities(model, x: np.ndarray, tta: str | None = None, batch_size: int = 256) -> np.ndarray:
    """Class probabilities for uint8 faces (n, 48, 48), averaged over TTA views if asked."""
    predictor = compiled_predictor(model)
    if not tta:
        return predict_proba(model, x, batch_size, predictor)
    views = tta_views(np.asarray(x), tta)
    return np.mean([predict_proba(model, v, batch_size, predictor) for v in views], axis=0)


def metrics_from_probs(probs: np.ndarray, y: np.ndarray) -> dict:
    """Loss, accuracy, per-class precision/recall/F1/support and confusion (rows = true label)."""
    y = np.asarray(y, dtype=np.int64)
    pred = probs.argmax(axis=1)
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(confusion, (y, pred), 1)
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)))) if len(y) else 0.0
    per_class = {}
    for i, name in enumerate(EMOTIONS):
        tp, support, predicted = confusion[i, i], confusion[i].sum(), confusion[:, i].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": round(float(precision), 4), "recall": round(float(recall), 4),
                           "f1": round(float(f1), 4), "support": int(support)}
    support = confusion.sum(axis=1)
    recalls = np.diag(confusion)[support > 0] / support[support > 0]
    return {
        "accuracy": round(float((pred == y).mean()) if len(y) else 0.0, 4),
        "balanced_accuracy": round(float(recalls.mean()) if len(recalls) else 0.0, 4),
        "loss": round(loss, 4),
        "n": int(len(y)),
        "labels": list(EMOTIONS),
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }


def evaluate(model, split: Split, tta: str | None = None, batch_size: int = 256) -> dict:
    """Evaluate ``model`` on a split; adds ``tta`` (the mode used, or None) to the metrics."""
    if len(split) == 0:
        raise ValueError("cannot evaluate on an empty split")
    out = metrics_from_probs(probabilities(model, split.x, tta, batch_size), split.y)
    out["tta"] = tta
    return out
