"""EfficientNet-Lite0's cost at the input sizes the 48x48 face can be upscaled to, against ``vgg`` in the same run.

    python benchmarks/effnet_size.py [--sizes 64,80,96,112] [--batches 8] [--batch-size 64] [--rounds 3]

For ``vgg`` and for ``effnet_lite0`` at each size (the model of ``fer.model.build_model`` with the
resize inside set to that size): parameters, multiply-accumulates, training images/s (``fit`` on random faces, float32,
after a warm-up), and inference ms per face at batch 64 and at batch 1 (the compiled predictor of
the app). Prints a Markdown table, every figure also as a ratio against ``vgg``'s. Timings are the
best of ``--rounds``, taken in turn over the models, which tames a busy machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402


def build(name: str):
    """``vgg``, or ``effnet_lite0`` at side N for a name ``effnet_lite0@N`` (the registered one otherwise)."""
    import keras
    from keras import layers

    from fer.efficientnet import lite0_body
    from fer.model import INPUT_SHAPE, augmentation, build_model

    if "@" not in name:
        return build_model(name)
    arch, size = name.split("@")
    if arch != "effnet_lite0":
        raise ValueError(f"only effnet_lite0 takes a size (effnet_lite0@96); got {name!r}")
    inputs = keras.Input(INPUT_SHAPE, name="face")
    x = augmentation(1.0)(layers.Rescaling(1.0 / 255.0, dtype="float32", name="rescale")(inputs))
    return keras.Model(inputs, lite0_body(int(size))(x), name=arch)


def macs(model) -> int:
    """Multiply-accumulates of one forward pass (convolutions, depthwise convolutions and dense layers)."""
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("Conv2D", "DepthwiseConv2D"):
            h, w, c_out = layer.output.shape[1:]
            k_h, k_w, c_in = layer.kernel.shape[:3]
            total += h * w * c_out * k_h * k_w * (c_in if kind == "Conv2D" else 1)
        elif kind == "Dense":
            total += int(layer.kernel.shape[0] * layer.kernel.shape[1])
    return int(total)


def prepare(name: str, batches: int, batch_size: int) -> dict:
    """A compiled, warmed-up model with its random faces, and its timing functions."""
    import keras

    from fer.predictor import compiled_predictor
    from fer.training import compile_model

    keras.utils.set_random_seed(0)
    model = build(name)
    compile_model(model, lr=1e-3, steps=1000)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch_size * batches, 48, 48, 1)).astype("float32")
    y = np.eye(7, dtype="float32")[rng.integers(0, 7, len(x))]
    model.fit(x[: batch_size * 2], y[: batch_size * 2], batch_size=batch_size, epochs=1, verbose=0)
    predict = compiled_predictor(model)
    predict(x[:batch_size]), predict(x[:1])
    ones = min(32, len(x))
    return {"params": model.count_params(), "macs": macs(model), "n": len(x), "ones": ones, "timers": {
        "train": lambda: model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0),
        "batch": lambda: [predict(x[i * batch_size:(i + 1) * batch_size]) for i in range(batches)],
        "one": lambda: [predict(x[i:i + 1]) for i in range(ones)]}}


def measure_all(names: list[str], batches: int, batch_size: int, rounds: int) -> dict[str, dict]:
    """Every model's figures; the rounds go round the models in turn, so a busy spell hits them all alike."""
    runs = {name: prepare(name, batches, batch_size) for name in names}
    best = {name: {} for name in names}
    for _ in range(rounds):
        for name, run in runs.items():
            for key, fn in run["timers"].items():
                t = time.perf_counter()
                fn()
                best[name][key] = min(best[name].get(key, float("inf")), time.perf_counter() - t)
    return {name: {"params": runs[name]["params"], "macs": runs[name]["macs"],
                   "train": runs[name]["n"] / b["train"], "ms64": 1000 * b["batch"] / runs[name]["n"],
                   "ms1": 1000 * b["one"] / runs[name]["ones"]} for name, b in best.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="64,80,96,112", help="effnet_lite0 input sides, comma-separated")
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    names = ["vgg", *(f"effnet_lite0@{int(s)}" for s in args.sizes.split(","))]
    print(f"| model | parameters | M MACs / face | train img/s | x vgg | ms/face batch {args.batch_size} | x vgg "
          "| ms/face batch 1 | x vgg |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    results = measure_all(names, args.batches, args.batch_size, args.rounds)
    base = results["vgg"]
    for name, r in results.items():
        print(f"| {name} | {r['params']:,} | {r['macs'] / 1e6:.0f} | {r['train']:.0f} "
              f"| {r['train'] / base['train']:.2f} "
              f"| {r['ms64']:.2f} | {r['ms64'] / base['ms64']:.2f} | {r['ms1']:.2f} | {r['ms1'] / base['ms1']:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
