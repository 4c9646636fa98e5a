"""Loading FER2013 and face-crop datasets into uint8 48x48 arrays, with an on-disk cache.

Three forms are read (see :func:`load_dataset`):

1. ``fer2013.csv`` (columns ``emotion,pixels,Usage``);
2. the Kaggle image-folder layout ``DIR/train/<emotion>/*`` and ``DIR/test/<emotion>/*`` where a
   ``PublicTest_`` / ``PrivateTest_`` file-name prefix tells the two test usages apart (test files
   with neither prefix count as ``public_test``);
3. a flat class tree ``DIR/<emotion>/*`` of face crops of any size or mode (loaded as ``train``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer.images import FACE_SIZE, IMAGE_EXTENSIONS, load_face_file
from fer.labels import EMOTIONS, NUM_CLASSES, SPLITS, USAGE_TO_SPLIT, accepted_names, label_index

CACHE_VERSION = 1
PIXELS = FACE_SIZE * FACE_SIZE


class DataWarning(UserWarning):
    """Files or rows that were skipped while loading a dataset."""


@dataclass(frozen=True)
class Split:
    """Images ``x`` (n, 48, 48) uint8 and labels ``y`` (n,) int64 in FER2013 id order."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.y, minlength=NUM_CLASSES)
        return {name: int(c) for name, c in zip(EMOTIONS, counts)}


@dataclass
class Dataset:
    """A loaded dataset: named splits (``train``, ``public_test``, ``private_test``)."""

    source: str
    form: str
    splits: dict[str, Split]
    skipped: int = 0
    meta: dict = field(default_factory=dict)

    def split(self, name: str) -> Split:
        """Return one split, or all splits concatenated for ``name == "all"``."""
        if name == "all":
            parts = [self.splits[s] for s in SPLITS if s in self.splits]
            return Split(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]))
        if name not in self.splits:
            have = ", ".join(self.splits) or "none"
            raise ValueError(f"split '{name}' is not in {self.source} (it has: {have}; or use 'all')")
        return self.splits[name]

    def describe(self) -> dict:
        """Counts per split and class, for model cards and the UI."""
        return {
            "source": self.source,
            "form": self.form,
            "splits": {name: {"n": len(s), "classes": s.class_counts()} for name, s in self.splits.items()},
            "skipped": self.skipped,
        }


def load_dataset(
    path: str | Path,
    *,
    skip_unknown: bool = False,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
) -> Dataset:
    """Load a dataset from a ``fer2013.csv`` file or a folder (Kaggle layout or flat class tree).

    Unknown class folders (or CSV labels) raise ``ValueError`` unless ``skip_unknown`` is set.
    Unreadable files and malformed rows are skipped and counted in a :class:`DataWarning`.
    Decoded arrays are cached on disk (``cache_dir``, default ``$FER_CACHE_DIR`` or
    ``~/.cache/fer``), keyed on the files' names, sizes and modification times.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ValueError(f"dataset path {path} does not exist; give a fer2013.csv file or a folder of class folders")
    if path.is_dir() and (path / "fer2013.csv").is_file() and not _has_subdirs(path):
        path = path / "fer2013.csv"
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise ValueError(f"{path} is a file but not a .csv; give fer2013.csv or a folder of class folders")
        form, key_parts, loader = "csv", [_stat_key(path)], lambda: _load_csv(path, skip_unknown)
    else:
        form, files = _scan_folder(path, skip_unknown)
        key_parts = [_stat_key(f) for _, _, f in files]
        loader = lambda: _decode_files(files)  # noqa: E731
    key = _cache_key(form, skip_unknown, key_parts)
    cache = _cache_path(cache_dir, key) if use_cache else None
    if cache is not None and cache.is_file():
        try:
            return _read_cache(cache, str(path), form)
        except (OSError, ValueError, KeyError):
            pass  # corrupt cache: rebuild it
    splits, skipped = loader()
    if not splits:
        why = f" ({len(skipped)} skipped: {_examples(skipped)})" if skipped else ""
        raise ValueError(f"no usable images found in {path}{why}")
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable or malformed item(s) in {path}: {_examples(skipped)}",
                      DataWarning, stacklevel=2)
    data = Dataset(str(path), form, splits, len(skipped))
    if cache is not None:
        _write_cache(cache, data)
    return data


def require_splits(data: Dataset, names: tuple[str, ...] = ("train", "public_test")) -> Dataset:
    """``data`` when it has every split in ``names``; ValueError naming the missing ones otherwise."""
    missing = [n for n in names if n not in data.splits]
    if missing:
        raise ValueError(f"{data.source} has no {' or '.join(missing)} split (it has {', '.join(data.splits)}); "
                         "see the README's data section for the layouts read")
    return data


def _examples(reasons: list[str], n: int = 3) -> str:
    """The first ``n`` reasons, and how many more."""
    more = f"; and {len(reasons) - n} more" if len(reasons) > n else ""
    return "; ".join(reasons[:n]) + more


def _has_subdirs(path: Path) -> bool:
    return any(p.is_dir() for p in path.iterdir())


def _stat_key(path: Path) -> str:
    st = path.stat()
    return f"{path}|{st.st_size}|{st.st_mtime_ns}"


def _cache_key(form: str, skip_unknown: bool, parts: list[str]) -> str:
    h = hashlib.sha256(f"v{CACHE_VERSION}|{form}|{skip_unknown}".encode())
    for part in parts:
        h.update(part.encode("utf-8", "surrogateescape"))
        h.update(b"\n")
    return h.hexdigest()[:32]


def shared_data_dir() -> Path:
    """Where the developers' datasets live (FER2013 in ``fer2013/``): ``$FER_SHARED_DATA``, by default
    ``../shared/data`` beside the checkout. The tests, scripts and benchmarks that use FER2013 read it here."""
    return Path(os.environ.get("FER_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def _cache_path(cache_dir: str | Path | None, key: str) -> Path:
    root = Path(cache_dir or os.environ.get("FER_CACHE_DIR") or Path.home() / ".cache" / "fer")
    return root / f"dataset-{key}.npz"


def _read_cache(cache: Path, source: str, form: str) -> Dataset:
    with np.load(cache, allow_pickle=False) as z:
        info = json.loads(str(z["info"]))
        splits = {name: Split(z[f"{name}_x"], z[f"{name}_y"]) for name in info["splits"]}
    return Dataset(source, form, splits, info["skipped"], {"cache": str(cache)})


def _write_cache(cache: Path, data: Dataset) -> None:
    arrays = {f"{n}_{k}": getattr(s, k) for n, s in data.splits.items() for k in ("x", "y")}
    info = json.dumps({"splits": list(data.splits), "skipped": data.skipped})
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            np.savez(f, info=np.array(info), **arrays)
        os.replace(tmp, cache)
    except OSError as exc:  # a read-only home must not stop loading
        warnings.warn(f"could not write dataset cache {cache}: {exc}", DataWarning, stacklevel=3)


# ---------------------------------------------------------------- folders

def _class_dirs(root: Path, skip_unknown: bool) -> list[tuple[int, Path]]:
    out, unknown = [], []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        idx = label_index(d.name)
        if idx is None:
            unknown.append(d.name)
        else:
            out.append((idx, d))
    if unknown and not skip_unknown:
        raise ValueError(
            f"unknown class folder(s) {', '.join(repr(u) for u in unknown)} in {root}; accepted names: "
            f"{accepted_names()}; or pass skip_unknown=True (--skip-unknown) to ignore them"
        )
    return out


def _image_files(folder: Path) -> tuple[list[Path], int]:
    files, other = [], 0
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not entry.is_file() or entry.name.startswith("."):
            continue
        if entry.name.lower().endswith(IMAGE_EXTENSIONS):
            files.append(Path(entry.path))
        else:
            other += 1
    return files, other


def _split_of_test_file(name: str) -> str:
    lower = name.lower()
    if lower.startswith("privatetest"):
        return "private_test"
    return "public_test"


def _scan_folder(root: Path, skip_unknown: bool) -> tuple[str, list[tuple[str, int, Path]]]:
    """List (split, label, file) for a Kaggle layout or a flat class tree."""
    subdirs = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    if "train" in subdirs or "test" in subdirs:
        form, parts = "folders", [(n, subdirs[n]) for n in ("train", "test") if n in subdirs]
    else:
        form, parts = "class_tree", [("train", root)]
    files: list[tuple[str, int, Path]] = []
    ignored, empty = 0, []
    for part, folder in parts:
        for label, class_dir in _class_dirs(folder, skip_unknown):
            found, other = _image_files(class_dir)
            ignored += other
            if not found:
                empty.append(str(class_dir.relative_to(root)))
            for f in found:
                split = "train" if part == "train" else _split_of_test_file(f.name)
                files.append((split, label, f))
    if ignored:
        warnings.warn(f"ignored {ignored} non-image file(s) under {root}", DataWarning, stacklevel=3)
    if empty and files:
        warnings.warn(f"class folder(s) {', '.join(empty)} under {root} hold no images", DataWarning, stacklevel=3)
    if not files:
        raise ValueError(
            f"no image files found in {root}; expected {root}/<emotion>/*.jpg or {root}/train/<emotion>/*.jpg "
            f"with emotion folders named: {accepted_names()}"
        )
    return form, files


def _safe_load(path: Path) -> np.ndarray | str:
    """The face array, or why the file could not be read."""
    try:
        return load_face_file(path)
    except (ValueError, OSError) as exc:
        return f"{path.name}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"


def _decode_files(files: list[tuple[str, int, Path]]) -> tuple[dict[str, Split], list[str]]:
    workers = min(32, (os.cpu_count() or 1) * 4)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        faces = list(pool.map(_safe_load, [f for _, _, f in files], chunksize=256))
    by_split: dict[str, tuple[list, list]] = {}
    skipped: list[str] = []
    for (split, label, _), face in zip(files, faces):
        if isinstance(face, str):
            skipped.append(face)
            continue
        xs, ys = by_split.setdefault(split, ([], []))
        xs.append(face)
        ys.append(label)
    return _to_splits(by_split), skipped


def _to_splits(by_split: dict[str, tuple[list, list]]) -> dict[str, Split]:
    out = {}
    for name in SPLITS:
        if name in by_split and by_split[name][1]:
            xs, ys = by_split[name]
            out[name] = Split(np.stack(xs).astype(np.uint8), np.asarray(ys, dtype=np.int64))
    return out


# ---------------------------------------------------------------- csv

def _load_csv(path: Path, skip_unknown: bool) -> tuple[dict[str, Split], list[str]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.DictReader(f)
        try:
            cols = {c.strip().lower(): c for c in (reader.fieldnames or [])}
        except csv.Error as exc:
            raise ValueError(f"{path} is not a readable CSV file ({exc})") from None
        missing = [c for c in ("emotion", "pixels") if c not in cols]
        if missing:
            raise ValueError(
                f"{path} lacks column(s) {', '.join(missing)} (found: {_shown_columns(cols)}); "
                "expected the fer2013.csv header emotion,pixels,Usage as its first line"
            )
        try:
            return _parse_rows(reader, cols, path, skip_unknown)
        except csv.Error as exc:
            raise ValueError(f"{path} line {reader.line_num}: not valid CSV ({exc})") from None


def _shown_columns(cols: dict[str, str]) -> str:
    """The header names for an error message: short, printable, at most 5."""
    if not cols:
        return "none"
    names = [c if c.isprintable() and len(c) <= 24 else "<data, not a column name>" for c in cols]
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _parse_rows(reader, cols: dict[str, str], path: Path, skip_unknown: bool) -> tuple[dict[str, Split], list[str]]:
    by_split: dict[str, tuple[list, list]] = {}
    skipped: list[str] = []
    for lineno, row in enumerate(reader, start=2):
        label = _csv_label(row.get(cols["emotion"]), lineno, path, skip_unknown)
        usage = (row.get(cols["usage"]) or "Training") if "usage" in cols else "Training"
        split = USAGE_TO_SPLIT.get(str(usage).strip().lower())
        if label is None:  # an unknown label the caller asked to skip
            continue
        try:
            face = _csv_pixels(row.get(cols["pixels"]))
            if split is None:
                raise ValueError(f"unknown Usage {str(usage)[:20]!r}")
        except ValueError as exc:
            skipped.append(f"line {lineno}: {exc}")
            continue
        xs, ys = by_split.setdefault(split, ([], []))
        xs.append(face)
        ys.append(label)
    return _to_splits(by_split), skipped


def _csv_label(value: str | None, lineno: int, path: Path, skip_unknown: bool) -> int | None:
    text = (value if isinstance(value, str) else "").strip()
    if text.isascii() and text.isdigit() and int(text) < NUM_CLASSES:
        return int(text)
    idx = label_index(text) if text and not text.isdigit() else None
    if idx is None and not skip_unknown:
        shown = text if len(text) <= 30 else text[:30] + "..."
        raise ValueError(
            f"{path} line {lineno}: unknown emotion {shown!r}; expected an id 0-{NUM_CLASSES - 1} "
            f"({', '.join(EMOTIONS)}); pass skip_unknown=True (--skip-unknown) to skip such rows"
        )
    return idx


def _csv_pixels(value: str | None) -> np.ndarray:
    """A row's ``pixels`` field as a 48x48 uint8 array; ``ValueError`` saying what is wrong with it."""
    parts = (value if isinstance(value, str) else "").split()
    if len(parts) != PIXELS:
        raise ValueError(f"{len(parts)} pixel values, expected {PIXELS}")
    try:
        arr = np.array(parts, dtype=np.int64)
    except (ValueError, OverflowError):
        raise ValueError("pixel values are not all whole numbers") from None
    if arr.min() < 0 or arr.max() > 255:
        raise ValueError(f"pixel values span {arr.min()}..{arr.max()}, expected 0..255")
    return arr.astype(np.uint8).reshape(FACE_SIZE, FACE_SIZE)


def write_csv(path: str | Path, data: Dataset) -> None:
    """Write a dataset as a fer2013.csv-style file (emotion,pixels,Usage)."""
    usage = {"train": "Training", "public_test": "PublicTest", "private_test": "PrivateTest"}
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for name, split in data.splits.items():
            for img, label in zip(split.x, split.y):
                w.writerow([int(label), " ".join(map(str, img.reshape(-1).tolist())), usage[name]])
