"""Annotated pictures: boxes and labels in each emotion's colour, at any image size."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fer
from fer.draw import EMOTION_COLORS, draw, hex_to_bgr
from fer.labels import EMOTIONS
from test_inference import HAPPY, SAD, fake_result


def _tracked(result, track_id):
    from dataclasses import replace

    return replace(result, track_id=track_id)


def test_colours_cover_every_emotion_in_order_and_are_distinct():
    assert tuple(EMOTION_COLORS) == EMOTIONS
    assert all(re.fullmatch(r"#[0-9A-F]{6}", c) for c in EMOTION_COLORS.values())
    assert len(set(EMOTION_COLORS.values())) == len(EMOTIONS)
    assert hex_to_bgr("#102030") == (0x30, 0x20, 0x10)
    with pytest.raises(ValueError, match="#RRGGBB"):
        hex_to_bgr("red")


def test_draw_returns_an_annotated_copy_with_box_in_the_emotion_colour():
    image = np.full((480, 640, 3), 60, np.uint8)
    results = [fake_result((100, 150, 120, 140), HAPPY), fake_result((400, 150, 100, 100), SAD)]
    out = draw(image, results)
    assert out.shape == image.shape and out is not image
    assert (image == 60).all()  # the input is untouched
    assert tuple(out[220, 100]) == hex_to_bgr(EMOTION_COLORS["happy"])  # left edge of the first box
    assert tuple(out[200, 400]) == hex_to_bgr(EMOTION_COLORS["sad"])
    label = out[150 - 30 : 150, 100:220]  # label bar above the first box
    assert (np.all(label == hex_to_bgr(EMOTION_COLORS["happy"]), axis=-1)).mean() > 0.3
    assert (label.sum(-1) < 100).any()  # dark text on the yellow bar


@pytest.mark.parametrize("shape", [(48, 48), (60, 300, 3), (2160, 3840, 4)])
def test_any_image_size_and_labels_stay_inside(shape):
    h, w = shape[:2]
    image = np.full(shape, 200, np.uint8)
    box = (0, 0, w // 2, h // 2)  # at the top edge: the label goes inside/below
    out = draw(image, [fake_result(box, SAD)])
    assert out.shape == (h, w, 3)
    changed = np.argwhere(np.any(out != 200, axis=-1))
    assert len(changed) > 0 and changed[:, 0].max() < h and changed[:, 1].max() < w


def test_labels_scale_with_the_image():
    small = draw(np.zeros((240, 320, 3), np.uint8), [fake_result((50, 100, 60, 60), HAPPY)])
    big = draw(np.zeros((1920, 2560, 3), np.uint8), [fake_result((400, 800, 480, 480), HAPPY)])
    def label_rows(img):
        colour = np.all(img == hex_to_bgr(EMOTION_COLORS["happy"]), axis=-1)
        return colour.sum(1)
    assert (label_rows(big) > 0).sum() > 4 * (label_rows(small) > 0).sum() / 2


def test_rgb_in_rgb_out_and_tracked_label():
    rgb = np.zeros((100, 200, 3), np.uint8)
    plain = fake_result((60, 40, 50, 50), HAPPY)
    out = draw(rgb, [plain], channels="rgb")
    b, g, r = hex_to_bgr(EMOTION_COLORS["happy"])
    assert tuple(out[60, 60]) == (r, g, b)
    tracked = draw(rgb, [_tracked(plain, 7)], channels="rgb")
    bar = lambda img: np.all(img[:40] == (r, g, b), axis=-1).sum()  # noqa: E731  # label bar above the box
    assert bar(tracked) > bar(out)  # "#7 happy 100%" is a longer label


def test_fer_draw_is_callable_and_has_colours_in_any_import_order():
    code = ("import numpy as np, fer\n"
            "f = fer.draw\n"
            "assert f.EMOTION_COLORS['happy']\n"
            "import fer.draw\n"
            "img = np.zeros((50, 50, 3), np.uint8)\n"
            "assert fer.draw(img, []).shape == (50, 50, 3)\n"
            "assert fer.draw.EMOTION_COLORS is f.EMOTION_COLORS\n"
            "import fer.inference, fer.faces, fer.cli_predict, fer.detectors\n"
            "import sys; heavy = {'tensorflow', 'keras', 'onnxruntime', 'onnx', 'streamlit'} & set(sys.modules)\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(Path(fer.__file__).parent.parent))
