"""Streamlit glue shared by the pages: settings, cached loaders and the sidebar model selector.

Cached objects (``st.cache_resource``) are shared by all sessions and threads and never mutated:
the recognizer is read-only after loading; per-session state (the live tracker, the selected
model) lives in ``st.session_state``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from fer.app_services import registry
from fer.app_services.settings import Settings


def secrets() -> dict:
    """The Streamlit secrets as a plain dict (empty when there is no secrets.toml)."""
    try:
        return st.secrets.to_dict()
    except Exception:  # noqa: BLE001 - no secrets.toml is the normal case
        return {}


def settings() -> Settings:
    """The configuration (secrets over environment); read on each run so that changes apply."""
    return Settings.load(secrets())


@dataclass(frozen=True)
class Selection:
    """The model this session uses: its entry in the registry (None when there is no model at all)."""

    entry: registry.ModelEntry | None
    entries: tuple[registry.ModelEntry, ...]

    @property
    def key(self) -> str | None:
        return None if self.entry is None else _model_key(self.entry.path)


def _model_key(path: Path) -> str:
    """A cache key that changes when the file is replaced: path plus modification time."""
    try:
        return f"{path.resolve()}|{path.stat().st_mtime_ns}"
    except OSError:
        return str(path)


def key_path(key: str) -> Path:
    """The model file of a :attr:`Selection.key`."""
    return Path(key.rsplit("|", 1)[0])


PHOTO_PROFILE, LIVE_PROFILE = "photo", "live"
"""Photos and videos use the photo profile (for the shipped model: the ensemble with flip TTA; for a
model of your own: it with flip TTA), the live webcam the live profile (one pass per model); both
prior-corrected (see fer.profiles)."""


ANALYSIS_ENGINE = "onnx"
"""The default engine of the Analyze pages and the server-side live mode (setting ``FER_ENGINE``): ONNX Runtime,
so that a server that only analyses never imports TensorFlow (the shipped models' graphs are committed in
models/; another model is converted once and cached, see fer.onnx_runtime). A model ONNX cannot take runs
on Keras instead."""


@st.cache_resource(max_entries=6, show_spinner="Loading the model and the face detector…")
def _cached_recognizer(key: str, profile: str, engine: str = ANALYSIS_ENGINE):
    import fer
    from fer.modelfile import DEFAULT_MODEL
    from fer.onnx_runtime import UnsupportedModel

    path = key_path(key)
    model = None if path == DEFAULT_MODEL.resolve() else path  # the shipped model stands for the shipped profiles
    try:
        return fer.EmotionRecognizer(model, profile=profile, engine=engine)
    except UnsupportedModel:  # a layer ONNX has no counterpart for: the model as it is, on Keras
        return fer.EmotionRecognizer(model, profile=profile, engine="keras")


def configured_engine() -> str:
    """The configured analysis engine (``FER_ENGINE``; :data:`ANALYSIS_ENGINE` when the settings are malformed,
    which the sidebar reports)."""
    try:
        return settings().engine
    except ValueError:
        return ANALYSIS_ENGINE


def check_selection(selection: Selection) -> None:
    """ValueError with a clear message when there is no usable model selected."""
    if selection.entry is None:
        raise ValueError("there is no model yet: train one on the Train page, or set FER_DEFAULT_MODEL")
    if not selection.entry.usable:
        raise ValueError(f"model {selection.entry.path} cannot be used: {selection.entry.error}")


def _load_recognizer(key: str, profile: str = PHOTO_PROFILE, engine: str | None = None):
    """The cached recognizer of ``key`` under ``profile`` on ``engine`` (None: the configured one)."""
    return _cached_recognizer(key, profile, engine or configured_engine())


def recognizer(selection: Selection, profile: str = PHOTO_PROFILE, engine: str | None = None):
    """The cached :class:`fer.EmotionRecognizer` for the selected model; ValueError with a clear message.
    ``engine="keras"`` where a page needs the Keras model itself (calibration); None: the configured one."""
    check_selection(selection)
    return _load_recognizer(selection.key, profile, engine)


def keras_model(selection: Selection):
    """The selected model file as a Keras model (what calibration fine-tunes; for the shipped model, the
    live profile's first member, not the whole profile): imports TensorFlow, once. Never modified."""
    check_selection(selection)
    return _cached_keras_model(selection.key)


@st.cache_resource(max_entries=2, show_spinner="Loading the Keras model…")
def _cached_keras_model(key: str):
    from fer.modelfile import load_model

    return load_model(key_path(key))[0]


def model_selector(cfg: Settings) -> Selection:
    """The sidebar model picker, shared by all pages.

    The choice is per session and defaults to the server-wide active model; when another session
    presses "Use this model" on the Train page, every session switches to it on its next run.
    """
    entries = tuple(registry.list_models(cfg.models_dir, cfg.default_model))
    active_path, active_version = registry.ACTIVE.get()
    by_path = {str(e.path): e for e in entries}
    ss = st.session_state
    if ss.get("_active_seen") != active_version or ss.get("model_path") not in by_path:
        wanted = str(active_path) if active_path is not None and str(active_path) in by_path else None
        ss["model_path"] = wanted or (str(entries[0].path) if entries else None)
        ss["_active_seen"] = active_version
    _avoid_unusable(entries, by_path, active_path)
    if not entries:
        st.sidebar.warning(
            f"No model found (looked for {cfg.default_model} and in {cfg.models_dir}). "
            "Train one on the **Train** page.")
        return Selection(None, entries)
    st.sidebar.selectbox(
        "Model", options=list(by_path), key="model_path", format_func=lambda p: by_path[p].label(),
        help="Used by every page. The shipped default plus each model saved from the Train page.")
    return Selection(by_path[ss["model_path"]], entries)


def _avoid_unusable(entries, by_path: dict, active_path: Path | None) -> None:
    """Switch this session off a damaged or vanished model onto the shipped default, with a sidebar warning.

    Runs before the picker is drawn (its value may still be changed then). The warning stays while
    the server-wide active model is unusable, so every page says why another model is in use.
    """
    ss = st.session_state
    chosen = by_path.get(ss.get("model_path"))
    active = by_path.get(str(active_path)) if active_path is not None else None
    spare = registry.fallback(entries)
    if spare is None:
        return  # nothing usable: the pages say so
    if chosen is not None and not chosen.usable:
        ss["model_path"] = str(spare.path)
        _fallback_warning(chosen.name, chosen.error, spare)
    elif active_path is not None and active is None:
        _fallback_warning(Path(active_path).stem, "its file is gone", by_path[ss["model_path"]])
    elif active is not None and not active.usable and ss.get("model_path") == str(spare.path):
        _fallback_warning(active.name, active.error, spare)


def _fallback_warning(name: str, why: str | None, spare) -> None:
    st.sidebar.warning(f"The model **{name}** cannot be used: {why}. Using **{spare.label()}** instead; "
                       "train or save the model again, or pick another one below.", icon=":material/warning:")


def selection() -> Selection:
    """The selection made by the sidebar on this run (app.py stores it)."""
    sel = st.session_state.get("_selection")
    if sel is None:
        sel = Selection(None, ())
    return sel


def analyze_photo(model_key: str, name: str, data: bytes, min_score: float):
    """Cached :func:`ui.analysis.analyze_image` (reruns such as a download click don't recompute)."""
    return _analyze_photo(model_key, name, data, min_score, configured_engine())


@st.cache_data(max_entries=12, ttl=3600, show_spinner=False)
def _analyze_photo(model_key: str, name: str, data: bytes, min_score: float, engine_name: str):
    from ui.analysis import analyze_image

    return analyze_image(_load_recognizer(model_key, PHOTO_PROFILE, engine_name), name, data, min_score)


def server_session_available() -> bool:
    """True when this run belongs to a browser session of a running server (what WebRTC signalling needs).

    False under ``streamlit.testing`` (AppTest) and in bare ``python app.py`` runs, where
    ``webrtc_streamer`` cannot work.
    """
    from streamlit.runtime import Runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    try:
        return ctx is not None and Runtime.instance()._session_mgr.get_session_info(ctx.session_id) is not None
    except (AttributeError, RuntimeError):
        return False
