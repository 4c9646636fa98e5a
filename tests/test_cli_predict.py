"""``python -m fer predict`` and ``python -m fer video`` on real photos and a real video file."""

from __future__ import annotations

import csv
import json

import cv2
import pytest

import scenes
from fer.cli import main
from fer.labels import EMOTIONS


def test_predict_json_with_an_unreadable_input_in_the_middle(model_path, tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    files = [str(scenes.DATA / "astronaut.jpg"), str(bad), str(scenes.DATA / "coffee.jpg"),
             str(tmp_path / "missing.png")]
    out_dir = tmp_path / "annotated"
    code = main(["predict", *files, "--model", str(model_path), "--json", "--out", str(out_dir)])
    captured = capsys.readouterr()
    assert code == 2
    entries = json.loads(captured.out)
    assert [e["file"] for e in entries] == files
    face = entries[0]["faces"][0]
    assert scenes.iou(tuple(face["box"]), scenes.FACES["astronaut.jpg"]) >= 0.5
    assert set(face) >= {"box", "emotion", "score", "scores"} and list(face["scores"]) == list(EMOTIONS)
    assert face["emotion"] in EMOTIONS and 0 < face["score"] <= 1
    assert entries[2]["faces"] == []
    for e in (entries[1], entries[3]):
        assert set(e) == {"file", "error"} and "\n" not in e["error"] and e["error"]
    assert "Traceback" not in captured.err and "2 of 4" in captured.err
    written = sorted(p.name for p in out_dir.iterdir())
    assert written == ["astronaut.png", "coffee.png"]
    assert cv2.imread(str(out_dir / "astronaut.png")).shape == (512, 512, 3)


def test_predict_plain_text_and_exit_zero(model_path, capsys):
    code = main(["predict", str(scenes.DATA / "grace_hopper.jpg"), "--model", str(model_path)])
    out = capsys.readouterr().out
    assert code == 0 and "grace_hopper.jpg: 1 face(s): " in out


def test_predict_profiles_and_tta(model_path, capsys):
    """photo (the default) averages each face with its mirror; live and --tta none take one pass."""
    from fer.inference import EmotionRecognizer
    from fer.modelfile import load_model

    image = str(scenes.DATA / "astronaut.jpg")
    scores = []
    for extra in ([], ["--profile", "live"], ["--profile", "live", "--tta"], ["--tta", "none"]):
        assert main(["predict", image, "--model", str(model_path), "--json", *extra]) == 0
        scores.append(json.loads(capsys.readouterr().out)[0]["faces"][0]["scores"])
    (r,) = EmotionRecognizer(load_model(model_path), input_size=640, tta="flip").analyze_file(image)
    assert scores[0] == pytest.approx(r.scores, abs=1e-4) and scores[0] != pytest.approx(scores[1], abs=1e-4)
    assert scores[2] == pytest.approx(scores[0], abs=1e-4) and scores[3] == pytest.approx(scores[1], abs=1e-4)


def test_predict_with_a_bad_model_is_a_one_line_error(tmp_path, capsys):
    code = main(["predict", str(scenes.DATA / "astronaut.jpg"), "--model", str(tmp_path / "nope.keras")])
    assert code == 2 and capsys.readouterr().err.startswith("error: model file")


def test_predict_finds_the_small_faces_of_a_big_photo_unless_told_one_pass(model_path, tmp_path, capsys):
    scene = scenes.grid(60, 5, 2, size=(3000, 2000))  # 60 px faces: 13 px at the first pass's 640
    photo = tmp_path / "group.jpg"
    cv2.imwrite(str(photo), scene.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    found = []
    for extra in ([], ["--min-face", "0"]):
        assert main(["predict", str(photo), "--model", str(model_path), "--profile", "live", "--json", *extra]) == 0
        found.append(scenes.match([tuple(f["box"]) for f in json.loads(capsys.readouterr().out)[0]["faces"]],
                                  scene.boxes))
    assert found[0] == (10, 0) and found[1][0] < 5
    assert main(["predict", str(photo), "--model", str(model_path), "--min-face", "3"]) == 2
    assert capsys.readouterr().err.startswith("error: min_face=3 must be 0 (one pass) or at least 8")


def make_video(path, frames: int = 8, size=(320, 240)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, size)
    assert writer.isOpened()
    for i in range(frames):
        canvas = scenes.background(size)
        scenes.paste(canvas, "grace_hopper.jpg", (100 + 10 * i, 120), 70)
        if i >= 4:
            scenes.paste(canvas, "astronaut.jpg", (260, 110), 50)
        writer.write(canvas)
    writer.release()


def test_video_writes_annotated_mp4_and_timeline(model_path, tmp_path, capsys):
    src, out, timeline = tmp_path / "in.mp4", tmp_path / "out" / "annotated.mp4", tmp_path / "t.csv"
    make_video(src)
    code = main(["video", str(src), "--out", str(out), "--csv", str(timeline), "--model", str(model_path)])
    assert code == 0 and "8 frames" in capsys.readouterr().out
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 8 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 320
    cap.release()
    with open(timeline, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["frame", "time_s", "track_id", "x", "y", "w", "h", "emotion", "score", *EMOTIONS]
    per_frame = [sum(r["frame"] == str(i) for r in rows) for i in range(8)]
    assert per_frame == [1, 1, 1, 1, 2, 2, 2, 2]
    first = {r["track_id"] for r in rows if int(r["x"]) < 200}
    assert first == {"1"}  # the moving face keeps its id
    assert {r["track_id"] for r in rows if int(r["x"]) >= 200} == {"2"}
    assert float(rows[-1]["time_s"]) == pytest.approx(0.7)
    assert all(abs(sum(float(r[e]) for e in EMOTIONS) - 1) < 1e-3 for r in rows)


def test_video_errors(tmp_path):
    with pytest.raises(ValueError, match="nothing to write"):
        main_args(["video", "x.mp4"])
    with pytest.raises(ValueError, match="cannot open video"):
        main_args(["video", str(tmp_path / "missing.mp4"), "--csv", str(tmp_path / "t.csv")])


def main_args(argv):
    from fer.cli import build_parser

    args = build_parser().parse_args(argv)
    return args.handler(args)
