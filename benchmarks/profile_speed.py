"""Milliseconds per face of a profile under several manifests, on Keras and on ONNX Runtime, as ratios to the first.

    git worktree add ../before HEAD~5     # another version of the repository, its models beside its manifest
    python benchmarks/profile_speed.py ../before/models/profiles.json models/profiles.json [--profile photo]

For each manifest (``models/profiles.json`` or a copy of another version, whose member files lie in the
same folder), in one process and one run: the profile's whole recipe (every member, its TTA views,
the weights and the prior correction) on one face and on a batch of 8 faces (a group photo), through
the Keras models (:func:`fer.profiles.load_profile`) and through ONNX Runtime with one thread
(:func:`fer.onnx_runtime.load_onnx_profile`). Each figure is the median of ``--repeats`` calls after
warm-up; the ratio columns divide by the first manifest's figure in the same run, so they hold on a
loaded machine. The last column is the whole live stream on ONNX Runtime
(``EmotionRecognizer(...).stream()``: detection every 5th frame, tracking, every face classified),
ms per 640x480 frame of ``--stream-frames`` frames of one moving face (``tests/scenes.py``), the best
of 3 rounds, the manifests taking turns in each round (0: no stream column).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "tests")]

import numpy as np  # noqa: E402
from member_speed import median_ms  # noqa: E402  (median ms per face of a call, after warm-up)


def measure(manifest: Path, profile: str, repeats: int) -> dict[str, float]:
    from fer.onnx_runtime import load_onnx_profile
    from fer.profiles import load_profile

    faces = np.random.default_rng(0).integers(0, 256, (8, 48, 48), dtype=np.uint8)
    out = {}
    for engine, ensemble in (("keras", load_profile(profile, manifest=manifest)),
                             ("onnx", load_onnx_profile(profile, manifest=manifest))):
        out[f"{engine}, 1 face"] = median_ms(ensemble.probabilities, faces[:1], repeats)
        out[f"{engine}, 8 faces"] = median_ms(ensemble.probabilities, faces, repeats)
    return out


def stream_ms(manifests: list[Path], profile: str, n_frames: int, rounds: int = 3) -> list[float]:
    """Per manifest: the best of ``rounds`` ms per frame of the profile's live stream on ONNX Runtime."""
    import fer
    import scenes
    from fer.onnx_runtime import load_onnx_profile

    frames = [s.image for s in scenes.moving_face(n_frames)]
    recognizers = [fer.EmotionRecognizer(load_onnx_profile(profile, manifest=m), profile=profile) for m in manifests]
    best = [float("inf")] * len(manifests)
    for _ in range(rounds):
        for i, rec in enumerate(recognizers):
            stream = rec.stream()
            start = time.perf_counter()
            for frame in frames:
                stream.process(frame)
            best[i] = min(best[i], 1000 * (time.perf_counter() - start) / len(frames))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifests", nargs="+", type=Path, help="profiles.json files; the first is the baseline")
    parser.add_argument("--profile", default="photo", choices=("photo", "live"))
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--stream-frames", type=int, default=60, help="frames for the stream column (0: none)")
    args = parser.parse_args(argv)
    if args.stream_frames < 0:
        parser.error("--stream-frames must be 0 or more")
    missing = [str(m) for m in args.manifests if not m.is_file()]
    if missing:
        parser.error(f"no such manifest: {', '.join(missing)}")
    from fer.profiles import member_files

    rows = [(m, member_files(args.profile, m)[0], measure(m, args.profile, args.repeats)) for m in args.manifests]
    if args.stream_frames > 0:
        for (_, _, ms), frame_ms in zip(rows, stream_ms(args.manifests, args.profile, args.stream_frames)):
            ms["stream, ms / frame"] = frame_ms
    keys = list(rows[0][2])
    print(f"profile {args.profile}, ms per face (median of {args.repeats}); ratio to the first manifest\n")
    print("| manifest | members | " + " | ".join(keys) + " |")
    print("|---|---|" + "---:|" * len(keys))
    base = rows[0][2]
    for manifest, files, ms in rows:
        cells = " | ".join(f"{ms[k]:.2f}" + (f" ({ms[k] / base[k]:.2f}x)" if ms is not base else "") for k in keys)
        print(f"| {manifest} | {', '.join(f.stem for f in files)} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
