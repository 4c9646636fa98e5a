"""``python -m fer predict IMAGE...`` and ``python -m fer video IN --out OUT.mp4 --csv TIMELINE.csv``."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from fer.labels import EMOTIONS


def add_commands(sub) -> None:
    """Register the ``predict`` and ``video`` sub-commands on an argparse sub-parser set."""
    p = sub.add_parser("predict", help="find faces in images and print their emotions")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (jpg, png, webp, ...)")
    _common(p)
    p.add_argument("--json", action="store_true", help="print one JSON list (one entry per input)")
    p.add_argument("--out", metavar="DIR", help="write annotated copies of the images into DIR")
    p.add_argument("--input-size", type=int, default=640, metavar="PX",
                   help="longer side the detector works at (default 640; raise for small faces in big photos)")
    p.set_defaults(handler=cmd_predict)

    v = sub.add_parser("video", help="annotate a video file and write per-frame emotions")
    v.add_argument("input", metavar="IN", help="video file (mp4, avi, mov, ...)")
    _common(v)
    v.add_argument("--out", metavar="OUT.mp4", help="annotated video to write (mp4v codec)")
    v.add_argument("--csv", metavar="TIMELINE.csv", help="per-frame, per-face emotions to write")
    v.add_argument("--alpha", type=float, default=0.6, help="smoothing: weight of the newest frame (1 = none)")
    v.add_argument("--every", type=int, default=1, metavar="N", help="analyse every Nth frame (others reuse it)")
    v.add_argument("--input-size", type=int, default=320, metavar="PX",
                   help="longer side the detector works at (default 320: faces from ~40 px in 640x480)")
    v.set_defaults(handler=cmd_video)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model file (default: the shipped model)")
    p.add_argument("--min-score", type=float, default=0.5, help="face-detector threshold (0-1, default 0.5)")
    p.add_argument("--detector", choices=("centerface", "haar"), default="centerface",
                   help="face detector: centerface (default) or haar (the baseline)")
    p.add_argument("--no-refine", action="store_true", help="skip the landmark refinement (faster, coarser alignment)")


def _recognizer(args):
    from fer.inference import EmotionRecognizer

    if args.input_size < 32:
        raise ValueError(f"--input-size {args.input_size} is too small; use 320 or more")
    return EmotionRecognizer(args.model, detector=args.detector, min_score=args.min_score, refine=not args.no_refine,
                             input_size=args.input_size)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _face_json(result) -> dict:
    d = result.to_dict()
    d.pop("track_id", None)
    return d


def cmd_predict(args) -> int:
    """Analyse each image; unreadable ones get an error entry and make the exit code 1."""
    if not 0 < args.min_score <= 1:
        raise ValueError(f"--min-score {args.min_score} is outside (0, 1]")
    out_dir = Path(args.out) if args.out else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    rec = _recognizer(args)
    entries, used_names = [], set()
    for name in args.images:
        entries.append(_predict_one(rec, name, out_dir, used_names))
        if not args.json:
            _print_entry(entries[-1])
    if args.json:
        print(json.dumps(entries, indent=2))
    failed = sum("error" in e for e in entries)
    if failed:
        print(f"error: {failed} of {len(entries)} input(s) could not be read", file=sys.stderr)
    return 1 if failed else 0


def _predict_one(rec, name: str, out_dir: Path | None, used_names: set[str]) -> dict:
    from fer.images import load_bgr

    try:
        image = load_bgr(name)
        results = rec.analyze(image)
    except (ValueError, OSError) as exc:
        return {"file": name, "error": _one_line(exc)}
    entry = {"file": name, "faces": [_face_json(r) for r in results]}
    if out_dir is not None:
        entry["annotated"] = str(_write_annotated(image, results, name, out_dir, used_names))
    return entry


def _write_annotated(image, results, name: str, out_dir: Path, used_names: set[str]) -> Path:
    import cv2

    from fer.draw import draw

    stem, n = Path(name).stem, 1
    candidate = f"{stem}.png"
    while candidate in used_names:
        n += 1
        candidate = f"{stem}-{n}.png"
    used_names.add(candidate)
    path = out_dir / candidate
    if not cv2.imwrite(str(path), draw(image, results)):
        raise OSError(f"could not write {path}")
    return path


def _print_entry(entry: dict) -> None:
    if "error" in entry:
        print(f"{entry['file']}: error: {entry['error']}")
        return
    faces = entry["faces"]
    parts = [f"{f['emotion']} {f['score']:.0%} at {tuple(f['box'])}" for f in faces]
    print(f"{entry['file']}: {len(faces)} face(s){': ' if parts else ''}{'; '.join(parts)}")


# ---------------------------------------------------------------- video

CSV_FIELDS = ["frame", "time_s", "track_id", "x", "y", "w", "h", "emotion", "score", *EMOTIONS]


def cmd_video(args) -> int:
    """Annotate a video (tracked, smoothed) and/or write its per-frame timeline."""
    import cv2

    if not args.out and not args.csv:
        raise ValueError("nothing to write: give --out OUT.mp4 and/or --csv TIMELINE.csv")
    if args.every < 1:
        raise ValueError(f"--every {args.every} must be 1 or more")
    cap = cv2.VideoCapture(args.input)
    if not cap.isOpened():
        raise ValueError(f"cannot open video {args.input} (missing, not a video, or an unsupported codec)")
    try:
        frames = _annotate_video(args, cap)
    finally:
        cap.release()
    if frames == 0:
        raise ValueError(f"no frames could be read from {args.input}")
    written = [f"wrote {p}" for p in (args.out, args.csv) if p]
    print("; ".join([f"{frames} frames", *written]))
    return 0


def _annotate_video(args, cap) -> int:
    import cv2
    from tqdm import tqdm

    from fer.draw import draw
    from fer.inference import FaceTracker

    rec, tracker = _recognizer(args), FaceTracker(alpha=args.alpha)
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    writer, table, results, n = None, _Timeline(args.csv), [], 0
    bar = tqdm(total=total, unit="frame", file=sys.stderr, disable=not sys.stderr.isatty())
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if n % args.every == 0:
                results = tracker.update(rec.analyze(frame))
            table.add(n, n / fps, results)
            if args.out:
                writer = writer or _writer(args.out, fps, frame.shape)
                writer.write(draw(frame, results))
            n += 1
            bar.update(1)
    finally:
        bar.close()
        table.close()
        if writer is not None:
            writer.release()
    return n


def _writer(path: str, fps: float, shape: tuple[int, ...]):
    import cv2

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (shape[1], shape[0]))
    if not writer.isOpened():
        raise OSError(f"cannot write video {path}; use an .mp4 name in a writable folder")
    return writer


class _Timeline:
    """CSV rows: one per face per frame (or none when there is no --csv)."""

    def __init__(self, path: str | None) -> None:
        self.file = None
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "w", newline="")
            self.writer = csv.writer(self.file)
            self.writer.writerow(CSV_FIELDS)

    def add(self, frame: int, time_s: float, results) -> None:
        if self.file is None:
            return
        for r in results:
            self.writer.writerow([frame, f"{time_s:.3f}", r.track_id, *r.box, r.emotion, f"{r.score:.4f}",
                                  *(f"{r.scores[e]:.4f}" for e in EMOTIONS)])

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
