"""Decoding image files and arrays into the model's input form (48x48 uint8 grayscale)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

FACE_SIZE = 48
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
MAX_PIXELS = 40_000_000
"""Images declaring more pixels than this are refused before decoding (decompression bombs)."""
MAX_FILE_BYTES = 512_000_000
"""Image files bigger than this are refused unread."""


def open_image(source: str | Path | bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open an image file or bytes, refusing bombs, with EXIF orientation applied and pixels loaded.

    Only the first frame of an animation is read. A JPEG bigger than ``max_pixels`` is decoded at
    1/2, 1/4 or 1/8 of its size (the decoder scales it for free) and ``img.info["fer_scale"]`` holds
    the factor (original / decoded side); any other image that big is refused before decoding.
    Every failure is a ``ValueError`` that says what is wrong with the file.
    """
    if not isinstance(source, (str, Path, bytes, bytearray)):
        raise TypeError(f"image source must be a path or bytes, not {type(source).__name__}")
    if isinstance(source, (bytes, bytearray)) and not source:
        raise ValueError("the file is empty (0 bytes)")
    # read files whole: PIL would keep them open (animations) or leak the handle on a decoding error
    data = source if isinstance(source, (bytes, bytearray)) else _read_file(Path(source))
    fp = io.BytesIO(data)
    try:
        img = Image.open(fp)
        scale = _reduce_on_decode(img, max_pixels)
        img.seek(0)  # first frame of animations
        img = ImageOps.exif_transpose(img)
        img.load()
    except UnidentifiedImageError:
        raise ValueError(_unidentified(data)) from None
    except Image.DecompressionBombError as exc:
        why = str(exc).split(", could be")[0]
        raise ValueError(f"refused before decoding, a decompression bomb? ({why})") from None
    except (OSError, SyntaxError, EOFError, struct.error, IndexError, TypeError, ZeroDivisionError) as exc:
        # PIL's decoders raise all of these on damaged data
        raise ValueError(f"the image is truncated or corrupt ({type(exc).__name__}: {exc})") from None
    img.info["fer_scale"] = scale
    return img


_FORMATS = "JPEG, PNG, WebP, BMP, TIFF or GIF"
_MAGIC = {b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG", b"GIF8": "GIF", b"BM": "BMP", b"II*\x00": "TIFF",
          b"MM\x00*": "TIFF", b"RIFF": "WebP"}


def _unidentified(source: bytes) -> str:
    """The message for a file PIL does not recognise: truncated (it starts like an image) or not an image."""
    head = bytes(source[:8])
    kind = next((name for magic, name in _MAGIC.items() if head.startswith(magic)), None)
    if kind is not None:
        return f"the file starts like a {kind} image but is truncated or corrupt"
    return f"not an image: the format is not recognised; give a {_FORMATS} file"


def _read_file(path: Path) -> bytes:
    if not path.exists():
        raise ValueError(f"image file {path} does not exist")
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"image file {path} is {path.stat().st_size / 1e6:,.0f} MB, more than the "
                         f"{MAX_FILE_BYTES / 1e6:,.0f} MB accepted; downscale or recompress it first")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read image file {path}: {exc.strerror or exc}") from None
    if not data:
        raise ValueError(f"image file {path} is empty (0 bytes)")
    return data


def _reduce_on_decode(img: Image.Image, max_pixels: int) -> float:
    """Have a too-big JPEG decoded at a power-of-two fraction of its size; refuse other too-big images."""
    w, h = img.size
    if w * h <= max_pixels:
        return 1.0
    if img.format == "JPEG":
        for factor in (2, 4, 8):
            size = (-(-w // factor), -(-h // factor))
            if size[0] * size[1] <= max_pixels:
                img.draft(img.mode, size)
                return w / img.size[0]
    raise ValueError(f"image is {w}x{h} pixels, more than the {max_pixels:,} allowed (refused before decoding); "
                     "downscale it first")


def pil_to_gray(img: Image.Image) -> np.ndarray:
    """Convert any PIL mode (RGB, RGBA, palette, CMYK, 16-bit, float) to a uint8 gray array."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img).astype(np.float64)
        top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        return np.clip(arr * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
    if img.mode == "F":
        return np.clip(np.asarray(img), 0, 255).astype(np.uint8)
    return np.asarray(_on_white(img).convert("L"), dtype=np.uint8)


def _on_white(img: Image.Image) -> Image.Image:
    """Composite an image with transparency onto white; other images pass through."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return img


def to_face_array(gray: np.ndarray, size: int = FACE_SIZE) -> np.ndarray:
    """Centre-crop a gray array to a square and resize it to ``size`` x ``size`` uint8."""
    import cv2

    h, w = gray.shape[:2]
    side = min(h, w)
    if side == 0:
        raise ValueError("image has zero width or height")
    top, left = (h - side) // 2, (w - side) // 2
    square = gray[top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(square, dtype=np.uint8)
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(square, (size, size), interpolation=interp).astype(np.uint8)


def load_face_file(path: str | Path) -> np.ndarray:
    """Read a face-crop image file of any size/mode into a 48x48 uint8 gray array."""
    return to_face_array(pil_to_gray(open_image(path)))


# ---------------------------------------------------------------- full images for face detection

def pil_to_bgr(img: Image.Image) -> np.ndarray:
    """Convert any PIL mode to a uint8 BGR array (h, w, 3); transparency is composited on white."""
    import cv2

    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F", "L", "1"):
        return cv2.cvtColor(pil_to_gray(img), cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(np.asarray(_on_white(img).convert("RGB"), dtype=np.uint8)[..., ::-1])


def load_bgr(source: str | Path | bytes) -> np.ndarray:
    """Read an image file or bytes into a uint8 BGR array, EXIF orientation applied (bombs refused).

    A JPEG over :data:`MAX_PIXELS` comes back downscaled (see :func:`load_bgr_scaled`).
    """
    return load_bgr_scaled(source)[0]


def load_bgr_scaled(source: str | Path | bytes) -> tuple[np.ndarray, float]:
    """:func:`load_bgr` plus the factor (original side / returned side; 1.0 unless a huge JPEG was reduced)."""
    img = open_image(source)
    return pil_to_bgr(img), float(img.info.get("fer_scale", 1.0))


def to_bgr(image: np.ndarray, channels: str = "bgr") -> np.ndarray:
    """Any image array to a contiguous uint8 BGR array (h, w, 3).

    Accepts gray (h, w) or (h, w, 1), colour (h, w, 3) and colour with alpha (h, w, 4), whose
    channel order ``channels`` names ("bgr": OpenCV frames, "rgb": PIL / matplotlib). uint8 is
    used as is, uint16 is scaled from 0..65535, floats are read as 0..1 when their maximum is at
    most 1 (else as 0..255), bool as black/white. Alpha is composited on white.
    """
    import cv2

    if channels not in ("bgr", "rgb"):
        raise ValueError(f"channels={channels!r} is not supported; use 'bgr' (OpenCV frames) or 'rgb' (PIL arrays)")
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ValueError(f"image array has shape {a.shape}; expected (h, w) gray, (h, w, 3) colour "
                         "or (h, w, 4) with alpha")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"image array has shape {a.shape}: zero width or height")
    a = _to_uint8(a)
    if a.ndim == 2:
        return cv2.cvtColor(a, cv2.COLOR_GRAY2BGR)
    if a.shape[2] == 4:
        alpha = a[..., 3:].astype(np.uint16)
        a = ((a[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)
    if channels == "rgb":
        a = a[..., ::-1]
    return np.ascontiguousarray(a)


def _to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if a.dtype == np.uint16:
        return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ValueError("image array has NaN or infinite values; replace them before analysing")
        top = 1.0 if a.max(initial=0) <= 1.0 else 255.0
        return np.clip(a * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        if a.min(initial=0) < 0 or a.max(initial=0) > 255:
            raise ValueError(f"{a.dtype} image values span {a.min()}..{a.max()}; "
                             "give uint8 (0..255) or uint16 (0..65535)")
        return a.astype(np.uint8)
    raise ValueError(f"image array has dtype {a.dtype}; give uint8, uint16, float or bool pixels")
