"""Training and inference throughput (images/s) of the architectures, float32 vs mixed precision.

    python benchmarks/train_throughput.py [--archs seed,vgg] [--batches 20] [--batch-size 64]

Runs every configuration in this one process on random 48x48 data and prints a Markdown table,
with each mixed-precision figure as a ratio against float32 for the same architecture.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402


def measure(arch: str, policy: str, batches: int, batch_size: int) -> tuple[float, float]:
    import keras

    from fer.model import build_model
    from fer.training import compile_model

    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    model = build_model(arch)
    compile_model(model, lr=1e-3, steps=1000)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch_size * batches, 48, 48, 1)).astype("float32")
    y = np.eye(7, dtype="float32")[rng.integers(0, 7, batch_size * batches)]
    model.fit(x[: batch_size * 2], y[: batch_size * 2], batch_size=batch_size, epochs=1, verbose=0)
    t = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    train = len(x) / (time.perf_counter() - t)
    batch = x[:batch_size]
    infer_fn = _compiled_call(model)
    infer_fn(batch)
    t = time.perf_counter()
    for i in range(batches):
        infer_fn(x[i * batch_size : (i + 1) * batch_size])
    infer = len(x) / (time.perf_counter() - t)
    keras.mixed_precision.set_global_policy("float32")
    return train, infer


def macs(model) -> int:
    """Multiply-accumulates of one forward pass (conv and dense layers)."""
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            h, w, c_out = layer.output.shape[1:]
            k_h, k_w, c_in, _ = layer.kernel.shape
            total += h * w * c_out * k_h * k_w * c_in
        elif kind == "Dense":
            total += int(layer.kernel.shape[0] * layer.kernel.shape[1])
    return int(total)


def _compiled_call(model):
    from fer.predictor import compiled_predictor

    return compiled_predictor(model)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", default="seed,vgg,vgg_wide")
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args()
    from fer.model import build_model

    for arch in args.archs.split(","):
        m = build_model(arch)
        print(f"{arch}: {m.count_params():,} parameters, {macs(m) / 1e6:.0f} M multiply-accumulates per image")
    print(f"| arch | precision | train img/s | infer img/s (batch {args.batch_size}) | train x | infer x |")
    print("|---|---|---:|---:|---:|---:|")
    for arch in args.archs.split(","):
        base = None
        for policy in ("float32", "mixed_bfloat16"):
            train, infer = measure(arch, policy, args.batches, args.batch_size)
            base = base or (train, infer)
            print(f"| {arch} | {policy} | {train:.0f} | {infer:.0f} | {train / base[0]:.2f} | {infer / base[1]:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
