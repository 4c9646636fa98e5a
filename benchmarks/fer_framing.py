"""Measure how FER2013 frames its faces, and draw docs/framing.png (FER2013 crops vs pipeline crops).

    python benchmarks/fer_framing.py [--data ../shared/data/fer2013] [--n 300] [--picture docs/framing.png]

1. Runs the face detector (CenterFace with refinement, and Haar) on ``--n`` random FER2013 test
   crops, each enlarged 4x with a 48 px grey border (a detector needs some context), and prints
   the median landmark positions and boxes in 48x48 units: the numbers behind
   ``fer.faces.FER2013_LANDMARKS`` and ``fer.faces.FER2013_BOXES``.
2. Writes a picture: a row of FER2013 crops, then crops the pipeline makes from the photographs
   in tests/data, plain and made harder (small, tilted, dim, mirrored, turned).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import scenes  # noqa: E402
from fer.data import shared_data_dir  # noqa: E402
from fer.faces import FER2013_LANDMARKS, crop_faces, detect_faces  # noqa: E402

UP, PAD = 4, 48 * 4 // 2


def _enlarge(gray48: np.ndarray) -> np.ndarray:
    big = cv2.resize(gray48, (48 * UP, 48 * UP), interpolation=cv2.INTER_CUBIC)
    big = cv2.copyMakeBorder(big, PAD, PAD, PAD, PAD, cv2.BORDER_CONSTANT, value=128)
    return cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)


def _central_face(faces: list, side: int):
    near = [f for f in faces if abs(f.box[0] + f.box[2] / 2 - side / 2) < 48 * UP / 4]
    return max(near, key=lambda f: f.score) if near else None


def measure(files: list[Path]) -> None:
    marks, boxes, haar_boxes = [], [], []
    for path in files:
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if gray is None or gray.shape != (48, 48):
            continue
        big = _enlarge(gray)
        face = _central_face(detect_faces(big), big.shape[1])
        if face is not None:
            marks.append((np.array(face.landmarks) - PAD) / UP)
            boxes.append((np.array(_corners(face.box)) - PAD) / UP)
        haar = _central_face(detect_faces(big, detector="haar"), big.shape[1])
        if haar is not None:
            haar_boxes.append((np.array(_corners(haar.box)) - PAD) / UP)
    marks = np.array(marks)
    names = ("left eye", "right eye", "nose", "left mouth", "right mouth")
    print(f"CenterFace found {len(marks)}/{len(files)} FER2013 faces; landmarks (x, y), 48 px units:")
    for k, name in enumerate(names):
        med, iqr = np.median(marks[:, k], 0), np.subtract(*np.percentile(marks[:, k], [75, 25], 0))
        print(f"  {name:11s} median ({med[0]:5.2f}, {med[1]:5.2f})  IQR ({iqr[0]:.1f}, {iqr[1]:.1f})"
              f"  fer.faces template ({FER2013_LANDMARKS[k, 0]:5.2f}, {FER2013_LANDMARKS[k, 1]:5.2f})")
    med = np.median(marks, 0)
    mirrored = (med + np.array([[48, 0]]) - med[[1, 0, 2, 4, 3]] * np.array([[1, -1]])) / 2  # average with mirror image
    print(f"  symmetric template: {np.round(mirrored, 2).tolist()}")
    print(f"  CenterFace box (x1, y1, x2, y2) median {np.round(np.median(boxes, 0), 1).tolist()}")
    print(f"Haar found {len(haar_boxes)}/{len(files)}; box median {np.round(np.median(haar_boxes, 0), 1).tolist()}")


def _corners(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    x, y, w, h = box
    return x, y, x + w, y + h


def picture(files: list[Path], out: Path) -> None:
    fer_row = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in files[:8]]
    cases = [scenes.Scene("astronaut", scenes.load("astronaut.jpg"), []),
             scenes.Scene("grace_hopper", scenes.load("grace_hopper.jpg"), []),
             scenes.Scene("camera", scenes.load("camera.jpg"), []),
             scenes.portrait("astronaut.jpg", 40), scenes.portrait("grace_hopper.jpg", 120, 30),
             scenes.portrait("astronaut.jpg", 120, -30, mirror=True),
             scenes.portrait("grace_hopper.jpg", 120, light=0.25), scenes.portrait("camera.jpg", 80, mirror=True)]
    ours = [crop_faces(c.image, detect_faces(c.image)[:1])[0] for c in cases]
    labels = ["photo", "photo", "photo, turned", "40 px face", "tilted 30", "tilted -30, mirrored", "dim (x0.25)",
              "turned, 80 px"]
    scale = 3
    rows = [_row(fer_row, ["FER2013"] * len(fer_row), scale), _row(ours, labels, scale)]
    sheet = np.vstack([_title("FER2013 test crops (48x48)", rows[0].shape[1]), rows[0],
                       _title("fer pipeline crops from photographs (48x48)", rows[1].shape[1]), rows[1]])
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), sheet)
    print(f"wrote {out}")


def _row(images: list[np.ndarray], labels: list[str], scale: int) -> np.ndarray:
    tiles = []
    for img, label in zip(images, labels):
        big = cv2.resize(img, (48 * scale, 48 * scale), interpolation=cv2.INTER_NEAREST)
        tile = cv2.copyMakeBorder(big, 2, 22, 2, 2, cv2.BORDER_CONSTANT, value=255)
        cv2.putText(tile, label, (4, tile.shape[0] - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.38, 0, 1, cv2.LINE_AA)
        tiles.append(tile)
    return np.hstack(tiles)


def _title(text: str, width: int) -> np.ndarray:
    bar = np.full((26, width), 255, np.uint8)
    cv2.putText(bar, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, 0, 1, cv2.LINE_AA)
    return bar


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(shared_data_dir() / "fer2013"),
                        help="FER2013 in the Kaggle folder layout (uses test/<emotion>/*.jpg)")
    parser.add_argument("--n", type=int, default=300, help="how many random test crops to measure")
    parser.add_argument("--picture", default=str(ROOT / "docs" / "framing.png"))
    parser.add_argument("--no-measure", action="store_true", help="only draw the picture")
    args = parser.parse_args()
    files = sorted(Path(args.data, "test").glob("*/*.jpg"))
    if not files:
        raise SystemExit(f"no FER2013 crops under {args.data}/test/<emotion>/*.jpg; pass --data")
    random.Random(0).shuffle(files)
    if not args.no_measure:
        measure(files[: args.n])
    picture(files, Path(args.picture))


if __name__ == "__main__":
    main()
