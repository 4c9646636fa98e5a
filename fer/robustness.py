"""Accuracy under camera conditions: a split's crops corrupted by :mod:`fer.corruptions`, condition by condition.

``python -m fer evaluate --data DIR --corruptions all`` prints clean accuracy, each condition's and
their mean (the ImageNet-C style summary), for a profile or a model; ``benchmarks/robustness.py`` puts
the `fer` package's classifier beside it on the same crops.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from fer.corruptions import CONDITIONS, corrupt

Classifier = Callable[[np.ndarray], np.ndarray]
"""Any function from uint8 crops (N, 48, 48) to class probabilities (N, 7) in :data:`fer.labels.EMOTIONS` order."""


def _scores(probs: np.ndarray, y: np.ndarray) -> dict:
    from fer.evaluate import metrics_from_probs

    m = metrics_from_probs(probs, y)
    recall = {k: v["recall"] for k, v in m["per_class"].items()}
    return {"accuracy": m["accuracy"], "balanced_accuracy": m["balanced_accuracy"], "per_class_recall": recall}


def robustness(classify: Classifier, x: np.ndarray, y: np.ndarray, conditions: tuple[str, ...] = CONDITIONS,
               severity: int | str = "all", seed: int = 0) -> dict:
    """Clean and per-condition accuracy of ``classify`` on crops ``x`` with labels ``y``, and the conditions' mean.

    ``severity``: 1-5, or ``"all"`` (each crop at one of the five, in equal shares: the mean over
    severities at a fifth of the cost). The corrupted crops depend only on ``seed``, so two
    classifiers measured with the same seed see the same images.
    """
    sets = condition_sets(x, conditions, severity, seed)
    return summarize({name: classify(faces) for name, faces in sets.items()}, y, severity, seed)


def condition_sets(x: np.ndarray, conditions: tuple[str, ...] = CONDITIONS, severity: int | str = "all",
              seed: int = 0) -> dict[str, np.ndarray]:
    """``{"clean": x, condition: corrupted x, ...}``, deterministic for ``seed``."""
    x = np.asarray(x)
    if len(x) == 0:
        raise ValueError("need at least one crop to measure")
    return {"clean": x, **{c: corrupt(x, c, severity, seed) for c in conditions}}


def summarize(probs: dict[str, np.ndarray], y: np.ndarray, severity: int | str = "all", seed: int = 0) -> dict:
    """Scores of a classifier's probabilities on each of :func:`condition_sets` (``"clean"`` first), and the mean."""
    y = np.asarray(y)
    if "clean" not in probs or any(len(p) != len(y) for p in probs.values()):
        raise ValueError(f"need the clean set and one probability row per label ({len(y)}) in every set")
    out = {"clean": _scores(probs["clean"], y),
           "conditions": {c: _scores(p, y) for c, p in probs.items() if c != "clean"}}
    accs = {c: v["accuracy"] for c, v in out["conditions"].items()}
    out.update(mean=round(float(np.mean(list(accs.values()))), 4) if accs else None,
               worst=min(accs, key=accs.get) if accs else None, severity=severity, seed=seed, n=int(len(y)))
    return out


def ensemble_classifier(ensemble) -> Classifier:
    """A profile's :class:`fer.profiles.Ensemble` (anything with ``probabilities(x, corrected)``), prior-corrected."""
    return lambda x: ensemble.probabilities(np.asarray(x), corrected=True)


def format_table(results: dict[str, dict]) -> str:
    """A text table: one row per condition (and clean, and the mean), one column per classifier in ``results``."""
    names = list(results)
    first = results[names[0]]
    rows = [("clean", [r["clean"]["accuracy"] for r in results.values()])]
    rows += [(c, [r["conditions"][c]["accuracy"] for r in results.values()]) for c in first["conditions"]]
    rows.append((f"mean of the {len(first['conditions'])}", [r["mean"] for r in results.values()]))
    width = max(12, *(len(n) for n in names))
    lines = [f"{'condition':<14}" + "".join(f"{n:>{width + 2}}" for n in names)]
    lines += [f"{label:<14}" + "".join(f"{100 * v:>{width + 1}.1f}%" for v in vals) for label, vals in rows]
    return "\n".join(lines)


def measured(path=None) -> dict | None:
    """The robustness table that ``benchmarks/robustness.py --write`` stored in ``docs/baselines.json``, or None."""
    import json
    from pathlib import Path

    path = Path(path) if path is not None else Path(__file__).resolve().parent.parent / "docs" / "baselines.json"
    try:
        entry = json.loads(path.read_text()).get("robustness")
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) and entry.get("results") else None
