"""Live webcam: faces and emotions on the visitor's camera, analysed in the browser or on the server."""

import time
from pathlib import Path

import av
import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer

import fer.calibrate as calibrate_core
from ui import charts, state
from ui.calibration import HINTS, CaptureSession, save_personal, snapshots_zip
from ui.live import BROWSER, LIVE_MODES, MODE_HELP, BrowserSummaries, LiveProcessor, Timeline, default_mode

st.title("Live webcam")
sel = state.selection()
try:
    cfg = state.settings()
except ValueError as exc:
    st.error(f"Cannot start the live view: {exc}")
    st.stop()

default = default_mode(cfg.ice_servers, st.context.headers.get("Host"))
mode = st.radio("Where the video is analysed", list(LIVE_MODES), index=list(LIVE_MODES).index(default),
                format_func=LIVE_MODES.get, captions=[MODE_HELP[m] for m in LIVE_MODES], horizontal=True,
                key="live_mode")
in_browser = mode == BROWSER
if not in_browser:
    st.caption("Your browser's camera is streamed to the server, analysed frame by frame and sent back with the "
               "faces and emotions drawn on. The server's own camera is never used. When the analysis is slower "
               "than the camera, frames are skipped rather than queued, so the labels stay live.")
try:
    if in_browser:  # no Keras model on the server: the browser gets ONNX files
        from ui.browser_live import browser_live, bundle_config

        state.check_selection(sel)
        browser_config = bundle_config(sel.key, cfg.browser_int8)
        st.caption("The shipped model runs here as its 8-bit copy: about 1.5x faster per face than float32, at the "
                   "same accuracy." if browser_config.get("precision") == "int8" else
                   "The selected model runs here in float32 (only the shipped model has an 8-bit copy).")
    else:
        recognizer = state.recognizer(sel, state.LIVE_PROFILE)
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
if not in_browser:
    processor.configure(recognizer, sel.key, smoothing, min_score)


async def queued_frames_callback(frames: list[av.VideoFrame]) -> list[av.VideoFrame]:
    """Every camera frame that came in while the last one was analysed: the newest is analysed, the
    others are skipped (and counted), so the labels stay live."""
    frame = frames[-1]
    image = processor.process(frame.to_ndarray(format="bgr24"), frame.time, received=len(frames))
    return [av.VideoFrame.from_ndarray(image, format="bgr24")]


if in_browser:
    playing = False  # the component says whether its camera runs (browser_panel)
elif state.server_session_available():
    ctx = webrtc_streamer(
        key="live",
        mode=WebRtcMode.SENDRECV,
        rtc_configuration={"iceServers": cfg.ice_servers},
        media_stream_constraints={"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}, "audio": False},
        queued_video_frames_callback=queued_frames_callback,
        async_processing=True,
    )
    playing = bool(ctx.state.playing)
else:
    st.warning("The camera stream needs the app's server: start it with `streamlit run app.py` and open it "
               "in a browser.")
    playing = False


def metrics_row(last, fresh: bool, where: str) -> None:
    """Processed and camera frames/s, skipped frames, latency, faces and the main face (both modes)."""
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Processed frames/s", f"{last.fps:.1f}" if fresh else "0.0",
              help=f"Frames {where} analysed per second (moving average)")
    m2.metric("Camera frames/s", f"{last.camera_fps:.1f}" if fresh and last.camera_fps else "–",
              help="Your camera's frame rate, from the frames' timestamps. Well above the processed rate: "
                   f"{where} is the bottleneck.")
    m3.metric("Frames skipped", last.skipped if fresh else 0,
              help=f"Camera frames dropped since the start because {where} was still busy with an earlier one")
    m4.metric("Latency", f"{last.behind_ms:.0f} ms" if fresh and last.behind_ms else "–",
              help=f"How far the labels are behind the camera: waiting plus analysis in {where} "
                   f"(analysis alone: {last.latency_ms:.0f} ms per frame)" if fresh else None)
    n1, n2, _, _ = st.columns(4)
    n1.metric("Faces", last.n_faces if fresh else 0)
    n2.metric("Main face", f"{last.emotion} {last.score:.0%}" if fresh and last.emotion else "–")


def timeline_chart() -> None:
    times, scores = timeline.series()
    st.plotly_chart(charts.emotion_timeline(times, scores), key="live_timeline_chart",
                    config={"displayModeBar": False})
    st.download_button("Timeline as CSV", timeline.csv(), "live_emotions.csv", "text/csv", key="live_csv",
                       on_click="ignore", icon=":material/table:", disabled=not timeline.points,
                       help="The main face's probabilities over the last minute")


@st.fragment(run_every=1.0 if playing else None)
def live_panel():
    timeline.extend(processor.drain())
    last = timeline.last
    fresh = last is not None and playing and time.time() - last.t < 5
    metrics_row(last, fresh, "the server")
    if processor.errors:
        st.warning(f"{processor.errors} frame(s) could not be analysed; last error: {processor.last_error}")
    timeline_chart()
    if not playing:
        st.info("Press **START** and allow the camera. Behind a strict firewall the stream needs a TURN server "
                "(see docs/app.md).")


@st.fragment
def browser_panel():
    """The component and, from its summaries (about one a second, never frames), the same metrics and timeline."""
    capturing = st.session_state.get("calib_capture") is not None and st.session_state["calib_capture"].active
    summary = browser_live(browser_config, smoothing=smoothing, min_score=min_score, key="live_browser",
                           capture=capturing)
    timeline.extend(summaries.results(summary))
    last = timeline.last
    running = isinstance(summary, dict) and bool(summary.get("playing"))
    fresh = last is not None and running and time.time() - last.t < 5
    metrics_row(last, fresh, "your browser")
    if isinstance(summary, dict) and summary.get("errors"):
        st.warning(f"{summary['errors']} frame(s) could not be analysed; last error: {summary.get('last_error')}")
    timeline_chart()


if in_browser:
    summaries: BrowserSummaries = st.session_state.setdefault("live_summaries", BrowserSummaries())
    browser_panel()
    playing = True  # the camera runs in the component (its Start button): a take without a face gives up by itself
else:
    live_panel()


# ---------------------------------------------------------------- calibrate to my face

if in_browser:
    st.caption(":material/lock: Privacy: in this mode no image, frame or face crop leaves your browser, except the "
               "48x48 gray face crops of the calibration snapshots you choose to take below; the server otherwise "
               "only receives a summary once a second (frame rates, the main face's emotion probabilities).")
else:
    st.caption(":material/lock: Privacy: camera frames are analysed in memory and never stored. Calibration "
               "snapshots stay in your browser session unless you download them or save a personal model.")
ss = st.session_state
capture: CaptureSession = ss.setdefault("calib_capture", CaptureSession())


def capture_controls() -> None:
    """Start / Stop / Next / Retake / Skip for the current emotion (full reruns: they change the layout)."""
    emotion = capture.current
    b = st.columns(5)
    if capture.active:
        b[0].button("Stop", key="calib_stop", icon=":material/stop:", on_click=capture.stop)
        return
    label = "Start capture" if capture.total() == 0 and capture.phase == "idle" else "Capture again"
    if capture.phase == "review" and emotion is not None:
        b[0].button("Next emotion", key="calib_next", type="primary", icon=":material/arrow_forward:",
                    disabled=not playing, on_click=capture.next, kwargs={"expect": emotion})
        b[1].button(f"Retake {emotion}", key="calib_retake", icon=":material/replay:", disabled=not playing,
                    on_click=capture.retake)
    elif emotion is not None:
        b[0].button(label if capture.phase == "idle" else f"Capture {emotion}", key="calib_start", type="primary",
                    icon=":material/photo_camera:", disabled=not playing, on_click=capture.start)
    if emotion is not None:
        b[2].button(f"Skip {emotion}", key="calib_skip", icon=":material/skip_next:", disabled=not playing,
                    on_click=capture.skip, kwargs={"expect": emotion})
    if capture.total():
        b[4].button("Delete all", key="calib_reset", icon=":material/delete_sweep:", on_click=capture.reset)
    if not playing:
        st.info("Press **START** on the camera above first: the snapshots come from your live camera.")


@st.fragment(run_every=0.25 if capture.active else None)
def capture_status() -> None:
    """The countdown and the capture, driven by the clock and the webcam's latest face."""
    now = time.time()
    if capture.tick(now, summaries.latest_face() if in_browser else processor.latest_face()):
        st.rerun()  # the take is over: redraw the controls and the gallery
    emotion = capture.current
    if capture.phase == "countdown":
        st.markdown(f"### Show **{emotion}** ({HINTS[emotion]}) … {capture.countdown_left(now)}")
    elif capture.phase == "capturing":
        st.markdown(f"### Hold **{emotion}**: snapshot {len(capture.snapshots[emotion]) + 1} of {capture.shots}")
    elif capture.phase == "review":
        st.markdown(f"**{capture.message}** Next: {'the next emotion' if emotion != capture.order[-1] else 'done'}.")
    elif capture.phase == "finished":
        st.success(capture.message)
    elif emotion is not None:
        st.markdown(f"The page asks for each emotion in turn ({', '.join(capture.order)}), counts down 3-2-1 and "
                    f"takes {capture.shots} snapshots of your face {capture.interval_s:.1f} s apart. Skip any "
                    "emotion you don't want to act; retake or delete any snapshot.")


def gallery() -> None:
    """The snapshots per emotion, each with a delete button, and a retake button per emotion."""
    for emotion in capture.order:
        snaps = capture.snapshots[emotion]
        if not snaps:
            continue
        head, retake = st.columns([4, 1], vertical_alignment="center")
        head.markdown(f"**{emotion}** · {len(snaps)} snapshot(s)")
        retake.button("Retake", key=f"calib_retake_{emotion}", icon=":material/replay:", disabled=not playing,
                      on_click=capture.retake, args=(emotion,))
        cols = st.columns(10)
        for i, snap in enumerate(snaps[:10]):
            cols[i].image(snap.crop, width=64, clamp=True)
            cols[i].button("", key=f"calib_del_{snap.id}", icon=":material/close:", help="Delete this snapshot",
                           on_click=capture.delete, args=(emotion, snap.id))


def find_replay(model):
    """The replay matching the model's trunk: beside the model, the shipped model's, or any in the models folder."""
    candidates = [calibrate_core.replay_path(sel.entry.path), calibrate_core.replay_path(cfg.default_model),
                  *sorted(cfg.models_dir.glob("*.replay.npz"))]
    return calibrate_core.find_replay(model, candidates)


def make_replay_from_data(model) -> None:
    """Build a replay from the FER2013 data folder (once per trunk) into the models folder."""
    from fer.data import load_dataset

    bar = st.progress(0.0, text=f"Loading {cfg.data_dir}…")
    try:
        data = load_dataset(cfg.data_dir, skip_unknown=True)
        replay = calibrate_core.make_replay(model, data, n_train=1000, model_name=sel.entry.path.name,
                                            progress=lambda f, msg: bar.progress(f, text=msg))
        path = calibrate_core.save_replay(replay, cfg.models_dir / f"{sel.entry.path.stem}.replay.npz")
    except (ValueError, OSError) as exc:
        st.error(f"Could not build a replay from {cfg.data_dir}: {exc}")
        return
    bar.empty()
    st.success(f"Replay saved as {path}.")


def run_calibration(model, replay, note: str) -> None:
    x, y = capture.dataset()
    bar = st.progress(0.0, text="Calibrating…")
    try:
        result = calibrate_core.calibrate(model, x, y, replay=replay, replay_note=note,
                                          progress=lambda f, msg: bar.progress(min(1.0, f), text=msg))
    except ValueError as exc:
        bar.empty()
        st.error(f"Cannot calibrate: {exc}")
        return
    bar.empty()
    ss["calib_result"] = {"result": result, "base": sel.entry, "saved": None}


def calibrate_panel() -> None:
    if not capture.total() and "calib_result" not in ss:  # nothing to calibrate on yet: no Keras needed
        if in_browser:
            st.caption("In this mode the calibration runs on the server, on the snapshots you take (only their "
                       "48x48 gray crops are sent); the personal model you save is then used in this page.")
            return
        st.button("Calibrate on 0 snapshot(s)", key="calib_run", type="primary", icon=":material/tune:",
                  disabled=True, help="Capture snapshots of your face first (above).")
        return
    try:  # the Keras model is loaded only now, for the fine-tuning
        model = state.keras_model(sel)
    except ValueError as exc:
        st.error(f"Cannot calibrate: {exc}")
        return
    replay, why = find_replay(model)
    if replay is None:
        st.warning("No FER2013 replay matches this model, so the calibration cannot mix in FER2013 faces or report "
                   "the public test accuracy; the head is only kept near its original weights. "
                   + (" ".join(why) + " " if why else "")
                   + ("Build one from the data folder below (about a minute), or run "
                      "`python scripts/make_replay.py --model MODEL.keras`." if cfg.data_dir.exists() else
                      "Run `python scripts/make_replay.py --model MODEL.keras` where FER2013 is available."))
        if cfg.data_dir.exists() and st.button("Build a replay from the data folder", key="calib_make_replay"):
            make_replay_from_data(model)
            st.rerun()
    n = capture.total()
    note = (f"{len(replay.train_y)} FER2013 training faces ({Path(replay.path).name})" if replay is not None
            else "none (no replay matches this model)")
    if st.button(f"Calibrate on {n} snapshot(s)", key="calib_run", type="primary", icon=":material/tune:",
                 disabled=n == 0 or capture.active,
                 help="Fine-tunes the model's last layer on your snapshots mixed with FER2013 faces (seconds)."):
        run_calibration(model, replay, note)
    if "calib_result" in ss:
        calibration_report(ss["calib_result"])


def calibration_report(state: dict) -> None:
    r = state["result"].report
    st.markdown(f"**Calibration of {state['base'].label()}** · {r.n_snapshots} snapshots "
                f"({', '.join(f'{e} {k}' for e, k in r.per_class.items())}) · {r.seconds:.1f} s")
    m1, m2, m3 = st.columns(3)
    if r.heldout_after is not None:
        m1.metric(f"Held-out snapshots ({r.n_heldout})", f"{r.heldout_after:.0%}",
                  f"{100 * (r.heldout_after - r.heldout_before):+.0f} points (was {r.heldout_before:.0%})")
    else:
        m1.metric("Held-out snapshots", "–")
    if r.public_drop is not None:
        m2.metric("FER2013 public test", f"{r.public_after['accuracy']:.1%}",
                  f"{-100 * r.public_drop:+.1f} points (was {r.public_before['accuracy']:.1%})")
    else:
        m2.metric("FER2013 public test", "not measured")
    m3.metric("Calibration time", f"{r.seconds:.1f} s")
    for line in r.notes:
        st.caption(line)
    st.caption(f"Replay: {r.replay}. Held-out snapshots are the last third of each emotion's, taken seconds after "
               "the others: they show the fit to this session, not to other days or lighting.")
    save_controls(state)


def save_controls(state: dict) -> None:
    b1, b2, _ = st.columns([1, 1, 2])
    if b1.button("Save as personal model", key="calib_save", icon=":material/save:",
                 disabled=state["saved"] is not None):
        try:
            state["saved"] = save_personal(state["result"], state["base"].path, state["base"].card, cfg.models_dir)
        except (ValueError, OSError) as exc:
            st.error(f"Could not save the model: {exc}")
    if state["saved"] is not None:
        b2.button("Use it now", key="calib_use", type="primary", icon=":material/check_circle:",
                  on_click=lambda: ss.update(model_path=str(state["saved"])))
        st.success(f"Saved as `{state['saved'].name}` with its card; the sidebar's model list offers it.")


with st.expander("Calibrate to my face", icon=":material/face:",
                 expanded=bool(capture.total() or capture.active or "calib_result" in ss)):
    st.caption("Act each emotion for the camera; the selected model's last layer is then fine-tuned to your face "
               "(a few seconds), mixed with FER2013 faces so it does not forget everyone else. The personal model "
               "then runs alone (for the shipped model: without the live profile's second model).")
    capture_controls()
    capture_status()
    gallery()
    if capture.total():
        st.download_button("Save the snapshots as a dataset (zip)", snapshots_zip(capture), "my_faces.zip",
                           "application/zip", key="calib_zip", icon=":material/download:",
                           help="A zip of class folders (happy/, sad/, …) of 48x48 PNGs: the Train page's "
                                "zip upload accepts it.")
    calibrate_panel()
