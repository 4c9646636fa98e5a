"""fer: facial-expression recognition for the 7 FER2013 emotions, on Keras 3.

The public API is small and imported lazily, so ``import fer`` stays light (no TensorFlow until a
model is needed)::

    import fer
    data = fer.load_dataset("data/fer2013")             # csv, Kaggle folders or class tree
    model = fer.build_model("vgg")                      # or "seed", the reference baseline
    model, card = fer.load_model()                      # the shipped default model + its card
    fer.evaluate(model, data.split("public_test"))      # accuracy, per-class, confusion
"""

from __future__ import annotations

from importlib import import_module

from fer.labels import EMOTIONS, NUM_CLASSES, SPLITS

_LAZY = {
    "load_dataset": "fer.data",
    "Dataset": "fer.data",
    "Split": "fer.data",
    "build_model": "fer.model",
    "ARCHITECTURES": "fer.model",
    "load_model": "fer.modelfile",
    "save_model": "fer.modelfile",
    "ModelCard": "fer.modelfile",
    "TrainConfig": "fer.training",
    "train": "fer.training",
    "evaluate": "fer.evaluate",
    "EmotionRecognizer": "fer.inference",
    "FaceResult": "fer.inference",
    "FaceTracker": "fer.inference",
    "LiveStream": "fer.stream",
    "detect_faces": "fer.faces",
    "draw": "fer.draw",
    "occlusion_map": "fer.explain",
    "explain_faces": "fer.explain",
    "Explanation": "fer.explain",
    "analyze_video": "fer.video",
    "probe_video": "fer.video",
    "VideoLimits": "fer.video",
    "VideoResult": "fer.video",
}

__all__ = ["EMOTIONS", "NUM_CLASSES", "SPLITS", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fer' has no attribute {name!r}")
