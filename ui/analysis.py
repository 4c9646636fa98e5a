"""Photo analysis for the Analyze page: decode uploads, run the recognizer, build tables and downloads.

No Streamlit here; the page calls these and renders the results.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePath

import numpy as np
from PIL import Image

from fer.images import load_bgr
from fer.labels import EMOTIONS

UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif"]
DISPLAY_MAX_SIDE = 1600

NO_FACE_HINTS = (
    "the face is turned more than about 45° away from the camera, or only partly in the picture",
    "the face is very small (under about 40 pixels across) or the photo is blurred",
    "the photo is very dark, backlit or heavily filtered, or the face is covered (mask, hands, hair)",
    "the detector confidence is set too high for this photo: lower it and try again",
)


@dataclass
class ImageAnalysis:
    """The outcome for one image: the annotated picture and one record per face."""

    name: str
    width: int = 0
    height: int = 0
    annotated: np.ndarray | None = None  # RGB uint8, full size
    faces: list[dict] = field(default_factory=list)  # see face_record()
    crops: list[np.ndarray] = field(default_factory=list)  # 48x48 uint8 gray, one per face
    error: str | None = None


def decode_upload(data: bytes) -> np.ndarray:
    """Bytes of an image file -> BGR array; ``ValueError`` with a clear message on bad input."""
    if not data:
        raise ValueError("the file is empty")
    return load_bgr(bytes(data))


def face_record(index: int, face) -> dict:
    """A plain, JSON-ready record of one :class:`fer.FaceResult`."""
    x, y, w, h = (int(v) for v in face.box)
    return {
        "face": index,
        "emotion": str(face.emotion),
        "score": round(float(face.score), 4),
        "x": x, "y": y, "width": w, "height": h,
        "detector_score": round(float(face.detector_score), 4),
        "scores": {e: round(float(face.scores.get(e, 0.0)), 4) for e in EMOTIONS},
    }


def analyze_image(recognizer, name: str, data: bytes, min_score: float) -> ImageAnalysis:
    """Decode and analyse one uploaded image; decoding errors land in ``.error``, not an exception."""
    from fer.draw import draw

    out = ImageAnalysis(name=name)
    try:
        bgr = decode_upload(data)
    except ValueError as exc:
        out.error = str(exc)
        return out
    out.height, out.width = bgr.shape[:2]
    results = recognizer.analyze(bgr, min_score=min_score)
    results = sorted(results, key=lambda r: (int(r.box[0]), int(r.box[1])))
    out.annotated = np.ascontiguousarray(draw(bgr, results)[..., ::-1])
    out.faces = [face_record(i + 1, r) for i, r in enumerate(results)]
    out.crops = [np.asarray(r.crop, dtype=np.uint8) for r in results]
    return out


def explain_overlays(recognizer, analysis: ImageAnalysis, size: int = 144) -> list[np.ndarray]:
    """"Why this label?": per face, its crop (RGB, ``size`` px) with the regions that drove its label
    in warm colours (occlusion sensitivity, :mod:`fer.explain`; about 50 forward passes per face)."""
    from fer.explain import explain_faces, overlay

    whys = explain_faces(recognizer, analysis.crops, targets=[f["emotion"] for f in analysis.faces])
    return [overlay(crop, why.heatmap, size=size, channels="rgb") for crop, why in zip(analysis.crops, whys)]


def display_copy(rgb: np.ndarray, max_side: int = DISPLAY_MAX_SIDE) -> np.ndarray:
    """A downscaled copy for the page (the downloads keep full size)."""
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return rgb
    import cv2

    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def table_rows(analyses: list[ImageAnalysis]) -> list[dict]:
    """One flat row per face (image, face, emotion, score, box, one column per emotion)."""
    rows = []
    for a in analyses:
        for f in a.faces:
            row = {"image": a.name, **{k: v for k, v in f.items() if k != "scores"}}
            row.update({f"p_{e}": f["scores"][e] for e in EMOTIONS})
            rows.append(row)
    return rows


def results_csv(analyses: list[ImageAnalysis]) -> bytes:
    rows = table_rows(analyses)
    columns = ["image", "face", "emotion", "score", "x", "y", "width", "height", "detector_score",
               *[f"p_{e}" for e in EMOTIONS]]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


def results_json(analyses: list[ImageAnalysis], model: str) -> bytes:
    doc = {
        "model": model,
        "labels": list(EMOTIONS),
        "images": [{"image": a.name, "width": a.width, "height": a.height, "error": a.error, "faces": a.faces}
                   for a in analyses],
    }
    return json.dumps(doc, indent=2).encode()


def annotated_name(name: str) -> str:
    return f"{PurePath(name).stem}_annotated.png"


def annotated_png(analysis: ImageAnalysis) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(analysis.annotated).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def annotated_zip(analyses: list[ImageAnalysis]) -> bytes:
    """All annotated images as PNGs in one zip (names made unique)."""
    buf = io.BytesIO()
    used: set[str] = set()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for a in analyses:
            if a.annotated is None:
                continue
            base = name = annotated_name(a.name)
            n = 1
            while name in used:
                n += 1
                name = base.replace("_annotated.png", f"_annotated_{n}.png")
            used.add(name)
            zf.writestr(name, annotated_png(a))
    return buf.getvalue()
