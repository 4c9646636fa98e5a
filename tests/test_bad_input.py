"""The bad-input corpus (tests/badinput.py) against every entry point: the ``fer`` API, ``python -m fer
predict``, dataset loading (csv, folders, zip uploads), model loading and the Analyze page.

Every bad entry must give a clean one-line ``ValueError`` (or an error entry / st.error) that names
the problem; every awkward-but-valid entry must give a valid result; nothing may crash or leak.
"""

from __future__ import annotations

import json
import time
import warnings

import numpy as np
import pytest

import badinput
import scenes
from fer.cli import main
from fer.data import DataWarning, load_dataset
from fer.images import load_bgr, load_bgr_scaled
from fer.labels import EMOTIONS


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return badinput.image_corpus(tmp_path_factory.mktemp("bad_images"))


def clean_message(exc: BaseException) -> str:
    """The message, checked to be one readable line (no object reprs, no traceback text)."""
    text = str(exc)
    assert text and "\n" not in text and "object at 0x" not in text and "Traceback" not in text, text
    return text.lower()


def check_results(results, shape) -> None:
    h, w = shape[:2]
    for r in results:
        x, y, bw, bh = r.box
        assert 0 <= x and 0 <= y and bw > 0 and bh > 0 and x + bw <= w and y + bh <= h, (r.box, shape)
        assert list(r.scores) == list(EMOTIONS) and abs(sum(r.scores.values()) - 1) < 1e-3
        assert r.emotion == max(r.scores, key=r.scores.get) and r.crop.shape == (48, 48)


# ---------------------------------------------------------------- images: the fer API


def test_every_image_through_the_api(images, recognizer):
    for case in images:
        if case.expect == "error":
            for source in (case.path, case.data):
                with pytest.raises(ValueError) as err:
                    recognizer.analyze_file(source)
                assert case.message in clean_message(err.value), (case.name, str(err.value))
            continue
        image = load_bgr(case.path)
        results = recognizer.analyze(image)
        check_results(results, image.shape)
        top = case.max_faces if case.max_faces is not None else case.faces
        assert case.faces <= len(results) <= top, (case.name, len(results))


def test_awkward_encodings_find_the_same_face(images, recognizer):
    """CMYK, 16-bit, RGBA, palette, EXIF-rotated, animated and mis-named files: the upright photo's face."""
    cases = badinput.by_name(images)
    truth = scenes.portrait("astronaut.jpg", 160, size=(480, 360)).boxes[0]
    for name in ("cmyk.jpg", "gray16.png", "rgba.png", "palette.png", "exif_rotated.jpg", "animated.gif",
                 "png_named.jpg"):
        image = load_bgr(cases[name].path)
        assert image.shape == (360, 480, 3), name  # EXIF rotation applied: upright, landscape
        (face,) = recognizer.analyze(image)
        assert scenes.iou(face.box, truth) >= 0.5, (name, face.box, truth)


def test_bomb_is_refused_before_decoding(images):
    bomb = badinput.by_name(images)["bomb.png"]
    assert bomb.path.stat().st_size < 200  # tiny file, 50000x50000 declared
    start = time.perf_counter()
    with pytest.raises(ValueError, match="refused before decoding"):
        load_bgr(bomb.data)
    assert time.perf_counter() - start < 0.5  # decoding 7.5 GB of pixels would take far longer
    from fer.images import open_image

    with pytest.raises(ValueError, match="1000x1000 pixels, more than the 100,000 allowed"):
        open_image(badinput._encode(badinput.Image.new("L", (1000, 1000)), "PNG"), max_pixels=100_000)


def test_huge_jpeg_is_decoded_downscaled_and_boxes_map_back(images, recognizer, model_path, capsys):
    huge = badinput.by_name(images)["huge.jpg"]
    image, scale = load_bgr_scaled(huge.path)
    assert scale == 2.0 and image.shape == (3600, 4800, 3)
    factor = badinput.HUGE_SIZE[0] / 480
    truth = tuple(round(v * factor) for v in scenes.portrait("astronaut.jpg", 160, size=(480, 360)).boxes[0])
    code = main(["predict", str(huge.path), "--model", str(model_path), "--json"])
    (entry,) = json.loads(capsys.readouterr().out)
    assert code == 0 and entry["downscaled_by"] == 2.0
    assert scenes.iou(tuple(entry["faces"][0]["box"]), truth) >= 0.5  # in the original 9600x7200 pixels


def test_thirty_faces(images, recognizer):
    crowd, n = badinput.crowd()
    truth = scenes.grid(100, 5, 6, size=(1280, 960)).boxes
    results = recognizer.analyze(load_bgr(badinput.by_name(images)["crowd_30.jpg"].path))
    found, false_pos = scenes.match([r.box for r in results], truth)
    assert n == 30 and found >= 24 and false_pos <= 2, (found, false_pos)
    check_results(results, crowd.shape)
    assert len({r.emotion for r in results}) >= 1 and all(0 < r.score <= 1 for r in results)


# ---------------------------------------------------------------- images: the command line


def test_cli_predict_on_the_whole_corpus(images, model_path, capsys):
    """One run over every file: the good ones are processed, each bad one is reported, exit status 2."""
    files = [str(c.path) for c in images]
    code = main(["predict", *files, "--model", str(model_path), "--json"])
    captured = capsys.readouterr()
    entries = json.loads(captured.out)
    assert code == 2 and [e["file"] for e in entries] == files
    for case, entry in zip(images, entries):
        if case.expect == "error":
            assert set(entry) == {"file", "error"} and case.message in clean_message(entry["error"]), entry
        else:
            assert "error" not in entry and case.faces <= len(entry["faces"]), (case.name, entry)
    bad = sum(c.expect == "error" for c in images)
    assert "Traceback" not in captured.err and f"{bad} of {len(files)} input(s)" in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def test_cli_predict_one_bad_file_is_one_line_and_exit_2(images, model_path, capsys):
    for name in ("not_an_image.jpg", "zero_bytes.png", "bomb.png"):
        case = badinput.by_name(images)[name]
        code = main(["predict", str(case.path), "--model", str(model_path)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.startswith(f"error: {case.path}: ") and "\n" not in err, err
    code = main(["predict", str(images[0].path.parent / "missing.jpg"), "--model", str(model_path)])
    assert code == 2 and "does not exist" in capsys.readouterr().err


# ---------------------------------------------------------------- datasets


def load_quietly(path, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_dataset(path, use_cache=False, **kw)
    return data, " ".join(str(w.message) for w in caught if issubclass(w.category, DataWarning))


def test_bad_csv_files(tmp_path):
    for case in badinput.csv_corpus(tmp_path):
        if case.expect == "error":
            with pytest.raises(ValueError) as err:
                load_dataset(case.path, use_cache=False)
            assert case.message in clean_message(err.value) and len(str(err.value)) < 400, (case.name, err.value)
            continue
        data, said = load_quietly(case.path)
        assert len(data.split("train")) == 14 and case.message in said, (case.name, said)
        assert "line 7: " in said  # which row, and why
    data, _ = load_quietly(tmp_path / "unknown_label.csv", skip_unknown=True)
    assert len(data.split("train")) == 14


def test_bad_class_folders(tmp_path):
    for case in badinput.folder_corpus(tmp_path):
        if case.expect == "error":
            with pytest.raises(ValueError) as err:
                load_dataset(case.path, use_cache=False)
            assert case.message in clean_message(err.value), (case.name, err.value)
            continue
        data, said = load_quietly(case.path)
        assert data.split("train").class_counts()["happy"] == 3 and data.split("train").class_counts()["sad"] == 3
        assert case.message in said
    _, said = load_quietly(tmp_path / "empty_classes")
    assert "angry, fear, neutral" in said and "hold no images" in said
    _, said = load_quietly(tmp_path / "non_image_files")
    assert "skipped 2" in said and "bomb.png: refused before decoding" in said and "broken.jpg" in said
    data, _ = load_quietly(tmp_path / "unknown_class", skip_unknown=True)
    assert len(data.split("train")) == 3


def test_bad_zip_uploads(tmp_path):
    """Every bad zip through the Train page's upload path: refused, nothing written outside, nothing left."""
    from fer.app_services.jobs import stage_upload

    work = tmp_path / "work"
    for case in badinput.zip_corpus(tmp_path / "zips"):
        with pytest.raises(ValueError) as err:
            stage_upload("zip", case.data, work, max_bytes=badinput.ZIP_LIMIT, max_files=100)
        assert case.message in clean_message(err.value), (case.name, err.value)
        assert not any((work / "uploads").iterdir()), case.name  # the half-extracted folder is gone
    assert not list(tmp_path.rglob("escape.txt")) and not list(tmp_path.rglob("evil.txt"))
    assert not (tmp_path.parent / "escape.txt").exists()


# ---------------------------------------------------------------- models


def test_bad_model_files(tmp_path, model_path):
    from fer.app_services.registry import list_models
    from fer.inference import EmotionRecognizer
    from fer.modelfile import load_model

    cases = badinput.model_corpus(tmp_path, model_path)
    for case in cases:
        with pytest.raises(ValueError) as err:
            load_model(case.path)
        assert case.message in clean_message(err.value), (case.name, err.value)
    with pytest.raises(ValueError, match="not a valid .keras archive"):
        EmotionRecognizer(tmp_path / "truncated.keras")
    entries = {e.name: e for e in list_models(tmp_path, tmp_path / "none.keras")}  # the sidebar's listing
    listed = {c.name.removesuffix(".keras") for c in cases if c.name != "missing_card.keras"}
    assert listed <= set(entries)
    structural = {"truncated", "truncated_tail", "zero_bytes", "text", "bit_flips"}
    assert all(not entries[n].usable and entries[n].error for n in structural)
    assert all("unreadable" in entries[n].label() for n in structural)


def test_cli_with_a_broken_model_is_one_line(tmp_path, model_path, capsys):
    badinput.model_corpus(tmp_path, model_path)
    for name in ("truncated", "card_a_list", "card_wrong_arch"):
        code = main(["predict", str(scenes.DATA / "astronaut.jpg"), "--model", str(tmp_path / f"{name}.keras")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.startswith("error: ") and "\n" not in err, err


# ---------------------------------------------------------------- the Analyze page


def test_analyze_page_with_the_corpus(app_with_model, images):
    """All files in one upload: one st.error per bad file, the good ones analysed and tabulated."""
    from streamlit.testing.v1 import AppTest

    from app_helpers import REPO

    uploads = [(c.name, c.data, "application/octet-stream") for c in images if c.name != "huge.jpg"]
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=180).run()
    at.switch_page("app_pages/analyze.py").run()
    at.file_uploader(key="analyze_uploads").set_value(uploads).run()
    assert not at.exception, [e.message for e in at.exception]
    bad = [c for c in images if c.expect == "error"]
    errors = [e.value for e in at.error]
    assert len(errors) == len(bad) and all("Cannot read this file" in e for e in errors)
    assert all(c.message in e.lower() for c, e in zip(bad, errors)), errors
    table = at.dataframe[0].value
    with_faces = [c.name for c in images if c.expect == "ok" and c.faces and c.name != "huge.jpg"]
    assert set(table["image"]) == set(with_faces)
    assert (table["image"] == "crowd_30.jpg").sum() >= 24
    probs = table[[f"p_{e}" for e in EMOTIONS]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1, atol=0.01)
