"""fer.batch and ``python -m fer batch``: Ray Data over real photos, a generated clip and broken files.

One local Ray (2 CPUs) for the module; skipped where Ray is not installed (requirements-scale.txt),
except the test that the command then says how to install it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fer.batch import COLUMNS, BatchOptions, list_inputs, parts_dir, read_manifest, read_table, run_batch
from fer.labels import EMOTIONS
from fer.video import write_video

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
OPTS = BatchOptions(profile="live", every_nth_frame=5)


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    from fer.batch import init_ray

    init_ray(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """Three photos (one in a sub-folder), a damaged one, a text file that is no image, a 20-frame clip."""
    from test_video import clip_frames

    root = tmp_path_factory.mktemp("inputs")
    (root / "sub").mkdir()
    for name in ("grace_hopper.jpg", "astronaut.jpg"):
        (root / name).write_bytes((DATA / name).read_bytes())
    (root / "sub" / "coffee.jpg").write_bytes((DATA / "coffee.jpg").read_bytes())
    (root / "sub" / "broken.jpg").write_bytes((DATA / "astronaut.jpg").read_bytes()[:300])
    (root / "notes.png").write_text("not an image")
    write_video(root / "clip.mp4", clip_frames(), 10.0)
    return root


def test_inputs_from_folders_globs_files_and_manifests(inputs, tmp_path):
    found = list_inputs([inputs])
    assert {Path(p).name for p in found} == {"grace_hopper.jpg", "astronaut.jpg", "coffee.jpg", "broken.jpg",
                                            "notes.png", "clip.mp4"}
    assert list_inputs([str(inputs / "*.jpg"), inputs / "astronaut.jpg"]) == sorted(
        str(p) for p in inputs.glob("*.jpg"))  # a glob, then a file it already matched: no duplicate
    (tmp_path / "list.txt").write_text(f"# photos\n{inputs / 'astronaut.jpg'}\nmissing.jpg\n")
    assert read_manifest(tmp_path / "list.txt") == [str(inputs / "astronaut.jpg"), str(tmp_path / "missing.jpg")]
    (tmp_path / "list.csv").write_text(f"id,path\n1,{inputs / 'clip.mp4'}\n2,sub/x.png\n")
    assert list_inputs([tmp_path / "list.csv"]) == [str(inputs / "clip.mp4"), str(tmp_path / "sub" / "x.png")]
    with pytest.raises(ValueError, match="matches no file"):
        list_inputs([str(tmp_path / "nothing-*.jpg")])


def test_batch_rows_match_predict_and_videos_give_timed_frames(ray_session, inputs, tmp_path):
    from fer.cli_predict import predict_entry
    from fer.inference import EmotionRecognizer

    paths = list_inputs([inputs])
    summary = run_batch(paths, tmp_path / "out.parquet", OPTS)
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column_names == COLUMNS
    rows = table.to_pylist()
    assert summary.analysed == len(paths) and summary.skipped == 0 and summary.rows == len(rows)
    assert {r["model"] for r in rows} == {OPTS.model_name} and {r["profile"] for r in rows} == {"live"}

    errors = {Path(r["file"]).name: r["error"] for r in rows if r["error"]}
    assert set(errors) == {"broken.jpg", "notes.png"} and summary.errors == 2
    assert "truncated" in errors["broken.jpg"] and "not an image" in errors["notes.png"]

    rec = EmotionRecognizer(profile="live", input_size=OPTS.input_size)
    for name in ("grace_hopper.jpg", "sub/coffee.jpg"):
        entry = predict_entry(rec, str(inputs / name), str(inputs / name))
        mine = [r for r in rows if r["file"] == str(inputs / name)]
        if not entry["faces"]:  # coffee: no face, still one row, so the file counts as done
            assert len(mine) == 1 and mine[0]["face"] is None and mine[0]["emotion"] is None
            continue
        assert [[r["x"], r["y"], r["w"], r["h"]] for r in mine] == [f["box"] for f in entry["faces"]]
        assert [r["emotion"] for r in mine] == [f["emotion"] for f in entry["faces"]]
        for r, f in zip(mine, entry["faces"]):
            assert [r[e] for e in EMOTIONS] == pytest.approx([f["scores"][e] for e in EMOTIONS], abs=2e-4)

    clip = [r for r in rows if r["file"].endswith("clip.mp4")]
    assert sorted({r["frame"] for r in clip}) == [0, 5, 10, 15]  # every 5th of 20 frames
    assert {r["frame"]: r["time_s"] for r in clip}[15] == pytest.approx(1.5)
    assert max(r["face"] for r in clip if r["frame"] == 15) == 1  # the second face came at frame 9
    assert all(r["face"] == 0 for r in clip if r["frame"] == 0)


def test_rerun_skips_done_inputs_and_an_interrupted_run_keeps_its_rows(ray_session, inputs, tmp_path):
    paths = sorted(list_inputs([inputs]))
    out = tmp_path / "out.csv"

    def stop_after_first_block(files: int, faces: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(paths, out, OPTS, as_csv=True, progress=stop_after_first_block)
    assert not out.exists()
    kept = {r for p in parts_dir(out).glob("part-*.parquet") for r in read_table(p).column("file").to_pylist()}
    assert 0 < len(kept) < len(paths)

    summary = run_batch(paths, out, OPTS, as_csv=True)
    assert summary.skipped == len(kept) and summary.analysed == len(paths) - len(kept)
    assert not parts_dir(out).exists()
    first = read_table(out).to_pylist()
    assert {r["file"] for r in first} == set(paths)

    again = run_batch(paths, out, OPTS, as_csv=True)
    assert again.analysed == 0 and again.skipped == len(paths)
    assert read_table(out).to_pylist() == first  # nothing doubled, nothing lost


def test_without_ray_the_command_says_how_to_install_it(inputs, tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from fer.cli import main; "
            f"sys.exit(main(['batch', {str(inputs)!r}, '--out', {str(tmp_path / 'o.parquet')!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: Ray is not installed: python -m pip install -r requirements-scale.txt")


def test_the_command_writes_csv_and_reports(ray_session, inputs, tmp_path, capsys):
    from fer.cli import main

    out = tmp_path / "faces.csv"
    assert main(["batch", str(inputs / "*.jpg"), "--out", str(out), "--csv", "--profile", "live"]) == 0
    said = capsys.readouterr().out
    assert "2 input(s) analysed" in said and f"rows in {out}" in said
    header = out.read_text().splitlines()[0]
    assert header.replace('"', "").split(",") == COLUMNS
    assert main(["batch", str(inputs / "*.jpg"), "--out", str(out), "--csv", "--profile", "live"]) == 0
    again = capsys.readouterr().out
    assert "0 input(s) analysed" in again and "2 already done" in again


def test_detector_threads_come_from_the_environment(monkeypatch):
    from fer.detectors import THREADS_ENV, detector_threads

    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert detector_threads() == 0
    monkeypatch.setenv(THREADS_ENV, "1")
    assert detector_threads() == 1
    monkeypatch.setenv(THREADS_ENV, "two")
    with pytest.raises(ValueError, match="whole number"):
        detector_threads()
