"""Classifier against classifier: the `fer` package and this project's profiles on FER2013 public_test.

    python benchmarks/fer_package_accuracy.py [--data ../shared/data/fer2013] [--fer-venv DIR]
                                              [--timing-faces 200] [--rounds 3] [--write docs/baselines.json]

Both sides get the same 48x48 public_test crops with the face detector bypassed, so the figures compare
the classifiers alone:

- **the `fer` package** (PyPI ``fer`` 25.10.3, its default quantized TFLite mini-Xception), in its own
  venv (made as in ``benchmarks/pipeline_speed.py`` when missing), through its public API:
  ``FER(offsets=(0, 0)).detect_emotions(bgr_crop, face_rectangles=[(0, 0, 48, 48)])``, which resizes the
  whole crop to its 64x64 input. Its label is the highest of the scores it returns (rounded to two
  decimals by the package, as ``top_emotion`` reads them; ties go to the first label and are counted).
- **this project**: ``fer.EmotionRecognizer(profile="live" | "photo").classify`` (prior-corrected).

Accuracy, balanced accuracy and recall per class come from all faces; ms per face is one face per call
on the first ``--timing-faces`` faces, in ``--rounds`` rounds that alternate between the sides (best
round of each), so that a foreign load hits them alike: quote the ratios. ``--write`` stores the
package's figures (and this run's ratio) under ``fer_package_classifier`` in docs/baselines.json, which
``scripts/model_card.py`` renders.

The package's classifier was trained by its authors on FER2013 with the two test splits as its
validation data (their own split of the CSV), so public_test is not unseen by it either: like ours,
its figure is a selection-split figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from pipeline_speed import DEFAULT_VENV, FER_VERSION, FerWorker, fer_ready, install_fer  # noqa: E402

from fer.labels import EMOTIONS  # noqa: E402

# Runs in the `fer` venv: classify every crop (scores in EMOTIONS order), then time rounds on request.
FER_WORKER = r"""
import json, sys, time
import cv2, numpy as np
from fer.fer import FER
faces = np.load(sys.argv[1])
labels = json.loads(sys.argv[3])
detector = FER(offsets=(0, 0))
box = [(0, 0, faces.shape[2], faces.shape[1])]
def scores(face):
    found = detector.detect_emotions(cv2.cvtColor(face, cv2.COLOR_GRAY2BGR), face_rectangles=box)
    return [found[0]["emotions"][k] for k in labels] if found else [float("nan")] * len(labels)
np.save(sys.argv[2], np.array([scores(f) for f in faces], dtype=np.float32))
print("READY", flush=True)
for line in sys.stdin:
    n = int(line)
    t = time.perf_counter()
    for f in faces[:n]:
        scores(f)
    print("RESULT " + json.dumps({"ms": 1000 * (time.perf_counter() - t) / n}), flush=True)
"""


def fer_package_scores(venv: Path, faces: np.ndarray, tmp: str) -> tuple[np.ndarray, FerWorker]:
    """The `fer` package's scores for every crop, and its worker, left running for the timing rounds."""
    src, out = os.path.join(tmp, "faces.npy"), os.path.join(tmp, "scores.npy")
    np.save(src, faces)
    worker = FerWorker(venv, FER_WORKER, [src, out, json.dumps(list(EMOTIONS))], tmp)
    return np.load(out), worker


def summary(scores: np.ndarray, y: np.ndarray) -> dict:
    """Accuracy, balanced accuracy and recall per class of the highest score (first one on ties)."""
    from fer.evaluate import metrics_from_probs

    m = metrics_from_probs(np.nan_to_num(scores, nan=-1.0), y)
    top = scores.max(axis=1, keepdims=True)
    return {"accuracy": m["accuracy"], "balanced_accuracy": m["balanced_accuracy"],
            "per_class_recall": {k: v["recall"] for k, v in m["per_class"].items()},
            "ties": int(((scores == top).sum(axis=1) > 1).sum()), "no_result": int(np.isnan(scores).any(1).sum())}


def ms_per_face(recognizer, faces: np.ndarray) -> float:
    t = time.perf_counter()
    for f in faces:
        recognizer.classify(f[None])
    return 1000 * (time.perf_counter() - t) / len(faces)


def write_baselines(path: Path, entry: dict) -> None:
    doc = json.loads(path.read_text())
    doc["fer_package_classifier"] = entry
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote fer_package_classifier to {path}")


def main(argv: list[str] | None = None) -> int:
    from fer.data import load_dataset, shared_data_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir() / "fer2013")
    parser.add_argument("--fer-venv", type=Path, default=DEFAULT_VENV, help=f"default {DEFAULT_VENV}")
    parser.add_argument("--timing-faces", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", type=Path, help="store the `fer` package's figures in this baselines JSON")
    args = parser.parse_args(argv)
    if args.timing_faces < 1 or args.rounds < 1:
        parser.error("--timing-faces and --rounds must be at least 1")

    split = load_dataset(args.data).split("public_test")
    if len(split) == 0:
        parser.error(f"{args.data} has no public_test faces")
    if not fer_ready(args.fer_venv):
        install_fer(args.fer_venv)
    from fer import EmotionRecognizer

    ours = {name: EmotionRecognizer(profile=name) for name in ("live", "photo")}
    sample = split.x[: args.timing_faces]
    with tempfile.TemporaryDirectory() as tmp:
        scores, pkg = fer_package_scores(args.fer_venv, split.x, tmp)
        results = {"fer package": summary(scores, split.y)}
        results.update({name: summary(rec.classify(split.x), split.y) for name, rec in ours.items()})
        times: dict[str, list[float]] = {k: [] for k in results}
        for _ in range(args.rounds):
            times["fer package"].append(pkg.ask(str(len(sample)))["ms"])
            for name, rec in ours.items():
                times[name].append(ms_per_face(rec, sample))
        pkg.close()
    best = {k: min(v) for k, v in times.items()}
    print(f"{len(split)} public_test faces; ms per face: one face per call, best of {args.rounds} rounds "
          f"on {len(sample)} faces")
    print(f"{'classifier':<12} {'accuracy':>9} {'balanced':>9} {'ms/face':>8} {'x fer pkg':>9}  recall per class")
    for name, r in results.items():
        recall = " ".join(f"{k[:3]} {100 * v:.0f}" for k, v in r["per_class_recall"].items())
        print(f"{name:<12} {100 * r['accuracy']:>8.2f}% {100 * r['balanced_accuracy']:>8.2f}% "
              f"{best[name]:>8.2f} {best[name] / best['fer package']:>8.2f}x  {recall}")
    print(f"fer package: {results['fer package']['ties']} tied top scores, "
          f"{results['fer package']['no_result']} faces without a result")
    if args.write:
        cmd = "python benchmarks/fer_package_accuracy.py --data path/to/fer2013 --write docs/baselines.json"
        write_baselines(args.write, {
            "name": f"`fer` package {FER_VERSION} (PyPI), its classifier alone",
            "what": "its quantized TFLite mini-Xception on the same 48x48 crops (detector bypassed)",
            **{k: results["fer package"][k] for k in ("accuracy", "balanced_accuracy", "per_class_recall")},
            "ms_per_face": round(best["fer package"], 2), "ours_live_ms_per_face": round(best["live"], 2),
            "measured": dt.date.today().isoformat(), "command": cmd})
    return 0


if __name__ == "__main__":
    sys.exit(main())
