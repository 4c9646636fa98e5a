"""Frame-to-emotions speed: the live stream, the photo path and the `fer` package, in one run.

    python benchmarks/pipeline_speed.py [--frames 120] [--rounds 5] [--fer-venv ~/.cache/fer-bench/venv-fer]
                                        [--no-install]

The frames: ``--frames`` 640x480 frames of one face (~180 px, a webcam close-up) drifting, nodding
and leaning over a real background (``tests/scenes.py: moving_face``), 30 frames/s worth of motion.
Timed on the same frames, in rounds that alternate between the contenders so that a foreign load
hits them alike (the best round of each is reported, its ms per frame being the total over the
sequence divided by the frames):

- **live**: ``fer.EmotionRecognizer(profile="live").stream()``, ``stream.process(frame)`` per
  frame (a fresh stream each round), and each lever of it switched off in turn (cumulative, from
  ``analyze`` with the live profile to the full stream);
- **photo**: ``fer.EmotionRecognizer().analyze(frame)`` (the photo profile: ensemble + flip TTA);
- **the model alone**: the live profile's classification of one face per call, Keras vs ONNX Runtime;
- **the `fer` package**: PyPI ``fer`` 25.10.3, ``FER().detect_emotions(frame)``, in its own venv
  (its import name clashes with this project's), driven by a worker subprocess that times the
  same frames when told to. The venv is made with the package's own dependencies (torch first,
  then ``fer==25.10.3``, then ``setuptools<81``; ~3 minutes and ~3.7 GB, see
  /work/shared/notes/fer-package.md) when it is missing, unless ``--no-install``: then no
  comparison is printed.

Other processes on the machine slow both sides: the ratios are the figures to quote.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import scenes  # noqa: E402

FER_VERSION = "25.10.3"
DEFAULT_VENV = Path.home() / ".cache" / "fer-bench" / "venv-fer"
INSTALL_STEPS = (["torch==2.13.0"], [f"fer=={FER_VERSION}", "torch==2.13.0"], ["setuptools<81"])

FER_WORKER = r"""
import json, sys, time
import numpy as np
from fer.fer import FER
frames = np.load(sys.argv[1])
detector = FER()
for f in frames[:3]:
    detector.detect_emotions(f)
print("READY", flush=True)
for line in sys.stdin:
    t = time.perf_counter()
    found = sum(len(detector.detect_emotions(f)) > 0 for f in frames)
    ms = 1000 * (time.perf_counter() - t) / len(frames)
    print("RESULT " + json.dumps({"ms": ms, "found": int(found)}), flush=True)
"""


# ---------------------------------------------------------------- the `fer` package's venv

def fer_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def fer_ready(venv: Path) -> bool:
    """True when ``venv`` imports the `fer` package's FER (run outside this repo: its name clashes)."""
    py = fer_python(venv)
    if not py.is_file():
        return False
    probe = "import fer, fer.fer; print(fer.__version__ if hasattr(fer, '__version__') else 'ok')"
    proc = subprocess.run([str(py), "-c", probe], cwd=tempfile.gettempdir(), capture_output=True, text=True,
                          timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return proc.returncode == 0


def install_fer(venv: Path) -> None:
    """Make ``venv`` with the `fer` package and its own dependencies (raises RuntimeError on failure)."""
    print(f"installing the `fer` package {FER_VERSION} into {venv} (about 3 minutes, 3.7 GB)...", flush=True)
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    for step in INSTALL_STEPS:
        proc = subprocess.run([str(fer_python(venv)), "-m", "pip", "install", "-q", *step], capture_output=True,
                              text=True)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
            raise RuntimeError(f"pip install {' '.join(step)} failed in {venv}: {tail}")
    if not fer_ready(venv):
        raise RuntimeError(f"the `fer` package was installed into {venv} but `from fer.fer import FER` fails there")


class FerWorker:
    """A script run in the `fer` package's venv, talked to line by line: it prints ``READY`` once set up,
    then answers each line sent to it with ``RESULT <json>``."""

    def __init__(self, venv: Path, code: str, args: list[str], cwd: str) -> None:
        self.proc = subprocess.Popen([str(fer_python(venv)), "-c", code, *args], cwd=cwd, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        self._expect("READY")

    def _expect(self, word: str) -> str:
        for line in self.proc.stdout:
            if line.startswith(word):
                return line[len(word):].strip()
        raise RuntimeError(f"the `fer` package's worker stopped (exit code {self.proc.wait()})")

    def ask(self, line: str = "go") -> dict:
        """Send one line; the worker's JSON answer."""
        self.proc.stdin.write(f"{line}\n")
        self.proc.stdin.flush()
        return json.loads(self._expect("RESULT"))

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


# ---------------------------------------------------------------- this project

def live_variants(live) -> dict:
    """The live path with its levers switched on one after the other: name -> f(frames) -> faces found."""

    def analyze(frames):
        return sum(len(live.analyze(f)) > 0 for f in frames)

    def stream(**options):
        def run(frames):
            s = live.stream(**options)
            return sum(len(s.process(f)) > 0 for f in frames)
        return run

    return {
        "live analyze (Keras, detector 320 + refinement every frame)": analyze,
        "+ ONNX Runtime classification": stream(detect_every=1, detect_size=live.input_size, stable_eyes=0.0),
        "+ detector input 160x120": stream(detect_every=1, detect_size=160, stable_eyes=0.0),
        "+ refinement skipped for stable eyes": stream(detect_every=1, detect_size=160),
        "+ detect every 5th frame, track in between (= live stream)": stream(detect_every=5, detect_size=160),
    }


def classifier_variants(live, frames) -> dict:
    """The model alone on the live profile, one face per call: Keras graph vs ONNX Runtime (ms per face)."""
    from fer.stream import onnx_classifier

    crops = [r.crop[None] for f in frames[:30] for r in live.analyze(f)[:1]]
    onnx = onnx_classifier(live)

    def per_face(classify):
        def run():
            t = time.perf_counter()
            for c in crops:
                classify(c)
            return {"ms": 1000 * (time.perf_counter() - t) / len(crops), "found": len(crops)}
        return run

    return {"model alone, Keras tf.function (ms per face)": per_face(live.classify),
            "model alone, ONNX Runtime (ms per face)": per_face(onnx.probabilities)}


def timed(fn, frames) -> dict:
    t = time.perf_counter()
    found = fn(frames)
    return {"ms": 1000 * (time.perf_counter() - t) / len(frames), "found": int(found)}


def run_rounds(contenders: dict, rounds: int) -> dict[str, dict]:
    """name -> the best of ``rounds`` results of ``contenders[name]()``, the contenders taking turns."""
    best: dict[str, dict] = {}
    for r in range(rounds):
        for name, fn in contenders.items():
            res = fn()
            if name not in best or res["ms"] < best[name]["ms"]:
                best[name] = res
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{k.split(' (')[0][:24]} {v['ms']:.1f}"
                                                        for k, v in best.items()), flush=True)
    return best


def report(best: dict[str, dict], n: int, fer_name: str | None) -> None:
    extra = " `fer` package ms / this |" if fer_name else ""
    print(f"\n| path | ms / frame | frames/s | frames with a face (of {n}) |" + extra)
    print("|---|---|---|---|" + ("---|" if fer_name else ""))
    fer_ms = best[fer_name]["ms"] if fer_name else None
    for name, res in best.items():
        ratio = f" {fer_ms / res['ms']:.1f}x |" if fer_name and "per face" not in name else (" |" if fer_name else "")
        print(f"| {name} | {res['ms']:.1f} | {1000 / res['ms']:.0f} | {res['found']} |{ratio}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fer-venv", type=Path, default=DEFAULT_VENV, help=f"default {DEFAULT_VENV}")
    parser.add_argument("--fer-python", type=Path, help="python of an existing venv with the `fer` package "
                                                        "(instead of --fer-venv)")
    parser.add_argument("--no-install", action="store_true", help="do not install the `fer` package when missing")
    args = parser.parse_args()
    if args.fer_python:
        args.fer_venv, args.no_install = args.fer_python.parent.parent, True

    if not fer_ready(args.fer_venv):
        if args.no_install:
            print(f"the `fer` package is not installed in {args.fer_venv} and --no-install was given: "
                  "refusing to print a comparison (run without --no-install to install it)")
            return 2
        try:
            install_fer(args.fer_venv)
        except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
            print(f"cannot install the `fer` package ({exc}): refusing to print a comparison")
            return 2

    from fer.inference import EmotionRecognizer

    frames = np.stack([s.image for s in scenes.moving_face(args.frames)])
    live, photo = EmotionRecognizer(profile="live"), EmotionRecognizer()
    print(f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} before the run; "
          f"{len(frames)} frames 640x480, one moving face")
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "frames.npy"), frames)
        worker = FerWorker(args.fer_venv, FER_WORKER, [os.path.join(tmp, "frames.npy")], tmp)
        fer_name = f"`fer` package {FER_VERSION}: FER().detect_emotions (Haar + TFLite)"
        ours = {**live_variants(live), "photo: EmotionRecognizer().analyze (ensemble, flip TTA, refinement)":
                lambda fr: sum(len(photo.analyze(f)) > 0 for f in fr)}
        contenders = {fer_name: worker.ask,
                      **{name: (lambda fn=fn: timed(fn, frames)) for name, fn in ours.items()},
                      **classifier_variants(live, frames)}
        try:
            best = run_rounds(contenders, args.rounds)
        finally:
            worker.close()
    report(best, len(frames), fer_name)
    live_ms = best["+ detect every 5th frame, track in between (= live stream)"]["ms"]
    photo_ms = best["photo: EmotionRecognizer().analyze (ensemble, flip TTA, refinement)"]["ms"]
    fer_ms = best[fer_name]["ms"]
    print(f"\nlive stream {live_ms:.1f} ms/frame = {fer_ms / live_ms:.1f}x the `fer` package ({fer_ms:.1f} ms); "
          f"photo path {photo_ms:.1f} ms/frame = {fer_ms / photo_ms:.1f}x")
    print(f"targets: live <= 8.5 ms/frame: {'met' if live_ms <= 8.5 else 'NOT met'}; "
          f">= 4x the `fer` package: {'met' if fer_ms / live_ms >= 4 else 'NOT met'}")
    print(f"load average {os.getloadavg()[0]:.1f} after the run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
