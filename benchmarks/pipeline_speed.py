"""Frame-to-emotions speed of fer.EmotionRecognizer vs the `fer` package's FER().detect_emotions.

    python benchmarks/pipeline_speed.py [--model FILE] [--runs 30] [--fer-python /tmp/fer-venv/bin/python]

Two 640x480 frames made from the photographs in tests/data: one face (160 px wide, a webcam
close-up) and five faces (50-96 px). For each: detection ms (CenterFace + landmark refinement,
and without refinement), classification ms (all faces in one compiled call), total ms per frame
for ``analyze`` end to end, and frames/s; then classification ms per face at batch 1 and batched.
Medians over ``--runs`` runs after a warm-up, all in this process.

The `fer` package (PyPI ``fer``, not a dependency of this project) is timed on the same frames in
the same run, in its own environment, because its import name clashes with this package::

    python -m venv /tmp/fer-venv --system-site-packages
    /tmp/fer-venv/bin/pip install --no-deps fer==25.10.3    # its other deps pull torch, moviepy...

Without ``--fer-python`` (or when it fails) the stand-in is measured instead: Haar cascade with
the `fer` package's settings + the seed CNN, classified with ``model.predict``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import scenes  # noqa: E402

FER_SCRIPT = r"""
import json, sys, time, statistics, cv2
try:
    from fer import FER
except ImportError:
    from fer.fer import FER
detector = FER()
out = {}
for path in sys.argv[2:]:
    frame = cv2.imread(path)
    for _ in range(3):
        faces = detector.detect_emotions(frame)
    times = []
    for _ in range(int(sys.argv[1])):
        t = time.perf_counter(); faces = detector.detect_emotions(frame); times.append(time.perf_counter() - t)
    out[path] = {"ms": 1000 * statistics.median(times), "faces": len(faces)}
print("RESULT " + json.dumps(out))
"""


def median_ms(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def frames() -> dict[str, np.ndarray]:
    return {"1 face": scenes.portrait("astronaut.jpg", 160).image, "5 faces": scenes.group(1).image}


def recognizer(model: str | None):
    from fer.inference import EmotionRecognizer
    from fer.modelfile import DEFAULT_MODEL, ModelCard

    if model or DEFAULT_MODEL.is_file():
        return EmotionRecognizer(model)
    from fer.model import build_model

    print("(no shipped model yet: timing an untrained VGG, the default architecture)")
    return EmotionRecognizer((build_model("vgg", augment=False), ModelCard(architecture="vgg")))


def ours(rec, runs: int) -> dict[str, dict]:
    from fer.faces import detect_in_bgr

    out = {}
    for name, frame in frames().items():
        faces = rec.detect(frame)
        crops = np.stack([r.crop for r in rec.analyze(frame)])
        out[name] = {
            "faces": len(faces),
            "detect": median_ms(lambda frame=frame: rec.detect(frame), runs),
            "detect_no_refine": median_ms(lambda frame=frame: detect_in_bgr(frame, 0.5, refine=False), runs),
            "classify": median_ms(lambda crops=crops: rec.classify(crops), runs),
            "total": median_ms(lambda frame=frame: rec.analyze(frame), runs),
        }
    one = crops[:1]
    batch = np.repeat(crops, 32 // len(crops) + 1, axis=0)[:32]
    out["per_face"] = {"batch 1": median_ms(lambda: rec.classify(one), runs),
                       f"batch {len(crops)}": median_ms(lambda: rec.classify(crops), runs) / len(crops),
                       "batch 32": median_ms(lambda: rec.classify(batch), runs) / 32}
    return out


def fer_package(python: str, runs: int) -> dict[str, dict] | None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, frame in frames().items():
            paths[name] = os.path.join(tmp, name.replace(" ", "_") + ".png")
            cv2.imwrite(paths[name], frame)
        try:
            proc = subprocess.run([python, "-c", FER_SCRIPT, str(runs), *paths.values()], cwd=tmp,
                                  capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            print(f"(the `fer` package could not be run: {exc})")
            return None
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            print(f"(the `fer` package failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]})")
            return None
        result = json.loads(line[7:])
        return {name: result[path] for name, path in paths.items()}


def stand_in(runs: int) -> dict[str, dict]:
    """Haar (fer settings) + seed CNN via model.predict: what the `fer` package does, in this env."""
    from fer.detectors import HaarDetector
    from fer.model import build_model

    haar, model = HaarDetector(min_size=50), build_model("seed", augment=False)

    def detect_emotions(frame):
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        faces = haar(frame)
        crops = [cv2.resize(gray[int(f.y1):int(f.y2), int(f.x1):int(f.x2)], (48, 48)) for f in faces]
        return model.predict(np.array(crops, np.float32)[..., None], verbose=0) if crops else []

    return {name: {"ms": median_ms(lambda frame=frame: detect_emotions(frame), runs), "faces": len(haar(frame))}
            for name, frame in frames().items()}


def report(mine: dict, theirs: dict | None, label: str) -> None:
    print("| frame | faces found | detection ms (no refinement) | classification ms | total ms / frame | frames/s |"
          f" {label} ms | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for name in ("1 face", "5 faces"):
        m = mine[name]
        other = theirs.get(name) if theirs else None
        other_txt = f"{other['ms']:.1f} ({other['faces']} found)" if other else "n/a"
        speed = f"{other['ms'] / m['total']:.1f}x" if other else "n/a"
        print(f"| {name} | {m['faces']} | {m['detect']:.1f} ({m['detect_no_refine']:.1f}) | {m['classify']:.1f} | "
              f"{m['total']:.1f} | {1000 / m['total']:.1f} | {other_txt} | {speed} |")
    print("\nclassification ms per face: " + ", ".join(f"{k}: {v:.2f}" for k, v in mine["per_face"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: the shipped model, else an untrained VGG)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--fer-python", help="python of an environment with the `fer` package installed")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} before the run")
    mine = ours(recognizer(args.model), args.runs)
    theirs = fer_package(args.fer_python, args.runs) if args.fer_python else None
    label = "`fer` package FER().detect_emotions"
    if theirs is None:
        theirs, label = stand_in(args.runs), "stand-in (Haar + seed CNN, model.predict)"
    report(mine, theirs, label)
    print(f"load average {os.getloadavg()[0]:.1f} after the run")


if __name__ == "__main__":
    main()
