"""Small generated FER-style datasets for tests (class-dependent patterns, so they are learnable)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fer.labels import EMOTIONS

PREFIX = {"train": "Training", "public_test": "PublicTest", "private_test": "PrivateTest"}


def make_split(n_per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 48, 48) uint8 faces with a bright bar whose row depends on the class, plus noise."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for label in range(len(EMOTIONS)):
        for _ in range(n_per_class):
            img = rng.integers(0, 90, (48, 48)).astype(np.uint8)
            row = 4 + label * 6
            img[row : row + 4, 6:42] = 230
            xs.append(img)
            ys.append(label)
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def write_kaggle_folders(root: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]], ext: str = ".png") -> Path:
    """Write splits in the Kaggle layout root/{train,test}/<emotion>/<Usage>_<i>.png (lossless)."""
    for split, (x, y) in splits.items():
        part = "train" if split == "train" else "test"
        for i, (img, label) in enumerate(zip(x, y)):
            d = root / part / EMOTIONS[label]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{PREFIX[split]}_{i:05d}{ext}")
    return root


def write_csv(path: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    usage = {"train": "Training", "public_test": "PublicTest", "private_test": "PrivateTest"}
    lines = ["emotion,pixels,Usage"]
    for split, (x, y) in splits.items():
        for img, label in zip(x, y):
            lines.append(f"{int(label)},{' '.join(map(str, img.reshape(-1).tolist()))},{usage[split]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def sort_rows(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical order (label, then pixel bytes) so two loads can be compared as sets of rows."""
    keys = [bytes([int(label)]) + img.tobytes() for img, label in zip(x, y)]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return x[order], y[order]
