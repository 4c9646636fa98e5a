"""The one source of truth for the emotion labels and their order (FER2013 ids)."""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""Label names in FER2013 id order: index i is the class with ``emotion == i`` in fer2013.csv."""

NUM_CLASSES = len(EMOTIONS)

SPLITS: tuple[str, ...] = ("train", "public_test", "private_test")
"""Split names used everywhere (CLI, API, model card)."""

# fer2013.csv "Usage" column and test/ file-name prefixes -> split names.
USAGE_TO_SPLIT = {"training": "train", "publictest": "public_test", "privatetest": "private_test"}

_ALIASES = {
    "angry": ("anger", "angry", "mad"),
    "disgust": ("disgust", "disgusted", "disgusting"),
    "fear": ("fear", "fearful", "afraid", "scared"),
    "happy": ("happy", "happiness", "joy", "happiness_joy", "smile"),
    "sad": ("sad", "sadness", "unhappy"),
    "surprise": ("surprise", "surprised", "suprise"),
    "neutral": ("neutral", "calm", "none"),
}
ALIASES: dict[str, str] = {a: name for name, names in _ALIASES.items() for a in names}


def label_index(name: str) -> int | None:
    """Return the class id for a folder or label name (case-insensitive, aliases allowed), or None."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    canonical = ALIASES.get(key)
    if canonical is None and key.isdigit() and int(key) < NUM_CLASSES:
        return int(key)
    return None if canonical is None else EMOTIONS.index(canonical)


def accepted_names() -> str:
    """A human-readable list of accepted class-folder names, for error messages."""
    return ", ".join(f"{e} ({'/'.join(a for a in _ALIASES[e] if a != e)})" for e in EMOTIONS)
