"""Live webcam: the visitor's camera over WebRTC, faces and emotions drawn on every returned frame."""

import time

import av
import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer

from ui import charts, state
from ui.live import LiveProcessor, Timeline

st.title("Live webcam")
st.caption("Your browser's camera is streamed to the server, analysed frame by frame and sent back with the faces "
           "and emotions drawn on. The server's own camera is never used. When the analysis is slower than the "
           "camera, frames are skipped rather than queued, so the labels stay live.")
sel = state.selection()
try:
    cfg = state.settings()
    recognizer = state.recognizer(sel)
except ValueError as exc:
    st.error(f"Cannot start the live view: {exc}")
    st.stop()

c1, c2 = st.columns(2)
smoothing = c1.toggle("Smooth the emotions over frames", value=True, key="live_smoothing",
                      help="Follows each face from frame to frame and averages its probabilities, "
                           "so labels flicker less. Off: every frame on its own.")
min_score = c2.slider("Face detector confidence", 0.1, 0.95, 0.5, 0.05, key="live_min_score")

if "live_processor" not in st.session_state:
    st.session_state["live_processor"] = LiveProcessor()
    st.session_state["live_timeline"] = Timeline()
processor: LiveProcessor = st.session_state["live_processor"]
timeline: Timeline = st.session_state["live_timeline"]
processor.configure(recognizer, sel.key, smoothing, min_score)


def video_frame_callback(frame: av.VideoFrame) -> av.VideoFrame:
    image = frame.to_ndarray(format="bgr24")
    return av.VideoFrame.from_ndarray(processor.process(image), format="bgr24")


if state.server_session_available():
    ctx = webrtc_streamer(
        key="live",
        mode=WebRtcMode.SENDRECV,
        rtc_configuration={"iceServers": cfg.ice_servers},
        media_stream_constraints={"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}, "audio": False},
        video_frame_callback=video_frame_callback,
        async_processing=True,
    )
    playing = bool(ctx.state.playing)
else:
    st.warning("The camera stream needs the app's server: start it with `streamlit run app.py` and open it "
               "in a browser.")
    playing = False


@st.fragment(run_every=1.0 if playing else None)
def live_panel():
    timeline.extend(processor.drain())
    last = timeline.last
    fresh = last is not None and playing and time.time() - last.t < 5
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Frames per second", f"{last.fps:.1f}" if fresh else "0.0")
    m2.metric("Faces", last.n_faces if fresh else 0)
    m3.metric("Main face", f"{last.emotion} {last.score:.0%}" if fresh and last.emotion else "–")
    m4.metric("Time per frame", f"{last.latency_ms:.0f} ms" if fresh else "–")
    if processor.errors:
        st.warning(f"{processor.errors} frame(s) could not be analysed; last error: {processor.last_error}")
    times, scores = timeline.series()
    st.plotly_chart(charts.emotion_timeline(times, scores), key="live_timeline_chart",
                    config={"displayModeBar": False})
    if not playing:
        st.info("Press **START** and allow the camera. Behind a strict firewall the stream needs a TURN server "
                "(see docs/app.md).")


live_panel()
