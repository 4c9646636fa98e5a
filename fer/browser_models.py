"""What the Live page's in-browser mode serves: ONNX files for onnxruntime-web and the live recipe's numbers.

::

    bundle = browser_bundle(browser_profile(), out_dir)           # writes two content-keyed .onnx files
    bundle.detector, bundle.model                                 # their names in out_dir
    bundle.config()                                               # the numbers the page's JavaScript uses

The browser runs the same steps as :class:`fer.stream.LiveStream` (see ``ui/browser_live/``): the
same CenterFace graph (with free input sizes, :func:`fer.detectors.free_shape_model`), the
emotion graph that ONNX Runtime runs here for one model under the live recipe (:func:`browser_profile`:
for the shipped models, the live profile's first member alone, as its committed 8-bit graph
:func:`fer.quantize.committed_int8`), and every number
(thresholds, framing template, prior and tau, smoothing) read from this package, never retyped in JS.
No Streamlit and no Keras here.
"""

from __future__ import annotations

import hashlib
import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUNDLE_FORMAT = 1
"""Bumped when the config's fields change incompatibly (the page reads only the fields it knows, by name)."""


@dataclass(frozen=True)
class BrowserBundle:
    """Two ONNX files in ``folder`` and the live recipe's numbers (:meth:`config`)."""

    folder: Path
    detector: str
    model: str
    recipe: dict[str, Any] = field(default_factory=dict)
    precision: str = "float32"  # of the emotion graph: "int8" for a committed 8-bit graph (browser_profile)

    def config(self) -> dict[str, Any]:
        """JSON-friendly arguments for the page: file names, the emotion graph's precision and the recipe."""
        return {"format": BUNDLE_FORMAT, "detector": self.detector, "model": self.model,
                "precision": self.precision, **self.recipe}


def _defaults(fn) -> dict[str, Any]:
    params = inspect.signature(fn).parameters.items()
    return {k: p.default for k, p in params if p.default is not inspect.Parameter.empty}


def live_recipe(ensemble) -> dict[str, Any]:
    """The numbers of the live path for ``ensemble`` (an :class:`fer.onnx_runtime.OnnxEnsemble`)."""
    from fer.detectors import NMS_IOU, REFINE_MIN_SCORE, REFINE_SIZE, CenterFace
    from fer.faces import FER2013_BOXES, FER2013_LANDMARKS
    from fer.images import FACE_SIZE
    from fer.inference import EmotionRecognizer, FaceTracker
    from fer.stream import LK_PARAMS, LiveStream

    stream, rec, tracker = _defaults(LiveStream.__init__), _defaults(EmotionRecognizer.__init__), _defaults(
        FaceTracker.__init__)
    prior = None if ensemble.prior is None else [float(p) for p in ensemble.prior]
    return {
        "labels": list(ensemble.cards[0].labels), "prior": prior, "tau": float(ensemble.tau),
        "face_size": FACE_SIZE, "landmarks": FER2013_LANDMARKS.tolist(),
        "box_template": list(FER2013_BOXES["centerface"]),
        "stride": CenterFace.STRIDE, "nms_iou": NMS_IOU, "refine_size": REFINE_SIZE,
        "refine_min_score": REFINE_MIN_SCORE, "refine": bool(rec["refine"]), "min_score": float(rec["min_score"]),
        "input_size": int(rec["input_size"]), "detect_size": int(stream["detect_size"]),
        "detect_every": int(stream["detect_every"]), "stable_eyes": float(stream["stable_eyes"]),
        "max_flow_error": float(stream["max_flow_error"]), "flow_window": int(LK_PARAMS["winSize"][0]),
        "flow_levels": int(LK_PARAMS["maxLevel"]),
        "alpha": float(tracker["alpha"]), "iou_threshold": float(tracker["iou_threshold"]),
        "max_missed": int(tracker["max_missed"]),
    }


KEEP_FILES = 8
"""How many files of one kind (``emotion-*.onnx``) the folder keeps: the most recently used."""


def _write_keyed(folder: Path, stem: str, data: bytes) -> str:
    """``data`` as ``folder/stem-<sha256 prefix>.onnx`` (written once, atomically; touched when reused);
    returns the name. Files of the same stem beyond the :data:`KEEP_FILES` most recently used are removed."""
    name = f"{stem}-{hashlib.sha256(data).hexdigest()[:16]}.onnx"
    target = folder / name
    if target.is_file():
        target.touch()
    else:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    old = sorted(folder.glob(f"{stem}-*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)[KEEP_FILES:]
    for path in old:
        path.unlink(missing_ok=True)
    return name


def browser_profile(model: str | Path | None = None, int8: bool = True):
    """What the in-browser mode runs: ``model`` (a .keras path), or for the shipped models (None) the live
    profile's first member, alone under the live recipe (one pass, the prior and tau of its own card), as
    an :class:`fer.onnx_runtime.OnnxEnsemble`. The live profile's other members stay on the server: on
    the page's one WASM thread the pretrained effnet member costs about 30 ms a frame more
    (docs/browser_live.md): 10.7 instead of 17.8 processed frames/s there.

    With ``int8`` (the default) a model with a current committed 8-bit graph (:func:`fer.quantize.committed_int8`,
    ``models/fer_default.int8.onnx``) runs that graph: about 1.5x faster classification in the page at the same
    accuracy. Other models (trained or calibrated here) run their float32 graph.
    """
    from dataclasses import replace

    from fer.onnx_runtime import load_onnx_profile
    from fer.profiles import member_files
    from fer.quantize import committed_int8

    if model is None:
        model = member_files("live")[0][0]
    ensemble = load_onnx_profile("live", model)
    small = committed_int8(model) if int8 else None
    return ensemble if small is None else replace(ensemble, graphs=[small], info={**ensemble.info, "precision": "int8"})


def browser_bundle(ensemble, folder: str | Path) -> BrowserBundle:
    """Write the detector's and ``ensemble``'s ONNX graphs into ``folder`` (content-keyed, so a new model
    gets new names and browsers never use a stale cached file) and return them with the recipe.

    ``ensemble`` must be one model with no test-time augmentation (the live recipe); ValueError otherwise.
    """
    from fer.detectors import centerface_model_path, free_shape_model

    if len(ensemble.graphs) != 1 or ensemble.tta is not None:
        raise ValueError(f"the in-browser live mode runs one model in one pass; this profile has "
                         f"{len(ensemble.graphs)} model(s) with tta={ensemble.tta!r}: use browser_profile()")
    folder = Path(folder)
    try:
        detector = _write_keyed(folder, "centerface", free_shape_model(centerface_model_path()))
        model = _write_keyed(folder, "emotion", ensemble.graphs[0])
    except OSError as exc:
        raise ValueError(f"cannot write the in-browser models into {folder} ({exc}); "
                         "make the folder writable or use the server mode") from None
    return BrowserBundle(folder, detector, model, live_recipe(ensemble), ensemble.info.get("precision", "float32"))
