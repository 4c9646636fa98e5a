"""Milliseconds per face of single models, on Keras and on ONNX Runtime, as ratios to the first one.

    python benchmarks/member_speed.py models/fer_default.keras models/fer_effnet.keras [--repeats 50]

For each ``.keras`` file (a profile member, or any trained model), in one process and one run: one
face at a time (the live path) and a batch of 64 (the photo path), through Keras' compiled predictor
(``fer.predictor.compiled_predictor``, the app's Keras engine) and through ONNX Runtime with one thread
(``fer.onnx_runtime.OnnxClassifier`` on the graph ``onnx_for_file`` gives: the committed one, or a
conversion cached on first use). Each figure is the median of ``--repeats`` calls after warm-up. The
last columns divide by the first model's figure in the same run, so the ratios hold on a loaded machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def median_ms(call, x: np.ndarray, repeats: int) -> float:
    """Median milliseconds per face of ``call(x)``, after three warm-up calls."""
    for _ in range(3):
        call(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        call(x)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times) / len(x)


def measure(path: Path, repeats: int) -> dict[str, float]:
    from fer.modelfile import load_model
    from fer.onnx_runtime import OnnxClassifier, onnx_for_file
    from fer.predictor import compiled_predictor

    model, _ = load_model(path)
    keras_call = compiled_predictor(model)
    onnx_call = OnnxClassifier(onnx_for_file(path), threads=1)
    faces = np.random.default_rng(0).integers(0, 256, (64, 48, 48, 1)).astype(np.float32)
    return {"params": model.count_params(),
            "keras_1": median_ms(keras_call, faces[:1], repeats), "keras_64": median_ms(keras_call, faces, repeats),
            "onnx_1": median_ms(onnx_call, faces[:1], repeats), "onnx_64": median_ms(onnx_call, faces, repeats)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", type=Path, help=".keras files; the first is the baseline of the ratios")
    p.add_argument("--repeats", type=int, default=50)
    args = p.parse_args(argv)
    missing = [str(m) for m in args.models if not m.is_file()]
    if missing:
        print(f"error: no model file {', '.join(missing)}", file=sys.stderr)
        return 2
    rows = {m.name: measure(m, args.repeats) for m in args.models}
    base = next(iter(rows.values()))
    keys = ("keras_1", "keras_64", "onnx_1", "onnx_64")
    print("| model | parameters | Keras ms, 1 face | Keras ms/face, 64 | ONNX ms, 1 face | ONNX ms/face, 64 | "
          + " | ".join(f"x first, {k}" for k in keys) + " |")
    print("|---|---:|" + "---:|" * 8)
    for name, r in rows.items():
        print(f"| {name} | {r['params']:,} | " + " | ".join(f"{r[k]:.2f}" for k in keys) + " | "
              + " | ".join(f"{r[k] / base[k]:.2f}" for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
