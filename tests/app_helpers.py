"""Shared set-up for the app tests: a real small model trained on generated faces, and the app's env."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from fer.labels import EMOTIONS
from synth import make_split, write_kaggle_folders

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def app_env(root: Path, default_model: Path) -> dict[str, str]:
    """Environment variables pointing the app at test folders (models, data, work)."""
    models = root / "models"
    models.mkdir(parents=True, exist_ok=True)
    return {
        "FER_DEFAULT_MODEL": str(default_model),
        "FER_MODELS_DIR": str(models),
        "FER_DATA_DIR": str(root / "fer_data"),
        "FER_WORK_DIR": str(root / "work"),
        "FER_CACHE_DIR": str(root / "cache"),
        "FER_ICE_SERVERS": "[]",  # no STUN: the tests run offline, on localhost
    }


def write_fer_folder(path: Path, n_train: int = 6, n_test: int = 2) -> Path:
    return write_kaggle_folders(path, {"train": make_split(n_train, 3), "public_test": make_split(n_test, 4)})


def class_zip(n_per_class: int = 8, wrapper: str = "my_faces") -> bytes:
    """A zip of class folders ``wrapper/<emotion>/<i>.png`` made of generated faces."""
    x, y = make_split(n_per_class, 5)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, (img, label) in enumerate(zip(x, y)):
            png = io.BytesIO()
            Image.fromarray(img).save(png, format="PNG")
            zf.writestr(f"{wrapper}/{EMOTIONS[label]}/{i:04d}.png", png.getvalue())
    return buf.getvalue()


def face_photo() -> Path:
    """A real photograph with a face, shipped in tests/data (see tests/data/README)."""
    for name in ("astronaut.png", "astronaut.jpg"):
        if (DATA / name).is_file():
            return DATA / name
    found = sorted(p for p in DATA.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png") and "face" in p.name)
    if not found:
        raise FileNotFoundError(f"no face photograph in {DATA}")
    return found[0]


def noise_png(size: int = 160, seed: int = 0) -> bytes:
    """A photo-sized image with no face in it."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def set_env(monkeypatch, env: dict[str, str]) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert os.environ["FER_DEFAULT_MODEL"] == env["FER_DEFAULT_MODEL"]

