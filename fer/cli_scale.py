"""``python -m fer batch INPUT... --out results.parquet`` (Ray Data) and ``python -m fer serve`` (FastAPI)."""

from __future__ import annotations

import os
import sys

from fer.cli_predict import add_min_face_option
from fer.inference import ENGINES
from fer.profiles import DEFAULT_PROFILE, PROFILES


def add_commands(sub) -> None:
    """Register the ``batch`` and ``serve`` sub-commands on an argparse sub-parser set."""
    profiles = "; ".join(f"{k}: {v}" for k, v in PROFILES.items())
    engine = {"choices": ENGINES, "default": "onnx",
              "help": "run the emotion models on ONNX Runtime (default: same results, half the cost per face, "
                      "no TensorFlow in the workers) or on Keras"}
    b = sub.add_parser("batch", help="analyse many images and videos on Ray Data into one Parquet/CSV table")
    b.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="files, folders (recursive), globs (quote them) or manifests (.txt/.csv of paths)")
    b.add_argument("--out", required=True, help="the table to write, e.g. results.parquet; rerun to resume")
    b.add_argument("--csv", action="store_true", help="write CSV instead of Parquet")
    b.add_argument("--profile", choices=tuple(PROFILES), default=DEFAULT_PROFILE,
                   help=f"{profiles} (default {DEFAULT_PROFILE})")
    b.add_argument("--model", help="model file (default: the shipped models of --profile)")
    b.add_argument("--address", metavar="auto|ray://HOST:PORT",
                   help="join this Ray cluster (default: start Ray on this machine with all its cores)")
    b.add_argument("--num-cpus", type=int, help="local Ray only: cores to use (default all)")
    b.add_argument("--every-nth-frame", type=int, default=10, metavar="N",
                   help="videos: analyse every Nth frame (default 10)")
    b.add_argument("--input-size", type=int, default=640, metavar="PX",
                   help="longer side the detector works at (default 640, as predict)")
    b.add_argument("--min-score", type=float, default=0.5, help="face-detector threshold (0-1, default 0.5)")
    add_min_face_option(b)
    b.add_argument("--engine", **engine)
    b.set_defaults(handler=cmd_batch)

    s = sub.add_parser("serve", help="serve the recognizer as an HTTP API (FastAPI on uvicorn)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0: all)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--profile", choices=tuple(PROFILES), default=DEFAULT_PROFILE,
                   help=f"{profiles} (default {DEFAULT_PROFILE})")
    s.add_argument("--model", help="model file (default: the shipped models of --profile)")
    s.add_argument("--max-mb", type=float, default=10.0, help="largest upload in MB (default 10)")
    s.add_argument("--max-megapixels", type=float, default=25.0, help="largest image in megapixels (default 25)")
    s.add_argument("--max-faces", type=int, default=50, help="most faces per image (default 50)")
    s.add_argument("--input-size", type=int, default=640, metavar="PX",
                   help="longer side the detector works at (default 640, as predict)")
    add_min_face_option(s)
    s.add_argument("--engine", **engine)
    s.set_defaults(handler=cmd_serve)


def cmd_batch(args) -> int:
    from fer.batch import BatchOptions, list_inputs, require_ray, run_batch

    opts = BatchOptions(profile=args.profile, model=args.model, every_nth_frame=args.every_nth_frame,
                        min_score=args.min_score, input_size=args.input_size, min_face=args.min_face,
                        engine=args.engine)
    try:
        require_ray()
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    paths = list_inputs(args.inputs)
    with _Bar(len(paths)) as bar:
        summary = run_batch(paths, args.out, opts, as_csv=args.csv, address=args.address, num_cpus=args.num_cpus,
                            progress=bar.update)
    print(f"{summary.analysed} input(s) analysed in {summary.seconds:.1f} s ({summary.faces} faces, "
          f"{summary.errors} unreadable), {summary.skipped} already done; {summary.rows} rows in {summary.out}")
    return 0


class _Bar:
    """tqdm bar of files, with files/s and faces/s."""

    def __init__(self, total: int) -> None:
        self.total = total

    def __enter__(self) -> "_Bar":
        import time

        from tqdm import tqdm

        self.bar = tqdm(total=self.total, unit="file", file=sys.stderr, disable=None)
        self.start = time.perf_counter()
        return self

    def update(self, files: int, faces: int) -> None:
        import time

        self.bar.update(files - self.bar.n)
        self.bar.set_postfix_str(f"{faces / max(time.perf_counter() - self.start, 1e-9):.1f} faces/s")

    def __exit__(self, *exc) -> None:
        self.bar.close()
        if exc[0] is KeyboardInterrupt:
            print("interrupted: the finished rows are kept; rerun the same command to continue", file=sys.stderr)


def cmd_serve(args) -> int:
    from fer.inference import EmotionRecognizer
    from fer.serve import TOKEN_ENV, ServeLimits, require_fastapi, run

    try:
        require_fastapi()
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    limits = ServeLimits(max_bytes=int(args.max_mb * 1e6), max_pixels=int(args.max_megapixels * 1e6),
                         max_faces=args.max_faces)
    token = os.environ.get(TOKEN_ENV) or None
    rec = EmotionRecognizer(args.model, profile=args.profile, input_size=args.input_size, min_face=args.min_face,
                            engine=args.engine)
    print(f"serving profile {args.profile} on http://{args.host}:{args.port} "
          f"({'token required' if token else f'no token: set {TOKEN_ENV} to require one'})", flush=True)
    run(rec, args.host, args.port, limits=limits, token=token)
    return 0
