"""Measure "Calibrate to my face" on a model with simulated visitors (numbers quoted in the README).

    python scripts/measure_calibration.py [--model models/fer_default.keras] [--visitors 10]

A simulated visitor is built like a webcam capture: for each emotion one FER2013 training face
that the model gets WRONG (and that is not in the replay), taken ``--shots`` times with small
frame-to-frame changes (shift of up to 2 px, brightness, sensor noise), like the snapshots the app
takes 0.3 s apart. The last third of each emotion's snapshots is held out, exactly as in the app.
Reports, averaged over the visitors: held-out snapshot accuracy before and after, public_test
accuracy before and after (from the model's replay file), and the seconds per calibration.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def jitter(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    dy, dx = rng.integers(-2, 3, 2)
    moved = np.roll(np.roll(face.astype(np.float32), dy, axis=0), dx, axis=1)
    moved = moved * rng.uniform(0.9, 1.1) + rng.uniform(-10, 10) + rng.normal(0, 3, face.shape)
    return np.clip(moved, 0, 255).astype(np.uint8)


def visitor(pool_x, pool_y, wrong, shots: int, rng) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for c in range(7):
        candidates = np.flatnonzero((pool_y == c) & wrong)
        face = pool_x[rng.choice(candidates)]
        xs += [jitter(face, rng) for _ in range(shots)]
        ys += [c] * shots
    return np.stack(xs), np.array(ys)


def main(argv: list[str] | None = None) -> int:
    from fer.data import shared_data_dir

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=REPO / "models" / "fer_default.keras")
    p.add_argument("--data", type=Path, default=shared_data_dir() / "fer2013")
    p.add_argument("--visitors", type=int, default=10)
    p.add_argument("--shots", type=int, default=5)
    p.add_argument("--pool", type=int, default=3000, help="training faces to draw visitors from")
    args = p.parse_args(argv)

    from fer.calibrate import calibrate, load_replay, replay_path, stratified_indices
    from fer.data import load_dataset
    from fer.evaluate import probabilities
    from fer.modelfile import load_model

    model, _ = load_model(args.model)
    replay = load_replay(replay_path(args.model), model)
    train = load_dataset(args.data).split("train")
    in_replay = set(stratified_indices(train.y, 2000, 0).tolist())  # make_replay's default pick
    rng = np.random.default_rng(1)
    pool = np.array([i for i in rng.permutation(len(train.y)) if i not in in_replay][: args.pool])
    px, py = train.x[pool], train.y[pool]
    wrong = probabilities(model, px).argmax(1) != py
    rows = []
    for v in range(args.visitors):
        x, y = visitor(px, py, wrong, args.shots, rng)
        t0 = time.perf_counter()
        r = calibrate(model, x, y, replay=replay).report
        rows.append((r.heldout_before, r.heldout_after, r.public_before["accuracy"], r.public_after["accuracy"],
                     time.perf_counter() - t0))
        print(f"visitor {v + 1}: held-out {r.heldout_before:.0%} -> {r.heldout_after:.0%} ({r.n_heldout} snapshots), "
              f"public_test {r.public_before['accuracy']:.2%} -> {r.public_after['accuracy']:.2%}, {rows[-1][4]:.1f} s")
    a = np.array(rows)
    print(f"mean over {len(rows)} visitors: held-out {a[:, 0].mean():.1%} -> {a[:, 1].mean():.1%}; public_test "
          f"{a[:, 2].mean():.2%} -> {a[:, 3].mean():.2%} (drop {100 * (a[:, 2] - a[:, 3]).mean():.2f} points, "
          f"worst {100 * (a[:, 2] - a[:, 3]).max():.2f}); {a[:, 4].mean():.1f} s per calibration "
          f"(max {a[:, 4].max():.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
