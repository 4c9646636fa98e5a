"""Safe extraction of uploaded zip archives of class folders (no zip-slip, no zip bombs)."""

from __future__ import annotations

import io
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

from fer.labels import label_index

CHUNK = 1 << 20


class UnsafeArchive(ValueError):
    """The archive escapes its folder, is too big, or is not a readable zip."""


def _member_path(name: str) -> PurePosixPath:
    """The member's relative path, refusing absolute paths, drive letters and '..' parts."""
    clean = name.replace("\\", "/")
    path = PurePosixPath(clean)
    if clean.startswith("/") or (path.parts and ":" in path.parts[0]) or ".." in path.parts:
        raise UnsafeArchive(f"refusing archive member {name!r}: its path escapes the extraction folder")
    return path


def _skip(path: PurePosixPath) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in path.parts)


def safe_extract(source: bytes | str | Path, dest: str | Path, *, max_bytes: int, max_files: int) -> Path:
    """Extract a zip into the empty or new folder ``dest`` and return ``dest``.

    Refuses members whose path escapes ``dest`` (absolute, ``..``, drive letters, symbolic links),
    archives with more than ``max_files`` files, and archives that inflate to more than
    ``max_bytes`` in total (checked on the declared sizes first, then on the bytes actually
    written, since declared sizes can lie). Hidden files and ``__MACOSX`` folders are skipped.
    On any refusal nothing is left in ``dest``.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise ValueError(f"extraction folder {dest} is not empty")
    root = dest.resolve()
    try:
        fp = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else open(source, "rb")
        with fp, zipfile.ZipFile(fp) as zf:
            _extract_all(zf, root, max_bytes, max_files)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, RuntimeError) as exc:
        _empty(dest)
        raise UnsafeArchive(f"not a readable zip archive ({type(exc).__name__}: {exc})") from None
    except BaseException:
        _empty(dest)
        raise
    return dest


def _extract_all(zf: zipfile.ZipFile, root: Path, max_bytes: int, max_files: int) -> None:
    members = []
    declared = 0
    for info in zf.infolist():
        path = _member_path(info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeArchive(f"refusing archive member {info.filename!r}: symbolic links are not allowed")
        if info.is_dir() or _skip(path) or not path.parts:
            continue
        target = (root / Path(*path.parts)).resolve()
        if not target.is_relative_to(root):
            raise UnsafeArchive(f"refusing archive member {info.filename!r}: its path escapes the extraction folder")
        members.append((info, target))
        declared += info.file_size
        if len(members) > max_files:
            raise UnsafeArchive(f"the archive has more than {max_files:,} files; split it or raise FER_MAX_ZIP_FILES")
        if declared > max_bytes:
            raise UnsafeArchive(f"the archive inflates to more than {max_bytes / 1e6:,.0f} MB "
                                "(zip bomb?); raise FER_MAX_ZIP_MB if it is genuine")
    written = 0
    for info, target in members:
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(target, "wb") as out:
            while chunk := src.read(CHUNK):
                written += len(chunk)
                if written > max_bytes:
                    raise UnsafeArchive(f"the archive inflates to more than {max_bytes / 1e6:,.0f} MB "
                                        "(zip bomb?); raise FER_MAX_ZIP_MB if it is genuine")
                out.write(chunk)


def _empty(folder: Path) -> None:
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def dataset_root(folder: str | Path) -> Path:
    """The folder that holds the class folders (or train/test): descends through lone wrapper folders.

    A zip made by compressing a folder ``faces/`` holds ``faces/happy/...``; the dataset root is
    then ``faces``. Also finds a ``fer2013.csv`` inside the archive.
    """
    folder = Path(folder)
    for _ in range(5):
        entries = [p for p in folder.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
        dirs = [p for p in entries if p.is_dir()]
        csvs = [p for p in entries if p.is_file() and p.suffix.lower() == ".csv"]
        names = {d.name.lower() for d in dirs}
        if "train" in names or "test" in names or any(label_index(d.name) is not None for d in dirs):
            return folder
        if len(csvs) == 1 and not dirs:
            return csvs[0]
        if len(dirs) == 1 and not csvs:
            folder = dirs[0]
            continue
        break
    raise ValueError(
        "the archive holds no emotion class folders: expected <emotion>/<image> files "
        "(angry, disgust, fear, happy, sad, surprise, neutral) or train/ and test/ folders of them"
    )
