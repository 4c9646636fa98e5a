"""Analyze photos: uploads or a camera snapshot -> annotated images, face cards, table, downloads."""

import hashlib
from functools import partial

import pandas as pd
import streamlit as st

from ui import analysis, charts, state, widgets

st.title("Analyze photos")
widgets.privacy_note("photos")
sel = state.selection()

min_score = st.slider(
    "Face detector confidence", min_value=0.1, max_value=0.95, value=0.5, step=0.05, key="analyze_min_score",
    help="Faces the detector is less sure of are ignored. Lower it when a face is missed, "
         "raise it when something that is not a face gets a box.")
explain = st.toggle(
    "Why this label?", key="analyze_explain",
    help="Shows, next to each face, the regions that drove its label (red: hiding them lowers the "
         "label's probability the most). Computed by occluding parts of the face: about a second per face.")
upload_tab, camera_tab = st.tabs(["Upload photos", "Take a snapshot"])
with upload_tab:
    uploads = st.file_uploader(
        "Photos (JPEG, PNG, WebP, BMP, TIFF, GIF)", type=analysis.UPLOAD_TYPES, accept_multiple_files=True,
        key="analyze_uploads")
with camera_tab:
    snapshot = st.camera_input("Take a snapshot with your camera", key="analyze_snapshot")

inputs = [(f.name, f.getvalue()) for f in uploads or []]
if snapshot is not None:
    inputs.append(("snapshot.jpg", snapshot.getvalue()))
if not inputs:
    st.info("Upload one or more photos with faces, or take a snapshot with your camera.")
    st.stop()

try:
    state.recognizer(sel, state.PHOTO_PROFILE)  # load (cached) before the loop, with its own spinner
except ValueError as exc:
    st.error(f"Cannot analyse: {exc}")
    st.stop()


def why_overlays(a: analysis.ImageAnalysis) -> list:
    """The "Why this label?" overlays of a photo's faces, computed once per model and crops in this session."""
    key = (sel.key, a.name, hashlib.sha1(b"".join(c.tobytes() for c in a.crops)).hexdigest())
    cache = st.session_state.setdefault("_analyze_why", {})
    if key not in cache:
        with st.spinner(f"Working out why, face by face ({len(a.faces)} face(s))…"):
            cache[key] = analysis.explain_overlays(state.recognizer(sel), a)
        while len(cache) > 12:
            cache.pop(next(iter(cache)))
    return cache[key]


analyses: list[analysis.ImageAnalysis] = []
bar = st.progress(0.0, text="Analysing…") if len(inputs) > 1 else None
for i, (name, data) in enumerate(inputs):
    with st.spinner(f"Finding faces in {name}…"):
        analyses.append(state.analyze_photo(sel.key, name, data, min_score))
    if bar is not None:
        bar.progress((i + 1) / len(inputs), text=f"Analysed {i + 1} of {len(inputs)} photos")
if bar is not None:
    bar.empty()

for i, a in enumerate(analyses):
    st.subheader(a.name, divider="gray")
    if a.error:
        st.error(f"Cannot read this file: {a.error}. Upload a JPEG, PNG, WebP, BMP, TIFF or GIF image.")
        continue
    left, right = st.columns([1, 1] if explain else [3, 2])
    with left:
        st.image(analysis.display_copy(a.annotated), width="stretch",
                 caption=f"{a.width}×{a.height} px · {len(a.faces)} face(s)")
        st.download_button("Download the annotated image", partial(analysis.annotated_png, a),
                           file_name=analysis.annotated_name(a.name), mime="image/png", key=f"analyze_png_{i}",
                           on_click="ignore", icon=":material/download:")
    with right:
        if not a.faces:
            hints = "\n".join(f"- {h}" for h in analysis.NO_FACE_HINTS)
            st.warning(f"No face found in this photo (detector confidence {min_score:.2f}). Likely causes:\n{hints}")
        overlays = why_overlays(a) if explain and a.faces else None
        for j, face in enumerate(a.faces):
            if overlays is None:
                widgets.face_card(face, a.crops[j], key=f"analyze_face_{i}_{j}")
                continue
            why_col, card_col = st.columns([1, 2.4], vertical_alignment="center")
            why_col.image(overlays[j], width="stretch", caption=f"why {face['emotion']}: red = what drove it")
            with card_col:
                widgets.face_card(face, a.crops[j], key=f"analyze_face_{i}_{j}")

good = [a for a in analyses if not a.error]
st.header("Results")
rows = analysis.table_rows(good)
if rows:
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="analyze_table")
    st.plotly_chart(charts.faces_overview(rows), key="analyze_overview")
else:
    st.info("No faces found in any photo, so the table is empty.")
c1, c2, c3 = st.columns(3)
model_name = sel.entry.name if sel.entry else "?"
c1.download_button("Results as CSV", analysis.results_csv(good), file_name="emotions.csv", mime="text/csv",
                   key="analyze_csv", on_click="ignore", icon=":material/table:")
c2.download_button("Results as JSON", analysis.results_json(analyses, model_name), file_name="emotions.json",
                   mime="application/json", key="analyze_json", on_click="ignore", icon=":material/data_object:")
c3.download_button("Annotated images (zip)", partial(analysis.annotated_zip, good), file_name="annotated.zip",
                   mime="application/zip", key="analyze_zip", on_click="ignore", icon=":material/folder_zip:",
                   disabled=not good)
