"""Streamlit front door: ``streamlit run app.py`` (see docs/app.md)."""

import logging

from ui.native import preload_webrtc

preload_webrtc()  # before anything loads TensorFlow: see ui/native.py

import streamlit as st  # noqa: E402

from ui import state  # noqa: E402
from ui.patches import NOT_PATCHED, keep_keras_state  # noqa: E402

keras_kept = keep_keras_state()  # no keras.backend.clear_session() after each run: see ui/patches.py

st.set_page_config(page_title="FER: facial expressions", page_icon=":material/sentiment_satisfied:", layout="wide")
if not keras_kept:  # a Streamlit upgrade removed the private hook: say so on every page and in the log
    logging.getLogger("fer.app").error(NOT_PATCHED)
    st.warning(NOT_PATCHED, icon=":material/warning:")

pages = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/analyze.py", title="Analyze photos", icon=":material/photo_camera:", url_path="analyze"),
    st.Page("app_pages/video.py", title="Analyze video", icon=":material/movie:", url_path="video"),
    st.Page("app_pages/live.py", title="Live webcam", icon=":material/videocam:", url_path="live"),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
]
page = st.navigation(pages)

with st.sidebar:
    try:
        cfg = state.settings()
    except ValueError as exc:  # a malformed setting: say which, keep the app up
        st.error(f"Configuration error: {exc}")
        st.stop()
    st.session_state["_selection"] = state.model_selector(cfg)
    st.caption("Emotions: angry, disgust, fear, happy, sad, surprise, neutral (FER2013).")

page.run()
