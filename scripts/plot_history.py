"""Draw a model card's learning curves (loss and accuracy, train and validation) as a PNG.

    python scripts/plot_history.py models/fer_default.keras docs/learning_curve.png

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

    from fer.modelfile import read_card

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("out")
    args = p.parse_args()
    card = read_card(args.model)
    if not card.history:
        raise SystemExit(f"error: {args.model}'s card has no training history")
    epochs = [h["epoch"] for h in card.history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.plot(epochs, [h[key] for h in card.history], "o-", label=f"train {key}")
        ax.plot(epochs, [h[f"val_{key}"] for h in card.history], "o-",
                label=f"{card.config.get('selection_split', 'validation')} {key}")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[1].axvline(card.best_epoch, color="grey", ls=":", label="selected epoch")
    fig.suptitle(f"{card.architecture}: {card.epochs} epochs, {card.wall_time_s / 3600:.1f} h on {card.hardware.split(';')[0]}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
