"""Draw a model card's learning curves (loss and accuracy, train and validation) as a PNG.

    python scripts/plot_history.py models/fer_default.keras docs/learning_curve.png

A model fine-tuned from another one (``--init-model``) shows every stage, with a dotted line where
each later stage started (its learning rate schedule restarts there).

Needs matplotlib (in requirements-dev.txt); the app draws the same curves with plotly.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fer.modelfile import full_history, read_card

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("out")
    args = p.parse_args()
    card = read_card(args.model)
    history = full_history(card)
    if not history:
        raise SystemExit(f"error: {args.model}'s card has no training history")
    epochs = [h["epoch"] for h in history]
    starts = [h["epoch"] - 0.5 for a, h in zip(history, history[1:]) if h["stage"] != a["stage"]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, [h[key] for h in history], "o-", label=f"train {key}")
        ax.plot(epochs, [h[f"val_{key}"] for h in history], "o-",
                label=f"{card.config.get('selection_split', 'validation')} {key}")
        ax.set_xlabel("epoch")
        for x in starts:
            ax.axvline(x, color="grey", ls="--", lw=0.8)
        ax.grid(alpha=0.3)
        ax.legend()
    offset = len(history) - len(card.history)
    if card.averaged:
        axes[1].axvspan(offset + card.averaged["first_epoch"] - 0.5, offset + card.averaged["last_epoch"] + 0.5,
                        color="grey", alpha=0.15, label="weights averaged")
        axes[1].legend()
    else:
        axes[1].axvline(offset + card.best_epoch, color="grey", ls=":", label="selected epoch")
    hours = (card.wall_time_s + sum(s.get("wall_time_s", 0.0) for s in card.stages)) / 3600
    stages = f" in {len(card.stages) + 1} stages" if card.stages else ""
    fig.suptitle(f"{card.architecture}: {len(history)} epochs{stages}, {hours:.1f} h on {card.hardware.split(';')[0]}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
