"""Home: what the app does, and the model card of the model picked in the sidebar."""

import streamlit as st

from fer import robustness
from ui import charts, state, widgets

st.title("Facial expression recognition")
st.markdown(
    "Finds the faces in a photo or a live camera stream and tells which of seven emotions each shows: "
    "**angry, disgust, fear, happy, sad, surprise, neutral**. The models are convolutional networks trained "
    "on FER2013 (48×48 gray face crops); you can retrain or fine-tune one here, on FER2013 or on your own faces.")
c1, c2, c3 = st.columns(3)
with c1.container(border=True):
    st.page_link("app_pages/analyze.py", label="**Analyze photos**", icon=":material/photo_camera:")
    st.caption("Upload photos or take a snapshot: annotated images, per-face probabilities, CSV/JSON.")
with c2.container(border=True):
    st.page_link("app_pages/live.py", label="**Live webcam**", icon=":material/videocam:")
    st.caption("Your own camera with faces and emotions drawn on: the models run in your browser, or on the server.")
with c3.container(border=True):
    st.page_link("app_pages/train.py", label="**Train**", icon=":material/model_training:")
    st.caption("Train from scratch or fine-tune in the browser, watch the curves, save and use the result.")
widgets.privacy_note("app")

st.header("Profiles")
try:
    from fer.profiles import read_manifest

    widgets.profiles_table(read_manifest())
except ValueError as exc:
    st.warning(f"The shipped profiles cannot be read: {exc}")

rob = robustness.measured()
if rob is not None:
    st.subheader("Under camera conditions")
    st.caption(f"public_test crops degraded by blur, sensor noise, JPEG, darkness, low contrast, low resolution, "
               f"tilt and a covered part of the face (severities 1-5, fer.corruptions), our profiles against the "
               f"`fer` package's classifier on the same images. Measured {rob['measured']}: `{rob['command']}`")
    st.plotly_chart(charts.robustness_bars(rob["results"]), key="home_robustness")

sel = state.selection()
st.header("Active model")
if sel.entry is None:
    st.error("No model is installed yet. Put the shipped model at the path given by FER_DEFAULT_MODEL "
             "(default models/fer_default.keras), or train one on the **Train** page.")
elif sel.entry.card is None:
    st.error(f"The model card of {sel.entry.path} cannot be read: {sel.entry.error}")
else:
    st.markdown(f"**{sel.entry.label()}** — pick another in the sidebar.")
    widgets.model_card(sel.entry, key="home")
