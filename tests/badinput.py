"""A corpus of bad and awkward inputs, generated into a folder (deterministic, nothing committed).

Images (:func:`image_corpus`), datasets (:func:`csv_corpus`, :func:`folder_corpus`,
:func:`zip_corpus`) and model files (:func:`model_corpus`). Every entry says what a correct
program must do with it: ``"error"`` (a clean ``ValueError`` with a message that names the
problem) or ``"ok"`` (a valid result), plus what the message or result must contain.

The images are made from the real photographs in ``tests/data`` (see ``scenes.py``), so "ok"
entries carry a real face where one is expected.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

import scenes
from fer.labels import EMOTIONS
from synth import make_split


@dataclass(frozen=True)
class Case:
    """One corpus entry: a file and what must happen to it.

    ``expect`` is "error" or "ok"; ``message`` a lower-case fragment the error must contain;
    ``faces`` the least number of faces an "ok" image must yield (``max_faces`` the most).
    """

    name: str
    path: Path
    expect: str
    message: str = ""
    faces: int = 0
    max_faces: int | None = None

    @property
    def data(self) -> bytes:
        return self.path.read_bytes()


# ---------------------------------------------------------------- images

BOMB_SIDE = 50_000
HUGE_SIZE = (9600, 7200)  # 69 megapixels: over fer.images.MAX_PIXELS, a real (big) photo


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def portrait_rgb(face_px: int = 160, size: tuple[int, int] = (480, 360)) -> Image.Image:
    """A real face (astronaut) on a real face-free background, as an RGB PIL image."""
    scene = scenes.portrait("astronaut.jpg", face_px, size=size)
    return Image.fromarray(cv2.cvtColor(scene.image, cv2.COLOR_BGR2RGB))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_bomb(side: int = BOMB_SIDE) -> bytes:
    """A valid-looking, ~100-byte PNG whose header declares ``side`` x ``side`` RGB pixels."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024, 9)  # the first rows only: decoding would need side*side*3 bytes
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def exif_rotated_jpeg(img: Image.Image) -> bytes:
    """The picture stored rotated 90 degrees, with EXIF orientation 6 ("rotate 90 CW to view")."""
    stored = img.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise; a viewer turns it back
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(stored, "JPEG", quality=92, exif=exif.tobytes())


def animated_gif(first: Image.Image) -> bytes:
    """Two frames: the face photo first, then noise (the first frame is the one analysed)."""
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (first.height, first.width, 3), np.uint8))
    frames = [first.convert("P", palette=Image.Palette.ADAPTIVE), noise.convert("P", palette=Image.Palette.ADAPTIVE)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)
    return buf.getvalue()


def rgba_png(img: Image.Image) -> bytes:
    """The photo with an alpha channel: opaque in the middle, fully transparent at the edges."""
    alpha = np.zeros((img.height, img.width), np.uint8)
    alpha[img.height // 8 : -img.height // 8, img.width // 8 : -img.width // 8] = 255
    rgba = img.convert("RGBA")
    rgba.putalpha(Image.fromarray(alpha))
    return _encode(rgba, "PNG")


def gray16_png(img: Image.Image) -> bytes:
    gray = np.asarray(img.convert("L"), np.uint16) * 257
    return _encode(Image.fromarray(gray), "PNG")


def huge_jpeg(size: tuple[int, int] = HUGE_SIZE) -> bytes:
    """A big real photo (the face portrait upscaled), over the decoder's pixel budget."""
    return _encode(portrait_rgb(160).resize(size, Image.Resampling.BILINEAR), "JPEG", quality=75)


def crowd(n: int = 30) -> tuple[np.ndarray, int]:
    """A 1280x960 group photo of ``n`` real faces (6 rows of 5, about 100 px each), BGR."""
    scene = scenes.grid(100, 5, n // 5, size=(1280, 960))
    return scene.image, len(scene.boxes)


def image_corpus(folder: Path, huge: bool = True) -> list[Case]:
    """Write every bad or awkward image into ``folder``; return the cases."""
    folder.mkdir(parents=True, exist_ok=True)
    photo = portrait_rgb()
    jpeg, png = _encode(photo, "JPEG", quality=90), _encode(photo, "PNG")
    entries: list[tuple[str, bytes, str, str, int, int | None]] = [
        ("not_an_image.jpg", b"Hello! This is a text file, not a photo.\n" * 20, "error", "not an image", 0, None),
        ("zero_bytes.png", b"", "error", "empty", 0, None),
        ("truncated.jpg", jpeg[: len(jpeg) // 2], "error", "truncated", 0, None),
        ("truncated.png", png[: len(png) // 2], "error", "truncated", 0, None),
        ("header_only.png", png[:33], "error", "truncated", 0, None),
        ("bomb.png", png_bomb(), "error", "pixels", 0, None),
        ("animated.gif", animated_gif(photo), "ok", "", 1, 1),
        ("cmyk.jpg", _encode(photo.convert("CMYK"), "JPEG", quality=90), "ok", "", 1, 1),
        ("gray16.png", gray16_png(photo), "ok", "", 1, 1),
        ("rgba.png", rgba_png(photo), "ok", "", 1, 1),
        ("palette.png", _encode(photo.convert("P", palette=Image.Palette.ADAPTIVE), "PNG"), "ok", "", 1, 1),
        ("exif_rotated.jpg", exif_rotated_jpeg(photo), "ok", "", 1, 1),
        ("one_pixel.png", _encode(Image.new("RGB", (1, 1), (200, 100, 50)), "PNG"), "ok", "", 0, 0),
        ("no_face.jpg", (scenes.DATA / "coffee.jpg").read_bytes(), "ok", "", 0, 0),
        ("png_named.jpg", png, "ok", "", 1, 1),
    ]
    crowd_bgr, n = crowd()
    entries.append(("crowd_30.jpg", cv2.imencode(".jpg", crowd_bgr, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes(),
                    "ok", "", int(0.8 * n), n + 2))
    if huge:
        entries.append(("huge.jpg", huge_jpeg(), "ok", "", 1, 1))
    cases = []
    for name, data, expect, message, faces, max_faces in entries:
        path = folder / name
        path.write_bytes(data)
        cases.append(Case(name, path, expect, message, faces, max_faces))
    return cases


def by_name(cases: list[Case]) -> dict[str, Case]:
    return {c.name: c for c in cases}


# ---------------------------------------------------------------- datasets

def good_rows(n_per_class: int = 2, seed: int = 7) -> list[str]:
    x, y = make_split(n_per_class, seed)
    return [f"{int(label)},{' '.join(map(str, img.reshape(-1).tolist()))},Training" for img, label in zip(x, y)]


def csv_corpus(folder: Path) -> list[Case]:
    """CSV files: bad headers and bad rows (good rows mixed in where the rows are what is wrong)."""
    folder.mkdir(parents=True, exist_ok=True)
    good = good_rows()
    pixels = good[0].split(",")[1]
    entries = [
        ("missing_pixels_column.csv", "emotion,Usage\n0,Training\n", "error", "lacks column"),
        ("no_header.csv", "\n".join(good) + "\n", "error", "lacks column"),
        ("zero_bytes.csv", "", "error", "lacks column"),
        ("header_only.csv", "emotion,pixels,Usage\n", "error", "no usable images"),
        ("wrong_pixel_count.csv", _rows(good, [f"3,{' '.join(['1'] * 100)},Training"]), "ok", "skipped 1"),
        ("non_numeric_pixels.csv", _rows(good, [f"3,{pixels.replace('1', 'x', 3)},Training",
                                                f"4,{pixels.rsplit(' ', 1)[0]} 300,Training"]), "ok", "skipped 2"),
        ("unknown_label.csv", _rows(good, [f"9,{pixels},Training"]), "error", "unknown emotion '9'"),
        ("word_label.csv", _rows(good, [f"contempt,{pixels},Training"]), "error", "unknown emotion 'contempt'"),
        ("binary_garbage.csv", None, "error", "lacks column"),
    ]
    cases = []
    for name, text, expect, message in entries:
        path = folder / name
        if text is None:
            path.write_bytes(bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8)))
        else:
            path.write_text(text)
        cases.append(Case(name, path, expect, message))
    return cases


def _rows(good: list[str], bad: list[str]) -> str:
    return "emotion,pixels,Usage\n" + "\n".join([*good[:5], *bad, *good[5:]]) + "\n"


def _faces_into(folder: Path, label: int, n: int, seed: int) -> None:
    x, _ = make_split(n, seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(x[label * n : (label + 1) * n]):
        Image.fromarray(img).save(folder / f"{i:03d}.png")


def folder_corpus(root: Path) -> list[Case]:
    """Class-folder trees: unknown class names, empty classes, non-image and broken image files."""
    cases = []
    unknown = root / "unknown_class"
    _faces_into(unknown / "happy", 3, 3, 1)
    _faces_into(unknown / "contempt", 0, 3, 1)
    cases.append(Case("unknown_class", unknown, "error", "unknown class folder(s) 'contempt'"))

    empty = root / "empty_classes"
    _faces_into(empty / "happy", 3, 3, 1)
    _faces_into(empty / "sad", 4, 3, 1)
    for name in ("angry", "fear", "neutral"):
        (empty / name).mkdir(parents=True)
    cases.append(Case("empty_classes", empty, "ok", ""))

    mixed = root / "non_image_files"
    _faces_into(mixed / "happy", 3, 3, 1)
    _faces_into(mixed / "sad", 4, 3, 1)
    (mixed / "happy" / "notes.txt").write_text("not a face")
    (mixed / "sad" / "Thumbs.db").write_bytes(b"\x00" * 64)
    (mixed / "sad" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    (mixed / "happy" / "bomb.png").write_bytes(png_bomb())
    (mixed / "README.md").write_text("a file beside the class folders")
    cases.append(Case("non_image_files", mixed, "ok", "ignored 2 non-image"))

    nothing = root / "all_empty"
    for name in ("happy", "sad"):
        (nothing / name).mkdir(parents=True)
    cases.append(Case("all_empty", nothing, "error", "no image files found"))
    return cases


def zip_corpus(folder: Path) -> list[Case]:
    """Zips: zip-slip paths, a zip bomb (declared and lying sizes), a symlink, a non-zip, a truncated zip."""
    folder.mkdir(parents=True, exist_ok=True)
    ok_png = _encode(Image.fromarray(make_split(1, 0)[0][0]), "PNG")
    entries = [
        ("slip_dotdot.zip", _zip({"happy/a.png": ok_png, "../../escape.txt": b"x"}), "error", "escapes"),
        ("slip_absolute.zip", _zip({"happy/a.png": ok_png, "/tmp/evil.txt": b"x"}), "error", "escapes"),
        ("slip_backslash.zip", _zip({"happy/a.png": ok_png, "..\\..\\evil.txt": b"x"}), "error", "escapes"),
        ("slip_drive.zip", _zip({"C:/Windows/evil.txt": b"x"}), "error", "escapes"),
        ("symlink.zip", _symlink_zip(), "error", "symbolic link"),
        ("bomb.zip", _zip({"happy/zeros.png": b"\x00" * (8 << 20)}), "error", "zip bomb"),
        ("bomb_lying.zip", _lying_zip(8 << 20), "error", "zip"),
        ("not_a_zip.zip", b"PK but not really a zip archive", "error", "not a readable zip"),
        ("truncated.zip", _zip({f"happy/{i}.png": ok_png for i in range(5)})[:-40], "error", "not a readable zip"),
        ("no_classes.zip", _zip({"photos/a.png": ok_png, "photos/b.png": ok_png}), "error", "no emotion class folders"),
    ]
    cases = []
    for name, data, expect, message in entries:
        path = folder / name
        path.write_bytes(data)
        cases.append(Case(name, path, expect, message))
    return cases


ZIP_LIMIT = 4 << 20
"""The unpacked-size limit the zip cases are meant for (the bombs inflate to 8 MB)."""


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buf.getvalue()


def _symlink_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("happy/link.png")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def _lying_zip(real_size: int) -> bytes:
    """A deflated member whose headers declare 1 KB but which inflates to ``real_size`` bytes."""
    data = _zip({"happy/zeros.png": b"\x00" * real_size})
    small = struct.pack("<I", 1024)
    out = bytearray(data)
    # local header: uncompressed size at offset 22; central directory entry: at offset 24
    struct.pack_into("<I", out, 22, 1024)
    central = out.rfind(b"PK\x01\x02")
    out[central + 24 : central + 28] = small
    return bytes(out)


# ---------------------------------------------------------------- models

def model_corpus(folder: Path, good_model: Path) -> list[Case]:
    """Broken model files, each beside (or without) a card; ``good_model`` is a real .keras with card."""
    from fer.modelfile import card_path

    folder.mkdir(parents=True, exist_ok=True)
    raw, card = good_model.read_bytes(), json.loads(card_path(good_model).read_text())
    wrong_shape = {**card, "input_shape": [64, 64, 1]}
    five_labels = {**card, "labels": list(EMOTIONS)[:5]}
    entries = [
        ("truncated.keras", raw[: len(raw) // 2], card, "error", "not a valid .keras archive"),
        ("truncated_tail.keras", raw[:-200], card, "error", "not a valid .keras archive"),
        ("zero_bytes.keras", b"", card, "error", "not a valid .keras archive"),
        ("text.keras", b"not a model\n", card, "error", "not a valid .keras archive"),
        ("bit_flips.keras", _flip_middle(raw), card, "error", "is damaged"),
        ("other_zip.keras", _zip({"hello.txt": b"hi"}), card, "error", "could not load model"),
        ("missing_card.keras", raw, None, "error", "card"),
        ("card_wrong_shape.keras", raw, wrong_shape, "error", "its card says [64, 64, 1]"),
        ("card_wrong_labels.keras", raw, five_labels, "error", "has labels"),
        ("card_wrong_arch.keras", raw, {**card, "architecture": "seed"}, "error", "its card says 'seed'"),
        ("card_not_json.keras", raw, "{broken", "error", "not valid json"),
        ("card_a_list.keras", raw, [1, 2, 3], "error", "card"),
        ("card_no_architecture.keras", raw, {"labels": list(EMOTIONS)}, "error", "no 'architecture'"),
        ("card_labels_a_number.keras", raw, {**card, "labels": 7}, "error", "labels"),
        ("card_bad_shape_type.keras", raw, {**card, "input_shape": "48x48"}, "error", "input_shape"),
    ]
    cases = []
    for name, data, card_doc, expect, message in entries:
        path = folder / name
        path.write_bytes(data)
        if card_doc is not None:
            text = card_doc if isinstance(card_doc, str) else json.dumps(card_doc)
            card_path(path).write_text(text)
        cases.append(Case(name, path, expect, message))
    return cases


def _flip_middle(raw: bytes) -> bytes:
    """The weights damaged in the middle of the archive (the zip directory still reads)."""
    out = bytearray(raw)
    for i in range(len(out) // 3, len(out) // 3 + 2000, 7):
        out[i] ^= 0xFF
    return bytes(out)
