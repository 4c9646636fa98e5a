"""Video-file analysis speed: fer.video.analyze_video vs the naive every-frame path, on a 640x480 clip.

    python benchmarks/video_speed.py [--model FILE] [--seconds 10] [--fps 25] [--detect-every 3,5]

The clip is made from the photographs in tests/data: the astronaut's face (160 px wide, a webcam
close-up) pasted on the coffee photo, drifting slowly left and right and up and down, written as
H.264 MP4 (what phones and browsers produce). Each method reads that file and writes an annotated
H.264 MP4, all in this process, one after the other:

- ``analyze_video`` with key frames every ``--detect-every`` frames (3: the app's and the CLI's default);
- ``analyze_video`` with ``detect_every=1`` (detector on every frame, batched classification);
- naive: ``EmotionRecognizer.analyze`` on every frame (detect + classify one frame at a time),
  tracker, draw, the same writer.

For each: wall time, frames/s, the ratio to real time (video seconds per wall second; >= 1
keeps up with the video) and the CPU time used per second of video by this process (all threads)
and by the ffmpeg encoder it pipes frames to (a child process) together (
under 2.0 fits in 2 cores when nothing else runs, under 1.0 would fit even in one). The fast path's labels and boxes
are compared with the naive path's,
frame by frame, so the speed-up's cost in accuracy is visible.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import scenes  # noqa: E402


def make_clip(path: Path, seconds: float, fps: float, size=(640, 480)) -> Path:
    """One face (160 px) drifting on a real background: +-60 px sideways, +-20 px up and down."""
    from fer.video import write_video

    w, h = size
    bg = scenes.background(size)

    def frames():
        for i in range(int(seconds * fps)):
            t = i / fps
            canvas = bg.copy()
            centre = (w / 2 + 60 * np.sin(2 * np.pi * t / 4), h / 2 + 20 * np.sin(2 * np.pi * t / 3))
            scenes.paste(canvas, "astronaut.jpg", centre, 160)
            yield canvas

    return write_video(path, frames(), fps)


def recognizer(model: str | None):
    from fer.inference import EmotionRecognizer
    from fer.modelfile import DEFAULT_MODEL, ModelCard

    if model or DEFAULT_MODEL.is_file():
        return EmotionRecognizer(model)
    from fer.model import build_model

    print("(no shipped model: timing an untrained VGG, the default architecture)")
    return EmotionRecognizer((build_model("vgg", augment=False), ModelCard(architecture="vgg")))


def naive(rec, src: Path, out: Path) -> tuple[float, list[list]]:
    """Every frame through ``rec.analyze``, tracked, drawn and written: rows like VideoResult.rows."""
    import cv2

    from fer.draw import draw
    from fer.inference import FaceTracker
    from fer.video import VideoWriter

    cap, tracker, writer, rows, n = cv2.VideoCapture(str(src)), FaceTracker(), None, [], 0
    fps = cap.get(cv2.CAP_PROP_FPS)
    start = time.perf_counter()
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        faces = tracker.update(rec.analyze(frame))
        writer = writer or VideoWriter(out, fps, frame.shape)
        writer.write(draw(frame, faces))
        rows += [[n, None, f.track_id, *f.box, f.emotion] for f in faces]
        n += 1
    writer.close()
    cap.release()
    return time.perf_counter() - start, rows


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the video writer's ffmpeg is one)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def agreement(rows: list[list], reference: list[list]) -> tuple[float, float, int]:
    """Share of frames with the same label as the reference, mean box IoU, frames compared."""
    from fer.inference import iou_matrix

    ref = {r[0]: r for r in reference}
    same, ious = [], []
    for r in rows:
        if r[0] in ref:
            same.append(r[7] == ref[r[0]][7])
            ious.append(float(iou_matrix(np.array([r[3:7]]), np.array([ref[r[0]][3:7]]))[0, 0]))
    return float(np.mean(same)), float(np.mean(ious)), len(same)


def main() -> None:
    from fer.video import analyze_video

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--detect-every", default="3,5", help="key-frame steps to time, comma-separated")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} before the run")
    rec = recognizer(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        src = make_clip(Path(tmp) / "clip.mp4", args.seconds, args.fps)
        analyze_video(rec, src, Path(tmp) / "warm.mp4")  # warm-up: codecs, graph, detector
        video_s = int(args.seconds * args.fps) / args.fps
        print(f"clip: 640x480, {args.fps:g} frames/s, {video_s:.1f} s, one face\n")
        print("| method | detector runs | wall s | frames/s | x real time | CPU s per video s |")
        print("|---|---:|---:|---:|---:|---:|")
        results, steps = {}, [int(v) for v in args.detect_every.split(",")]
        for every in [*steps, 1]:
            cpu = cpu_seconds()
            r = results[every] = analyze_video(rec, src, Path(tmp) / f"out{every}.mp4", detect_every=every)
            print(f"| analyze_video, detect every {every} | {r.detected_frames} | {r.seconds:.1f} | "
                  f"{r.frames / r.seconds:.1f} | {r.realtime_factor:.2f} | {(cpu_seconds() - cpu) / video_s:.2f} |")
        cpu = cpu_seconds()
        seconds, rows = naive(rec, src, Path(tmp) / "naive.mp4")
        print(f"| naive: analyze() per frame | {len(rows)} | {seconds:.1f} | {len(rows) / seconds:.1f} | "
              f"{video_s / seconds:.2f} | {(cpu_seconds() - cpu) / video_s:.2f} |")
        print()
        for every in steps:
            same, iou, n = agreement(results[every].rows, rows)
            print(f"detect every {every} vs naive, {n} frames: same label on {same:.1%} of frames "
                  f"(the tracker smooths both), mean box IoU {iou:.3f}")
    print(f"load average {os.getloadavg()[0]:.1f} after the run")


if __name__ == "__main__":
    main()
