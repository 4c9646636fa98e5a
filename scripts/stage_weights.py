"""Carry a training run across sessions whose working tree is lost: a small float16 weights file per stage.

    # end of a session: the run's model (or its latest checkpoint) -> a committed file (weights only, float16, ~2.5 MB)
    python scripts/stage_weights.py save path/to/run.keras stages/resnet_s1.npz
    # next session: rebuild the model from it, then train the next stage from those weights
    python scripts/stage_weights.py load stages/resnet_s1.npz /tmp/resnet_s1.keras
    python -m fer train --data path/to/fer2013 --arch resnet --init-model /tmp/resnet_s1.keras ...
    # a model saved before a layer without weights changed: the same weights and card in today's layers
    python scripts/stage_weights.py rebuild old.keras new.keras

``save`` takes a ``.keras`` model with its card, or the ``--out`` path of a run that has not written
it yet (then it reads ``last.keras`` and ``state.json`` of the run folder). The file keeps the
architecture, the run's config, history and stages, so the rebuilt model's card records the lineage
(``fer train --init-model`` appends it to the next stage's ``stages``). No optimizer state is kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _source(path: Path) -> tuple[Path, dict]:
    """The checkpoint to save and the facts about it (from the run state, else from the model card)."""
    from fer.modelfile import read_card
    from fer.training import read_state, run_dir

    state = read_state(path)
    if not path.is_file() and state is not None and (run_dir(path) / "last.keras").is_file():
        facts = {k: state.get(k) for k in ("config", "epoch", "history", "best_epoch", "best_score",
                                           "elapsed_s", "command", "base_stages")}
        return run_dir(path) / "last.keras", facts
    card = read_card(path)
    return path, {"config": card.config, "epoch": card.epochs, "history": card.history, "command": card.command,
                  "best_epoch": card.best_epoch, "elapsed_s": card.wall_time_s, "base_stages": card.stages}


def save(src: Path, dest: Path) -> None:
    import keras

    import fer.model  # noqa: F401 - registers the custom layers

    ckpt, facts = _source(src)
    model = keras.saving.load_model(ckpt, compile=False, safe_mode=True)
    arrays = {f"w{i:03d}": np.asarray(w).astype(np.float16) for i, w in enumerate(model.get_weights())}
    facts["architecture"] = model.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(dest, meta=np.frombuffer(json.dumps(facts).encode(), np.uint8), **arrays)
    print(f"saved {len(arrays)} arrays of {model.name} (epoch {facts.get('epoch')}) to {dest} "
          f"({dest.stat().st_size / 1e6:.1f} MB)")


def build_from_config(architecture: str, config: dict):
    """A fresh ``architecture`` model with the augmentation layers a run's ``config`` recorded."""
    from fer.model import build_model

    return build_model(architecture, augment=bool(config.get("augment", True)),
                       augment_strength=float(config.get("augment_strength", 1.0)),
                       camera=float(config.get("camera", 0.0)),
                       camera_conditions=str(config.get("camera_conditions", "all")))


def load(src: Path, dest: Path) -> None:
    from fer.modelfile import ModelCard, save_model

    with np.load(src) as z:
        facts = json.loads(bytes(z["meta"]).decode())
        weights = [z[k].astype(np.float32) for k in sorted(k for k in z.files if k.startswith("w"))]
    model = build_from_config(facts["architecture"], facts["config"])
    if len(weights) != len(model.get_weights()):
        raise ValueError(f"{src} holds {len(weights)} arrays; a {facts['architecture']} model has "
                         f"{len(model.get_weights())}")
    model.set_weights(weights)
    card = ModelCard(architecture=facts["architecture"], config=facts["config"], epochs=int(facts["epoch"] or 0),
                     best_epoch=int(facts.get("best_epoch") or 0), wall_time_s=float(facts.get("elapsed_s") or 0),
                     history=facts.get("history") or [], command=facts.get("command") or "",
                     stages=facts.get("base_stages") or [], precision="float32 (stored as float16)",
                     notes=f"rebuilt from the float16 stage file {src.name}"
                     + (f"; {facts['origin']}; licence {facts['license']}" if facts.get("origin") else ""))
    save_model(model, dest, card)
    print(f"rebuilt {facts['architecture']} (epoch {facts['epoch']}) as {dest}")


def rebuild(src: Path, dest: Path) -> None:
    """``src`` (a model with its card) rebuilt from today's code, its float32 weights and card kept: for a
    model saved before a layer without weights changed (the layers that hold weights must be the same)."""
    import keras

    from fer.modelfile import load_model, save_model

    old, card = load_model(src)
    model = build_from_config(card.architecture, card.config)
    if [w.shape for w in model.weights] != [w.shape for w in old.weights]:
        raise ValueError(f"{src}'s weights do not fit a {card.architecture} model built by this code")
    model.set_weights(old.get_weights())
    faces = np.random.default_rng(0).uniform(0, 255, (32, 48, 48, 1)).astype(np.float32)
    diff = float(np.abs(keras.ops.convert_to_numpy(model(faces, training=False))
                        - keras.ops.convert_to_numpy(old(faces, training=False))).max())
    if diff > 1e-4:
        raise ValueError(f"the rebuilt model's probabilities differ from {src}'s by {diff:.2g}; not saved")
    card.notes = (card.notes + "; " if card.notes else "") + f"rebuilt from {src.name} by scripts/stage_weights.py"
    save_model(model, dest, card)
    print(f"rebuilt {card.architecture} as {dest}: largest probability difference {diff:.1g} on 32 faces")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("action", choices=("save", "load", "rebuild"),
                    help="save: a run -> a float16 stage file; load: a stage file -> a model; rebuild: a model -> "
                         "the same weights and card in today's layers (float32)")
    ap.add_argument("src", type=Path)
    ap.add_argument("dest", type=Path)
    args = ap.parse_args(argv)
    {"save": save, "load": load, "rebuild": rebuild}[args.action](args.src, args.dest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
