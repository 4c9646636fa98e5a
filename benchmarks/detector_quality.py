"""Face-detector quality and speed on composed scenes with known face boxes: CenterFace vs Haar.

    python benchmarks/detector_quality.py [--repeat 5] [--min-score 0.5]

The set (tests/scenes.py: ``benchmark_set``) is made from the real photographs in tests/data:
3 portraits (frontal; frontal with glasses and cap; turned ~45-60 degrees), each also mirrored,
at 300/160/80/40 px face width, rotated +30/-30 degrees, in dim light (x0.25), small+tilted+dim,
two 10-face grids (60 px and 40 px faces), three 5-face groups (random size and tilt), and 8
face-free images (coffee, a cat's face, crops, noise, a gradient): 61 images, 83 faces.
A face counts as found when a detection overlaps its true box with IoU >= 0.3 (one-to-one);
every other detection is a false positive. Time: median ms per 640x480 image, first call
excluded. ``--alignment`` adds the precision of the eye line on faces rotated -40..+40 degrees
(60 and 160 px), first-pass landmarks vs refined ones.

``--conditions`` measures the whole photo pipeline under :data:`fer.corruptions.PHOTO_CONDITIONS`
(shrunk to a half and a quarter, dark, noisy, blurred, JPEG quality 12): on the set's face scenes,
the faces the default detector still finds, and with ``EmotionRecognizer(profile=...)`` the faces that
keep the label they get in the clean photo (a face matched to its true box, IoU >= 0.3).

``--big-photos`` measures camera-sized photos (``tests/scenes.py``'s ``big_photo``: 4000x3000 and
2000x1500, 12 faces 40-160 px wide and one 20-30% of the width): the one-pass detector at 320 (the
app's working size) and 640 (``predict``, ``batch``, ``serve``) against the same with the finer pass
that ``min_face`` adds (:func:`fer.faces.detector_sizes`), faces found by width and ms per photo.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from functools import lru_cache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import numpy as np  # noqa: E402

import scenes  # noqa: E402
from fer.detectors import HaarDetector  # noqa: E402
from fer.faces import detect_in_bgr  # noqa: E402


@lru_cache(maxsize=1)
def _haar_fer() -> HaarDetector:
    """Haar with the `fer` package's defaults (scaleFactor 1.1, minNeighbors 5, minSize 50)."""
    return HaarDetector(min_size=50)


def _boxes_haar_fer(bgr: np.ndarray, min_score: float) -> list[tuple[int, int, int, int]]:
    return [(round(r.x1), round(r.y1), round(r.x2 - r.x1), round(r.y2 - r.y1)) for r in _haar_fer()(bgr, min_score)]


def configs() -> dict:
    """name -> function(bgr, min_score) -> list of (x, y, w, h)."""
    def ours(detector: str, size: int = 320):
        return lambda bgr, s: [f.box for f in detect_in_bgr(bgr, s, detector, size)]

    return {
        "CenterFace, input 320 (default)": ours("centerface", 320),
        "CenterFace, input 480": ours("centerface", 480),
        "CenterFace, input 640": ours("centerface", 640),
        "Haar, min 24 px (fer.faces 'haar')": ours("haar"),
        "Haar, `fer` package settings (min 50 px)": _boxes_haar_fer,
    }


def evaluate(fn, data: list, min_score: float, repeat: int) -> dict:
    found = total = fp = fp_images = 0
    times, misses = [], []
    fn(data[0].image, min_score)  # warm-up (model load)
    for scene in data:
        boxes = fn(scene.image, min_score)
        got, false = scenes.match(boxes, scene.boxes)
        found, total, fp = found + got, total + len(scene.boxes), fp + false
        fp_images += bool(false)
        if got < len(scene.boxes):
            misses.append(f"{scene.name} ({got}/{len(scene.boxes)})")
        if scene.image.shape[:2] == (480, 640):
            for _ in range(repeat):
                t = time.perf_counter()
                fn(scene.image, min_score)
                times.append(time.perf_counter() - t)
    return {"found": found, "total": total, "fp": fp, "fp_images": fp_images,
            "ms": 1000 * float(np.median(times)), "misses": misses}


def alignment() -> None:
    """Eye-line angle error over known rotations: first-pass landmarks vs refined ones."""
    print("\n| portrait | eye-angle spread, first pass (deg) | refined (deg) | worst error, first pass | refined |")
    print("|---|---|---|---|---|")
    for name in scenes.FACES:
        errors = {False: [], True: []}
        for refine in (False, True):
            for px in (60, 160):
                for angle in range(-40, 41, 10):
                    faces = detect_in_bgr(scenes.portrait(name, px, angle).image, 0.5, refine=refine)
                    if faces:
                        (lx, ly), (rx, ry) = faces[0].eyes
                        errors[refine].append(np.degrees(np.arctan2(ry - ly, rx - lx)) + angle)
        # the photo's own eye angle is unknown: measure around each method's median
        spread = {k: np.std(v) for k, v in errors.items()}
        worst = {k: np.max(np.abs(np.array(v) - np.median(v))) for k, v in errors.items()}
        print(f"| {name} | {spread[False]:.1f} | {spread[True]:.1f} | {worst[False]:.1f} | {worst[True]:.1f} |")


def _labels_by_truth(results, truth: list, scale: float) -> dict[int, str]:
    """Index of each true box -> the label of the detected face that overlaps it best (IoU >= 0.3)."""
    out = {}
    for i, box in enumerate(truth):
        scaled = tuple(round(v * scale) for v in box)
        best = max(results, key=lambda r: scenes.iou(r.box, scaled), default=None)
        if best is not None and scenes.iou(best.box, scaled) >= 0.3:
            out[i] = best.emotion
    return out


def conditions(profile: str, input_size: int | None) -> None:
    """Faces found, and labels kept, per whole-photo condition."""
    from fer import EmotionRecognizer
    from fer.corruptions import PHOTO_CONDITIONS, degrade_photo, photo_scale

    rec = EmotionRecognizer(profile=profile)
    data = [s for s in scenes.benchmark_set() if s.boxes]
    clean = [_labels_by_truth(rec.analyze(s.image, input_size=input_size), s.boxes, 1.0) for s in data]
    total = sum(len(s.boxes) for s in data)
    print(f"\n{len(data)} face scenes, {total} faces; profile {profile}; detector input "
          f"{input_size or 'default'}; clean: {sum(map(len, clean))}/{total} found\n")
    print("| photo condition | faces found | label kept (of the faces found clean) |")
    print("|---|---|---|")
    kept_by = Counter()  # portrait -> labels kept, over all conditions
    for cond, what in PHOTO_CONDITIONS.items():
        found = kept = 0
        for k, (scene, ref) in enumerate(zip(data, clean)):
            img = degrade_photo(scene.image, cond, seed=k)
            got = _labels_by_truth(rec.analyze(img, input_size=input_size), scene.boxes, photo_scale(cond))
            found += len(got)
            for i, label in ref.items():
                hit = got.get(i) == label
                kept += hit
                kept_by[scene.sources[i]] += hit
        print(f"| {cond}: {what} | {found}/{total} | {kept}/{sum(map(len, clean))} |", flush=True)
    print("\n| portrait | clean labels | label kept, all conditions |\n|---|---|---|")
    for name in sorted({name for s in data for name in s.sources}):
        labels = Counter(ref[i] for scene, ref in zip(data, clean) for i in ref if scene.sources[i] == name)
        print(f"| {name} | {', '.join(f'{n} {e}' for e, n in labels.most_common())} | "
              f"{kept_by[name]}/{labels.total() * len(PHOTO_CONDITIONS)} |")


def big_photos(min_score: float) -> None:
    """Faces found in camera-sized photos, one pass against two (the ``min_face`` pyramid)."""
    from fer.faces import PHOTO_MIN_FACE, detector_sizes

    data = [scenes.big_photo(seed, size) for size in ((4000, 3000), (2000, 1500)) for seed in range(4)]
    bins = ((0, 60), (60, 100), (100, 160), (160, 10**6))
    print(f"{len(data)} photos (4 of 4000x3000, 4 of 2000x1500), {sum(len(s.boxes) for s in data)} faces; "
          f"{os.cpu_count()} CPU cores; load average {os.getloadavg()[0]:.1f}\n")
    print("| working sizes | faces < 60 px wide | 60-100 px | 100-160 px | 160 px and more "
          "| false positives | ms / photo (median) |")
    print("|---|---|---|---|---|---|---|")
    for base in (320, 640):
        for min_face in (0, PHOTO_MIN_FACE):
            found, total, fp, times = [0] * len(bins), [0] * len(bins), 0, []
            detect_in_bgr(data[0].image, min_score, "centerface", base, True, min_face)  # warm-up
            for scene in data:
                t = time.perf_counter()
                boxes = [f.box for f in detect_in_bgr(scene.image, min_score, "centerface", base, True, min_face)]
                times.append(time.perf_counter() - t)
                fp += scenes.match(boxes, scene.boxes)[1]
                for k, (lo, hi) in enumerate(bins):
                    truth = [b for b in scene.boxes if lo <= b[2] < hi]
                    found[k] += scenes.match(boxes, truth)[0]
                    total[k] += len(truth)
            finer = sorted({sz for sc in data for sz in detector_sizes(*sc.image.shape[:2], base, min_face)[1:]})
            label = f"{base}, one pass" if not finer else \
                f"{base} + {' or '.join(map(str, finer))} (min_face {min_face})"
            cells = " | ".join(f"{f}/{t}" for f, t in zip(found, total))
            print(f"| {label} | {cells} | {fp} | {1000 * float(np.median(times)):.0f} |", flush=True)
    print("\nMemory of a fresh process that loads one 4000x3000 photo and detects its faces (MB):\n")
    print("| min_face | peak RSS | RSS after |\n|---|---:|---:|")
    for min_face in (0, PHOTO_MIN_FACE):
        peak, after = _memory_of_one_photo(data[0].image, min_face)
        print(f"| {min_face} | {peak} | {after} |", flush=True)


_MEMORY_PROBE = """
import sys
import numpy as np
from fer.faces import detect_faces
detect_faces(np.load(sys.argv[1]), min_face=int(sys.argv[2]))
kb = dict(line.split(":") for line in open("/proc/self/status") if line.startswith(("VmHWM", "VmRSS")))
print(*(int(kb[k].split()[0]) // 1024 for k in ("VmHWM", "VmRSS")))
"""
# VmHWM, not ru_maxrss: a forked child's ru_maxrss starts at its parent's, this script's large one


def _memory_of_one_photo(image: np.ndarray, min_face: int) -> tuple[int, int]:
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "photo.npy")
        np.save(path, image)
        out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, path, str(min_face)], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    return int(out[-2]), int(out[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per 640x480 image")
    parser.add_argument("--min-score", type=float, default=0.5)
    parser.add_argument("--only", help="run only configurations whose name contains this text")
    parser.add_argument("--misses", action="store_true", help="list the scenes with missed faces")
    parser.add_argument("--alignment", action="store_true", help="also measure eye-angle precision on tilted faces")
    parser.add_argument("--conditions", action="store_true",
                        help="only the whole photo pipeline under degraded photos (faces found, labels kept)")
    parser.add_argument("--profile", default="photo", help="with --conditions: the profile (default photo)")
    parser.add_argument("--input-size", type=int, help="with --conditions: the detector's working size")
    parser.add_argument("--big-photos", action="store_true",
                        help="only camera-sized photos: one detector pass against the min_face pyramid")
    args = parser.parse_args()
    if args.conditions:
        conditions(args.profile, args.input_size)
        return
    if args.big_photos:
        big_photos(args.min_score)
        return
    data = scenes.benchmark_set()
    print(f"{len(data)} images, {sum(len(s.boxes) for s in data)} faces; {os.cpu_count()} CPU cores; "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| detector | found | false positives (images) | ms / 640x480 image (median) |")
    print("|---|---|---|---|")
    for name, fn in configs().items():
        if args.only and args.only.lower() not in name.lower():
            continue
        r = evaluate(fn, data, args.min_score, args.repeat)
        print(f"| {name} | {r['found']}/{r['total']} | {r['fp']} ({r['fp_images']}) | {r['ms']:.1f} |", flush=True)
        if args.misses and r["misses"]:
            print(f"|   missed: {'; '.join(r['misses'])} | | | |")
    if args.alignment:
        alignment()


if __name__ == "__main__":
    main()
