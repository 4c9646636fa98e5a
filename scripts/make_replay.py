"""Make the calibration replay file of a model: penultimate features of FER2013 faces.

    python scripts/make_replay.py                      # models/fer_default.keras -> models/fer_default.replay.npz
    python scripts/make_replay.py --model models/x.keras --data ../shared/data/fer2013 --n-train 2000

The file holds the features (float16) of ``--n-train`` stratified training faces (mixed into the
"Calibrate to my face" fine-tuning, so that other faces are not forgotten) and of the whole
public_test split (the accuracy before and after calibration), plus the fingerprint of the
model's trunk: it must be regenerated whenever the model file is replaced (the app refuses a
stale one and says so). Takes about a minute on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    from fer.data import shared_data_dir

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=REPO / "models" / "fer_default.keras")
    p.add_argument("--data", type=Path, default=shared_data_dir() / "fer2013",
                   help="FER2013 (csv or Kaggle folders) with train and public_test")
    p.add_argument("--n-train", type=int, default=2000, help="stratified training faces to keep (default 2000)")
    p.add_argument("--out", type=Path, help="default: MODEL with .replay.npz instead of .keras")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from fer.calibrate import head_probs, head_weights, make_replay, replay_path, save_replay
    from fer.data import load_dataset
    from fer.modelfile import load_model

    try:
        model, _ = load_model(args.model)
        data = load_dataset(args.data)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if "public_test" not in data.splits:
        print(f"warning: {args.data} has no public_test split; calibration will not report it", file=sys.stderr)
    t0 = time.perf_counter()
    replay = make_replay(model, data, n_train=args.n_train, seed=args.seed, model_name=args.model.name)
    out = save_replay(replay, args.out or replay_path(args.model))
    if len(replay.test_y):
        acc = (head_probs(replay.test_f, *head_weights(model)).argmax(1) == replay.test_y).mean()
        print(f"public_test accuracy from the stored features: {acc:.4f} ({len(replay.test_y)} faces)")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB; {len(replay.train_y)} training + "
          f"{len(replay.test_y)} public_test faces; trunk {replay.fingerprint}) in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
