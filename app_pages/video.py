"""Analyze a video: upload -> progress -> annotated video, per-face timeline and summary, CSV."""

import math

import pandas as pd
import streamlit as st

from fer.labels import EMOTIONS
from fer.video import VIDEO_TYPES
from ui import charts, state
from ui import video as videos

st.title("Analyze a video")
sel = state.selection()


try:
    limits = state.settings().video_limits
except ValueError as exc:
    st.error(f"Configuration error: {exc}")
    st.stop()

st.caption(videos.PRIVACY)
upload = st.file_uploader(
    f"Video ({', '.join(t.upper() for t in VIDEO_TYPES[:6])}…)", type=VIDEO_TYPES, key="video_upload",
    max_upload_size=math.ceil(limits.max_mb))
st.caption(f"Up to {limits.max_mb:g} MB and {limits.max_seconds:g} seconds. Faces are found on every third frame "
           "and followed in between; every frame's faces are classified. The annotated copy has no sound.")
if upload is None:
    st.info("Upload a video with faces: you get the annotated video, each face's emotions over time, "
            "a summary per face and the per-frame table.")
    st.stop()

try:
    rec = state.recognizer(sel)
except ValueError as exc:
    st.error(f"Cannot analyse: {exc}")
    st.stop()

key = (upload.file_id, sel.key)
outcome = st.session_state.get("video_outcome")
if outcome is None or st.session_state.get("video_outcome_key") != key:
    st.session_state.pop("video_outcome", None)
    bar = st.progress(0.0, text=f"Analysing {upload.name}…")

    def progress(done: int, total: int) -> None:
        share = min(1.0, done / total) if total else 0.0
        of = f"{total:,}" if total else "?"
        bar.progress(share, text=f"Analysing {upload.name}: frame {done:,} of {of}")

    try:
        outcome = videos.process_upload(rec, upload.name, upload.getvalue(), limits, progress)
    except ValueError as exc:
        bar.empty()
        st.error(f"Cannot analyse this video: {exc}")
        st.stop()
    bar.empty()
    st.session_state["video_outcome"], st.session_state["video_outcome_key"] = outcome, key

info = outcome.info
c1, c2, c3, c4 = st.columns(4)
c1.metric("Frames", f"{outcome.frames:,}")
c2.metric("Length", f"{outcome.frames / info.fps:.1f} s")
c3.metric("Faces tracked", len(outcome.summary))
c4.metric("Speed", f"{outcome.realtime_factor:.1f}× real time",
          help=f"{outcome.seconds:.1f} s to analyse; the face detector ran on {outcome.detected_frames:,} frames")

left, right = st.columns([1, 1])
with left:
    st.video(outcome.video, format="video/mp4")
    d1, d2 = st.columns(2)
    d1.download_button("Download the annotated video", outcome.video, file_name=outcome.video_name,
                       mime="video/mp4", key="video_download", on_click="ignore", icon=":material/movie:")
    d2.download_button("Per-frame emotions (CSV)", outcome.csv, file_name=outcome.csv_name, mime="text/csv",
                       key="video_csv", on_click="ignore", icon=":material/table:")
with right:
    if outcome.summary:
        shown = videos.busiest_tracks(outcome)
        title = "Emotions of each tracked face" + ("" if len(shown) == len(outcome.tracks)
                                                    else f" (the {len(shown)} seen longest)")
        st.plotly_chart(charts.face_timelines(shown, title=title), key="video_timeline")
    else:
        st.warning("No face was found in this video. Faces turned far away, very small (under ~40 px) "
                   "or in the dark are missed.")

if outcome.summary:
    st.subheader("Share of time in each emotion")
    shares = {e: st.column_config.ProgressColumn(e, format="percent", min_value=0, max_value=1) for e in EMOTIONS}
    st.dataframe(pd.DataFrame(videos.summary_rows(outcome)), hide_index=True, key="video_summary",
                 column_config=shares)
