"""``python -m fer predict IMAGE...`` and ``python -m fer video IN --out OUT.mp4 --csv TIMELINE.csv``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fer.evaluate import TTA_MODES
from fer.faces import PHOTO_MIN_FACE
from fer.profiles import DEFAULT_PROFILE, PROFILES
from fer.video import CSV_FIELDS  # noqa: F401  (the timeline's columns, re-exported)


def add_commands(sub) -> None:
    """Register the ``predict`` and ``video`` sub-commands on an argparse sub-parser set."""
    p = sub.add_parser("predict", help="find faces in images and print their emotions")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (jpg, png, webp, ...)")
    _common(p)
    p.add_argument("--json", action="store_true", help="print one JSON list (one entry per input)")
    p.add_argument("--out", metavar="DIR", help="write annotated copies of the images into DIR")
    p.add_argument("--input-size", type=int, default=640, metavar="PX",
                   help="longer side the detector works at (default 640; raise for small faces in big photos)")
    add_min_face_option(p)
    p.set_defaults(handler=cmd_predict)

    v = sub.add_parser("video", help="annotate a video file and write per-frame emotions")
    v.add_argument("input", metavar="IN", help="video file (mp4, avi, mov, ...)")
    _common(v)
    v.add_argument("--out", metavar="OUT.mp4",
                   help="annotated video to write: .mp4 (H.264) or .webm (VP8), both play in browsers")
    v.add_argument("--csv", metavar="TIMELINE.csv", help="per-frame, per-face emotions to write")
    v.add_argument("--alpha", type=float, default=0.6, help="smoothing: weight of the newest frame (1 = none)")
    v.add_argument("--detect-every", "--every", dest="detect_every", type=int, default=3, metavar="N",
                   help="run the face detector on every Nth frame and interpolate the faces in between "
                        "(default 3; 1 = every frame); every frame is still classified")
    v.add_argument("--max-mb", type=float, metavar="MB", help="refuse files larger than this")
    v.add_argument("--max-seconds", type=float, metavar="S", help="refuse videos longer than this")
    v.add_argument("--input-size", type=int, default=320, metavar="PX",
                   help="longer side the detector works at (default 320: faces from ~40 px in 640x480)")
    v.set_defaults(handler=cmd_video)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model file (default: the shipped models of --profile)")
    p.add_argument("--profile", choices=tuple(PROFILES), default=DEFAULT_PROFILE,
                   help="; ".join(f"{k}: {v}" for k, v in PROFILES.items()) + f" (default {DEFAULT_PROFILE})")
    p.add_argument("--min-score", type=float, default=0.5, help="face-detector threshold (0-1, default 0.5)")
    p.add_argument("--detector", choices=("centerface", "haar"), default="centerface",
                   help="face detector: centerface (default) or haar (the baseline)")
    p.add_argument("--no-refine", action="store_true", help="skip the landmark refinement (faster, coarser alignment)")
    add_tta_option(p)


def add_min_face_option(p: argparse.ArgumentParser) -> None:
    """``--min-face PX``: the smallest face to find in a large photo (a second, finer detector pass)."""
    p.add_argument("--min-face", type=int, default=PHOTO_MIN_FACE, metavar="PX",
                   help=f"smallest face width to find in a large photo (default {PHOTO_MIN_FACE}): the detector adds a "
                        "second, finer pass where --input-size alone would miss it; 0: one pass")


def add_tta_option(p: argparse.ArgumentParser) -> None:
    """``--tta [flip|crops|none]``: override the profile's test-time augmentation."""
    p.add_argument("--tta", nargs="?", const="flip", choices=(*TTA_MODES, "none"),
                   help="override the profile's test-time views per face: flip (the face and its mirror, 2x the "
                        "cost; the default when --tta is given alone), crops (10x) or none")


def _recognizer(args):
    from fer.inference import EmotionRecognizer

    if args.input_size < 32:
        raise ValueError(f"--input-size {args.input_size} is too small; use 320 or more")
    extra = {} if args.tta is None else {"tta": None if args.tta == "none" else args.tta}
    return EmotionRecognizer(args.model, profile=args.profile, detector=args.detector, min_score=args.min_score,
                             refine=not args.no_refine, input_size=args.input_size,
                             min_face=getattr(args, "min_face", 0), **extra)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _face_json(result, scale: float = 1.0) -> dict:
    """A face as JSON, its box and eyes in the original image's pixels (``scale``: original / decoded)."""
    d = result.to_dict()
    d.pop("track_id", None)
    if scale != 1.0:
        d["box"] = [round(v * scale) for v in d["box"]]
        if d["eyes"] is not None:
            d["eyes"] = [[round(v * scale, 1) for v in point] for point in d["eyes"]]
    return d


def cmd_predict(args) -> int:
    """Analyse each image; unreadable ones get an error entry, a line on stderr and exit code 2."""
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
    failed = [e for e in entries if "error" in e]
    if len(failed) == 1:
        print(f"error: {failed[0]['file']}: {failed[0]['error']}", file=sys.stderr)
    elif failed:
        print(f"error: {len(failed)} of {len(entries)} input(s) could not be read "
              f"(first: {failed[0]['file']}: {failed[0]['error']})", file=sys.stderr)
    return 2 if failed else 0


def predict_entry(rec, source: str | Path | bytes, name: str) -> dict:
    """One ``predict --json`` entry for an image file or its bytes: ``{"file", "faces"}`` (plus
    ``downscaled_by`` for a huge JPEG), or ``{"file", "error"}`` when it cannot be read."""
    return _analyze_entry(rec, source, name)[0]


def _analyze_entry(rec, source, name: str):
    from fer.images import load_bgr_scaled

    try:
        image, scale = load_bgr_scaled(source)
        results = rec.analyze(image)
    except (ValueError, OSError) as exc:
        return {"file": name, "error": _one_line(exc)}, None, []
    entry = {"file": name, "faces": [_face_json(r, scale) for r in results]}
    if scale != 1.0:
        entry["downscaled_by"] = scale  # a huge JPEG decoded smaller; the boxes are in the original's pixels
    return entry, image, results


def _predict_one(rec, name: str, out_dir: Path | None, used_names: set[str]) -> dict:
    entry, image, results = _analyze_entry(rec, name, name)
    if out_dir is not None and "error" not in entry:
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


def cmd_video(args) -> int:
    """Annotate a video (tracked, smoothed) and/or write its per-frame timeline (see :mod:`fer.video`)."""
    from fer.video import VideoLimits, analyze_video

    if not args.out and not args.csv:
        raise ValueError("nothing to write: give --out OUT.mp4 and/or --csv TIMELINE.csv")
    if args.detect_every < 1:
        raise ValueError(f"--detect-every {args.detect_every} must be 1 or more")
    for name in ("max_mb", "max_seconds"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise ValueError(f"--{name.replace('_', '-')} {value} must be positive")
    limits = VideoLimits(max_mb=args.max_mb, max_seconds=args.max_seconds)
    with _ProgressBar() as bar:
        result = analyze_video(_recognizer(args), args.input, args.out, detect_every=args.detect_every,
                               alpha=args.alpha, limits=limits, progress=bar.update)
    if args.csv:
        result.write_csv(args.csv)
    written = [f"wrote {p}" for p in (args.out, args.csv) if p]
    print("; ".join([f"{result.frames} frames ({result.frames / result.fps:.1f} s of video) in "
                     f"{result.seconds:.1f} s, {result.realtime_factor:.1f}x real time, "
                     f"{len(result.track_ids())} face(s) tracked", *written]))
    return 0


class _ProgressBar:
    """A tqdm bar on an interactive stderr, fed by ``analyze_video``'s progress callback."""

    def __enter__(self) -> "_ProgressBar":
        self.bar = None
        return self

    def update(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total or None, unit="frame", file=sys.stderr, disable=not sys.stderr.isatty())
        self.bar.update(done - self.bar.n)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
