"""Images per second of ``python -m fer batch`` (Ray Data, an actor pool) against a plain loop.

    python benchmarks/batch_speed.py [--n 500] [--profile photo] [--num-cpus N] [--keep DIR]

Makes ``--n`` photos (640x480 JPEG) from the photographs in tests/data: 1 to 4 faces each, of
random size, tilt and side (``tests/scenes.py``'s ``group``), plus every tenth one without a face.
Then times, on the same files, in this order:

- **loop**: one ``EmotionRecognizer()`` (the default, Keras engine; loaded inside the timing), then
  ``analyze(load_bgr(path))`` for every file, one after the other: the baseline;
- **loop_onnx**: the same loop with ``EmotionRecognizer(engine="onnx")``, the engine ``batch`` uses
  by default, so that Ray's own overhead can be read apart from the engine's speed;
- **ray**: :func:`fer.batch.run_batch`, end to end: Ray started (``--num-cpus``, default all cores),
  one recognizer loaded per actor, every block written as a Parquet part, the parts merged.

All use the same profile and detector size (640, as ``predict``). The models' ONNX conversion is
cached on disk (a user pays it once per model file): it is done before the timings, into a fresh
cache, and reported as ``conversion_s``. The speed-up is ray / loop in images per second, end to
end; the target is >= 1.0 on one machine, and it grows with the cores of a cluster. Ray's fixed
start-up is reported apart, as the time to its first rows, and its steady rate after that.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2  # noqa: E402

import scenes  # noqa: E402


def make_photos(folder: Path, n: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        image = scenes.background() if i % 10 == 9 else scenes.group(seed=i, n=1 + i % 4).image
        path = folder / f"photo_{i:04d}.jpg"
        cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(str(path))
    return paths


def time_loop(paths: list[str], profile: str, engine: str = "keras") -> dict:
    from fer.images import load_bgr
    from fer.inference import EmotionRecognizer

    start = time.perf_counter()
    rec = EmotionRecognizer(profile=profile, input_size=640, engine=engine)
    faces = sum(len(rec.analyze(load_bgr(p))) for p in paths)
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 2), "images_per_s": round(len(paths) / seconds, 2), "faces": faces}


def time_conversion(profile: str) -> float:
    """Seconds to convert the profile's models into the (fresh) cache, in a child process as a user's first run."""
    import subprocess

    code = f"from fer.onnx_runtime import load_onnx_profile; load_onnx_profile({profile!r})"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=dict(os.environ))
    return round(time.perf_counter() - start, 2)


def time_ray(paths: list[str], profile: str, num_cpus: int | None, out: Path) -> dict:
    from fer.batch import BatchOptions, run_batch

    marks: list[tuple[float, int]] = []
    start = time.perf_counter()

    def progress(files: int, faces: int) -> None:
        marks.append((time.perf_counter() - start, files))

    summary = run_batch(paths, out, BatchOptions(profile=profile), num_cpus=num_cpus, progress=progress)
    seconds = time.perf_counter() - start
    (t0, n0), (t1, n1) = marks[0], marks[-1]
    return {"seconds": round(seconds, 2), "images_per_s": round(len(paths) / seconds, 2), "faces": summary.faces,
            "errors": summary.errors, "first_rows_after_s": round(t0, 2),
            "steady_images_per_s": round((n1 - n0) / (t1 - t0), 2) if t1 > t0 else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="photos to make and analyse (default 500)")
    parser.add_argument("--profile", default="photo")
    parser.add_argument("--num-cpus", type=int, help="cores for the local Ray (default all)")
    parser.add_argument("--keep", type=Path, help="make the photos in this folder and keep them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp) / "photos"
        paths = make_photos(folder, args.n)
        os.environ["FER_CACHE_DIR"] = str(Path(tmp) / "cache")
        conversion_s = time_conversion(args.profile)
        loop = time_loop(paths, args.profile)
        loop_onnx = time_loop(paths, args.profile, "onnx")
        ray = time_ray(paths, args.profile, args.num_cpus, Path(tmp) / "results.parquet")
    result = {"photos": args.n, "profile": args.profile, "cores": os.cpu_count(), "conversion_s": conversion_s,
              "loop": loop, "loop_onnx": loop_onnx, "ray": ray,
              "speedup": round(ray["images_per_s"] / loop["images_per_s"], 2),
              "speedup_vs_loop_onnx": round(ray["images_per_s"] / loop_onnx["images_per_s"], 2)}
    print(json.dumps(result))
    print(f"{args.n} photos, profile {args.profile}, {os.cpu_count()} cores: loop {loop['images_per_s']} images/s, "
          f"loop on ONNX {loop_onnx['images_per_s']}, ray {ray['images_per_s']} images/s end to end "
          f"({result['speedup']}x the loop, {result['speedup_vs_loop_onnx']}x the ONNX loop; faces {loop['faces']}, "
          f"{loop_onnx['faces']}, {ray['faces']}); ray's first rows after {ray['first_rows_after_s']} s "
          f"(start-up), then {ray['steady_images_per_s']} images/s; one-time ONNX conversion {conversion_s} s")


if __name__ == "__main__":
    main()
