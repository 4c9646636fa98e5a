"""The Live page's in-browser mode: a Streamlit v1 custom component with a prebuilt frontend.

``build/`` (committed) is served by Streamlit as the component's static files: our page
(``frontend/src``, copied as is) and onnxruntime-web's single-threaded WASM engine. The app writes
the two ONNX models into ``build/models/`` (content-keyed names, :func:`fer.browser_models.browser_bundle`)
when the page is opened. Rebuild the frontend after changing ``frontend/src``::

    cd ui/browser_live/frontend && npm ci && npm run build

``tests/test_browser_live.py`` checks that ``build/`` matches its sources (``build/manifest.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st
import streamlit.components.v1 as components

BUILD_DIR = Path(__file__).resolve().parent / "build"
MODELS_DIR = BUILD_DIR / "models"

_component = components.declare_component("browser_live", path=str(BUILD_DIR))


@st.cache_resource(max_entries=4, show_spinner="Preparing the models for your browser…")
def _bundle_config(model_key: str, int8: bool) -> dict[str, Any]:
    """The ONNX files (written once per model into build/models/) and the live recipe, for ``model_key``
    (``int8``: its committed 8-bit graph where it has one)."""
    from fer.browser_models import browser_bundle, browser_profile
    from fer.draw import EMOTION_COLORS
    from ui.state import key_path

    bundle = browser_bundle(browser_profile(key_path(model_key), int8=int8), MODELS_DIR)  # the file alone
    return {**bundle.config(), "detector": f"models/{bundle.detector}", "model": f"models/{bundle.model}",
            "colors": dict(EMOTION_COLORS)}


def bundle_config(model_key: str, int8: bool = True) -> dict[str, Any]:
    """:func:`_bundle_config`, cached per model file (ValueError with the reason when it cannot be made)."""
    return _bundle_config(model_key, bool(int8))


def browser_live(config: dict[str, Any], *, smoothing: bool, min_score: float, key: str,
                 capture: bool = False) -> dict | None:
    """Mount the component; returns its latest summary (about one a second while the camera runs), or None.

    ``capture``: the visitor is taking calibration snapshots, so the summaries (then four a second)
    carry the main face's 48x48 gray crop; at all other times no pixel is sent. ``key`` must stay the
    same across reruns: a new key remounts the frame, which stops the camera and reloads the models.
    """
    return _component(config=config, smoothing=bool(smoothing), min_score=float(min_score), capture=bool(capture),
                      key=key, default=None)
