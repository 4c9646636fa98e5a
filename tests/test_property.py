"""Property-based tests of the decode -> detect -> classify path: whatever bytes or array come in,
the answer is a clean ``ValueError`` or a valid list of faces, never another exception."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

import scenes
from fer.labels import EMOTIONS

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _small_photo(fmt: str) -> bytes:
    img = Image.open(scenes.DATA / "astronaut.jpg").convert("RGB").resize((96, 96))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


SEEDS = {fmt: _small_photo(fmt) for fmt in ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP")}


def assert_clean(call) -> None:
    """``call()`` returns valid face results or raises a ValueError with a one-line message."""
    try:
        image, results = call()
    except ValueError as exc:
        assert str(exc) and "\n" not in str(exc) and "object at 0x" not in str(exc), str(exc)
        return
    h, w = image.shape[:2]
    for r in results:
        x, y, bw, bh = r.box
        assert 0 <= x <= x + bw <= w and 0 <= y <= y + bh <= h
        probs = np.array([r.scores[e] for e in EMOTIONS])
        assert np.isfinite(probs).all() and abs(probs.sum() - 1) < 1e-3 and r.emotion in EMOTIONS


def _from_bytes(recognizer, data: bytes):
    from fer.images import load_bgr

    image = load_bgr(data)
    return image, recognizer.analyze(image)


@SETTINGS
@given(data=st.binary(max_size=4096))
def test_random_bytes(recognizer, data):
    assert_clean(lambda: _from_bytes(recognizer, data))


@st.composite
def damaged_image(draw) -> bytes:
    """A real small photo in some format with bytes flipped, cut off, or inserted."""
    raw = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(st.integers(0, len(raw) - 1))
        kind = draw(st.sampled_from(["flip", "cut", "insert"]))
        if kind == "flip":
            raw[pos] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del raw[pos:]
            if not raw:
                break
        else:
            raw[pos:pos] = draw(st.binary(min_size=1, max_size=16))
    return bytes(raw)


@SETTINGS
@given(data=damaged_image())
def test_damaged_real_images(recognizer, data):
    assert_clean(lambda: _from_bytes(recognizer, data))


DTYPES = st.sampled_from([np.uint8, np.uint16, np.int8, np.int32, np.int64, np.float16, np.float32, np.float64,
                          np.bool_, np.complex64])


@st.composite
def any_array(draw) -> np.ndarray:
    """Arrays of any dtype and of plausible and implausible shapes (1x1, thin strips, 2 or 5 channels)."""
    h, w = draw(st.integers(0, 80)), draw(st.integers(0, 80))
    channels = draw(st.sampled_from([None, 1, 2, 3, 4, 5]))
    shape = (h, w) if channels is None else (h, w, channels)
    if draw(st.booleans()) and h * w:
        shape = draw(st.sampled_from([(h,), (h, w, 3, 1), (1, 1)]))
    return draw(hnp.arrays(draw(DTYPES), shape))


@SETTINGS
@given(array=any_array(), channels=st.sampled_from(["bgr", "rgb"]))
def test_random_arrays(recognizer, array, channels):
    assert_clean(lambda: (np.asarray(array), recognizer.analyze(array, channels=channels)))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_arrays_are_refused(recognizer, value):
    image = np.full((32, 32, 3), value, np.float32)
    with pytest.raises(ValueError, match="NaN or infinite"):
        recognizer.analyze(image)
