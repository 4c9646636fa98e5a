"""Draw the confusion matrix stored in a model card (rows = true label, as recall) as a PNG.

    python scripts/plot_confusion.py models/fer_default.keras docs/confusion.png [--split public_test]

Needs matplotlib (in requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fer.modelfile import read_card

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("out")
    p.add_argument("--split", default="public_test")
    args = p.parse_args()
    card = read_card(args.model)
    if args.split not in card.metrics:
        raise SystemExit(f"error: the card has no metrics for {args.split!r}; it has: {', '.join(card.metrics)}")
    m = card.metrics[args.split]
    counts = np.asarray(m["confusion"], dtype=float)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.2, 5.2))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(rates)):
        for j in range(len(rates)):
            ax.text(j, i, f"{rates[i, j]:.2f}\n({int(counts[i, j])})", ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(card.labels)), card.labels, rotation=35)
    ax.set_yticks(range(len(card.labels)), card.labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{args.split}: accuracy {m['accuracy']:.1%} (rows: share of each true class)", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
