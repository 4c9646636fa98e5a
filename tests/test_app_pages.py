"""Every page's logic through Streamlit's AppTest, on a real (tiny) model and real photographs."""

import csv
import io
import json
import re
import threading
import zipfile
from pathlib import Path

import cv2
import pytest
from streamlit.testing.v1 import AppTest

from app_helpers import REPO, class_zip, face_photo, noise_png, write_fer_folder
from fer.app_services import registry
from fer.app_services.jobs import MANAGER
from fer.labels import EMOTIONS
from fer.modelfile import card_path, read_card
from fer.profiles import read_manifest
from synth import make_split, write_csv

TIMEOUT = 120


@pytest.fixture()
def env(app_with_model):
    """A models folder holding a copy of the small test model as the shipped default; env vars set; no job."""
    assert MANAGER.wait(TIMEOUT)
    MANAGER.forget()
    yield app_with_model
    current = MANAGER.current()
    if current is not None:
        current.cancel()
        MANAGER.wait(TIMEOUT)


def app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT).run()
    if page:
        at.switch_page(f"app_pages/{page}.py").run()
    return at


def no_crash(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def plotly_specs(at: AppTest) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


# ---------------------------------------------------------------- home and sidebar


def test_home_shows_the_model_card(env):
    at = app()
    no_crash(at)
    card = read_card(env["default"])
    public = card.metrics["public_test"]
    m = metrics(at)
    assert m["Architecture"] == "vgg"
    assert m["Accuracy (public test)"] == f"{public['accuracy']:.1%}"
    assert m["Best epoch"] == f"{card.best_epoch} of 3"
    assert at.sidebar.selectbox[0].value == str(env["default"])
    assert at.sidebar.selectbox[0].format_func(str(env["default"])).startswith("shipped default (vgg")
    specs = plotly_specs(at)
    heat = next(s for s in specs if s["data"][0]["type"] == "heatmap")
    assert heat["data"][0]["customdata"] == public["confusion"]  # the card's matrix, rows = true label
    recall = next(s for s in specs if s["data"][0]["type"] == "bar" and list(s["data"][0]["x"]) == list(EMOTIONS))
    assert recall["data"][0]["y"] == [public["per_class"][e]["recall"] for e in EMOTIONS]
    robust = next(s for s in specs if s["data"][0].get("name") == "ours, live")  # under camera conditions
    assert robust["data"][0]["x"][0] == "clean" and {d["name"] for d in robust["data"]} >= {"fer package"}
    assert any(len(s["data"]) >= 2 and s["data"][0].get("name") == "train" for s in specs)  # training curves
    profiles = at.dataframe[0].value
    shipped = read_manifest()["profiles"]
    assert list(profiles["profile"]) == list(shipped)
    assert list(profiles["balanced accuracy"]) == [p["public_test"]["balanced_accuracy"] for p in shipped.values()]
    splits = at.dataframe[1].value
    assert set(splits["split"]) >= {"public test"}


def test_home_without_any_model_says_what_to_do(env, monkeypatch):
    monkeypatch.setenv("FER_DEFAULT_MODEL", str(env["root"] / "nowhere.keras"))
    monkeypatch.setenv("FER_MODELS_DIR", str(env["root"] / "empty"))
    at = app()
    no_crash(at)
    assert "No model found" in at.sidebar.warning[0].value
    assert "No model is installed yet" in at.error[0].value


def test_unreadable_card_and_bad_config_are_reported(env, monkeypatch):
    card_path(env["default"]).write_text("{broken")
    at = app()
    no_crash(at)
    assert "cannot be read" in at.error[0].value and "not valid JSON" in at.error[0].value
    monkeypatch.setenv("FER_MAX_ZIP_MB", "plenty")
    at = app()
    no_crash(at)
    assert "Configuration error" in at.error[0].value and "FER_MAX_ZIP_MB" in at.error[0].value


def test_sidebar_lists_trained_models_and_follows_the_active_one(env):
    other = registry.save_as_new(env["default"], env["models"], env["default"])
    at = app()
    box = at.sidebar.selectbox[0]
    assert [o.split(" (")[0] for o in box.options] == ["shipped default", "fer_app_v1"]
    assert box.value == str(env["default"])
    registry.ACTIVE.set(other)  # "Use this model" from another session
    at.run()
    assert at.sidebar.selectbox[0].value == str(other)
    assert "fer_app_v1" in at.markdown[-1].value or any("fer_app_v1" in m.value for m in at.markdown)
    at.sidebar.selectbox[0].set_value(str(env["default"])).run()  # a session may still pick another
    assert at.sidebar.selectbox[0].value == str(env["default"])


# ---------------------------------------------------------------- analyze


def test_analyze_a_face_photo(env):
    at = app("analyze")
    no_crash(at)
    assert "Upload one or more photos" in at.info[0].value
    photo = face_photo()
    at.file_uploader(key="analyze_uploads").set_value((photo.name, photo.read_bytes(), "image/jpeg")).run()
    no_crash(at)
    assert not at.error
    cards = [m.value for m in at.markdown if m.value.startswith("**") and "· " in m.value]
    assert len(cards) == 1
    emotion = cards[0].split("**")[1]
    assert emotion in EMOTIONS
    table = at.dataframe[0].value
    assert list(table["image"]) == [photo.name] and table["emotion"][0] == emotion
    probs = [table[f"p_{e}"][0] for e in EMOTIONS]
    assert abs(sum(probs) - 1) < 0.01 and table["score"][0] == pytest.approx(max(probs), abs=1e-3)
    h, w = cv2.imread(str(photo)).shape[:2]
    x, y, bw, bh = (int(table[k][0]) for k in ("x", "y", "width", "height"))
    assert 0 <= x < x + bw <= w and 0 <= y < y + bh <= h
    (probs_html,) = [m.value for m in at.markdown if m.value.startswith('<div class="fer-probs"')]
    shown = re.findall(r"<span>(\w+)</span>.*?width:([\d.]+)%", probs_html)
    assert [e for e, _ in shown] == list(EMOTIONS)  # the card's bars, in label order
    assert [float(w) / 100 for _, w in shown] == pytest.approx(probs, abs=1e-3)
    (overview,) = plotly_specs(at)  # one chart for all faces, one trace per emotion
    assert [t["name"] for t in overview["data"]] == list(EMOTIONS)
    assert overview["data"][0]["y"] == [f"{photo.name} · face 1"]
    assert [t["x"][0] for t in overview["data"]] == pytest.approx(probs, abs=1e-6)
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download the annotated image", "Results as CSV", "Results as JSON", "Annotated images (zip)"]


def test_analyze_no_face_bad_file_and_several_images(env):
    at = app("analyze")
    photo = face_photo()
    files = [("coffee.png", noise_png(), "image/png"), ("broken.jpg", b"this is not a jpeg", "image/jpeg"),
             (photo.name, photo.read_bytes(), "image/jpeg")]
    at.file_uploader(key="analyze_uploads").set_value(files).run()
    no_crash(at)
    assert len(at.error) == 1 and "Cannot read this file" in at.error[0].value
    assert "No face found in this photo" in at.warning[0].value and "detector confidence" in at.warning[0].value
    assert list(at.dataframe[0].value["image"]) == [photo.name]
    at.slider(key="analyze_min_score").set_value(0.95).run()  # stricter detector: still no crash
    no_crash(at)


def test_analyze_camera_snapshot(env):
    at = app("analyze")
    photo = face_photo()
    at.camera_input(key="analyze_snapshot").upload("camera.jpg", photo.read_bytes()).run()
    no_crash(at)
    assert list(at.dataframe[0].value["image"]) == ["snapshot.jpg"]


def test_analyze_with_a_broken_model_file(env):
    env["default"].write_bytes(b"truncated")
    at = app("analyze")
    photo = face_photo()
    at.file_uploader(key="analyze_uploads").set_value((photo.name, photo.read_bytes(), "image/jpeg")).run()
    no_crash(at)
    assert "Cannot analyse" in at.error[0].value and "not a valid .keras archive" in at.error[0].value


def test_photos_average_each_face_with_its_mirror(env):
    """The Analyze page's results are flip-TTA results (the live page keeps a single pass)."""
    from ui import analysis, state

    at = app("analyze")
    photo = face_photo()
    at.file_uploader(key="analyze_uploads").set_value((photo.name, photo.read_bytes(), "image/jpeg")).run()
    no_crash(at)
    sel = at.session_state["_selection"]
    shown = state.analyze_photo(sel.key, photo.name, photo.read_bytes(), 0.5)
    flip = analysis.analyze_image(state._load_recognizer(sel.key, "photo"), photo.name, photo.read_bytes(), 0.5)
    single = analysis.analyze_image(state._load_recognizer(sel.key, "live"), photo.name, photo.read_bytes(), 0.5)
    assert state.PHOTO_PROFILE == "photo" and state._load_recognizer(sel.key, "photo").tta == "flip"
    assert state._load_recognizer(sel.key, "live").tta is None and len(shown.faces) == 1
    assert shown.faces[0]["scores"] == flip.faces[0]["scores"] != single.faces[0]["scores"]
    row = at.dataframe[0].value.iloc[0]
    assert row["emotion"] == flip.faces[0]["emotion"]
    assert [row[f"p_{e}"] for e in EMOTIONS] == [flip.faces[0]["scores"][e] for e in EMOTIONS]


def test_analysis_downloads_hold_the_results(env):
    """The CSV/JSON/zip builders behind the download buttons, on a real analysis."""
    from ui import analysis, state

    at = app("analyze")  # loads the recognizer into the cache
    photo = face_photo()
    sel = at.session_state["_selection"]
    rec = state._load_recognizer(sel.key)
    good = analysis.analyze_image(rec, photo.name, photo.read_bytes(), 0.5)
    none = analysis.analyze_image(rec, "noise.png", noise_png(), 0.5)
    rows = list(csv.DictReader(io.StringIO(analysis.results_csv([good, none]).decode())))
    assert len(rows) == 1 and rows[0]["image"] == photo.name and rows[0]["emotion"] in EMOTIONS
    doc = json.loads(analysis.results_json([good, none], "fer_default"))
    assert [len(i["faces"]) for i in doc["images"]] == [1, 0] and doc["labels"] == list(EMOTIONS)
    with zipfile.ZipFile(io.BytesIO(analysis.annotated_zip([good, none, good]))) as zf:
        names = zf.namelist()
        png = cv2.imdecode(__import__("numpy").frombuffer(zf.read(names[0]), "uint8"), cv2.IMREAD_COLOR)
    assert names == ["astronaut_annotated.png", "noise_annotated.png", "astronaut_annotated_2.png"]
    assert png.shape[:2] == (good.height, good.width)


# ---------------------------------------------------------------- live


def test_live_page_controls_and_timeline(env):
    at = app("live")
    no_crash(at)
    assert "needs the app's server" in at.warning[0].value  # no browser session under AppTest
    processor = at.session_state["live_processor"]
    assert processor.model_key == at.session_state["_selection"].key and processor.smoothing
    frame = cv2.imread(str(face_photo()))
    outputs = [processor.process(frame) for _ in range(3)]  # what the frame callback does
    assert all(o.shape == frame.shape for o in outputs) and (outputs[0] != frame).any()  # boxes drawn
    at.toggle(key="live_smoothing").set_value(False).run()
    no_crash(at)
    assert not processor.smoothing
    timeline = next(s for s in plotly_specs(at) if s["layout"]["title"]["text"].startswith("Main face"))
    assert [t["name"] for t in timeline["data"]] == list(EMOTIONS)
    assert all(len(t["y"]) == 3 for t in timeline["data"])
    assert all(-60 <= x <= 0 for x in timeline["data"][0]["x"])
    assert metrics(at)["Processed frames/s"] == "0.0"  # not streaming


def test_live_page_in_browser_mode(env):
    """The in-browser mode serves the selected model's ONNX file and keeps the same metrics and timeline."""
    from ui.browser_live import MODELS_DIR

    at = app("live")
    assert at.radio(key="live_mode").value == "server"  # no browser request under AppTest: the page as it was
    at.radio(key="live_mode").set_value("browser").run()
    no_crash(at)
    assert at.radio(key="live_mode").value == "browser" and "live_processor" in at.session_state
    assert metrics(at)["Processed frames/s"] == "0.0" and metrics(at)["Main face"] == "–"
    assert any("no image, frame or face crop leaves your browser" in c.value for c in at.caption)
    assert any("only their 48x48 gray crops are sent" in c.value for c in at.caption)
    assert not at.button(key="calib_start").disabled  # the camera's state is the component's
    assert at.session_state["live_summaries"].seq is None  # no summary: no camera under AppTest
    assert any(MODELS_DIR.glob("emotion-*.onnx"))


# ---------------------------------------------------------------- train


def wait_for(predicate, timeout=TIMEOUT):
    event = threading.Event()
    for _ in range(int(timeout / 0.2)):
        if predicate():
            return True
        event.wait(0.2)
    return False


def test_train_from_the_data_folder_then_save_and_use(env):
    write_fer_folder(Path(env["FER_DATA_DIR"]))
    at = app("train")
    no_crash(at)
    at.toggle(key="train_quick").set_value(False)
    at.number_input(key="train_epochs").set_value(2)
    at.toggle(key="train_augment").set_value(False)
    at.button(key="train_start").click().run()
    no_crash(at)
    assert at.button(key="train_start").disabled
    assert MANAGER.wait(TIMEOUT)
    at.run()
    no_crash(at)
    assert "Training finished" in at.success[0].value
    assert metrics(at)["Images"] == "14"  # evaluated on public_test
    curves = next(s for s in plotly_specs(at) if s["data"][0].get("name") == "train")
    assert curves["data"][0]["x"] == [1, 2]
    assert any(s["data"][0]["type"] == "heatmap" for s in plotly_specs(at))
    at.button(key="train_save").click().run()
    saved = env["models"] / "fer_app_v1.keras"
    assert saved.is_file() and read_card(saved).epochs == 2
    assert at.button(key="train_save").disabled
    at.button(key="train_use").click().run()
    no_crash(at)
    assert registry.ACTIVE.get()[0] == saved
    assert at.sidebar.selectbox[0].value == str(saved)
    assert not (env["models"] / "fer_app_v2.keras").exists()  # "use" reused the saved file
    other = app()  # a new session opens on the active model
    assert other.sidebar.selectbox[0].value == str(saved)
    assert read_card(env["default"]).epochs == 3  # the shipped default is untouched


def test_train_csv_upload_progress_and_cancel(env):
    csv_path = write_csv(env["root"] / "fer2013.csv", {"train": make_split(40, 1), "public_test": make_split(4, 2)})
    at = app("train")
    at.radio(key="train_source").set_value("csv").run()
    at.file_uploader(key="train_csv").set_value(("fer2013.csv", csv_path.read_bytes(), "text/csv"))
    at.number_input(key="train_epochs").set_value(30)
    at.selectbox(key="train_batch").set_value(16)
    at.number_input(key="train_quick_n").set_value(200)
    at.button(key="train_start").click().run()
    no_crash(at)
    job = MANAGER.current()
    assert job is not None and job.request.quick_n == 200
    other = app("train")  # a second session must wait
    assert other.button(key="train_start").disabled
    assert "A training is running on this server" in other.info[0].value
    assert wait_for(lambda: job.snapshot()["history"])  # one epoch done
    at.run()
    assert at.get("progress") and "Remaining (estimate)" in metrics(at)
    at.button(key="train_cancel").click().run()
    assert MANAGER.wait(TIMEOUT)
    at.run()
    no_crash(at)
    snap = job.snapshot()
    assert snap["state"] == "cancelled" and snap["card"].epochs < 30
    assert "Training cancelled" in at.warning[0].value and "kept the best epoch" in at.warning[0].value
    assert snap["card"].data["splits"]["train"]["n"] == 200
    assert not any((Path(env["FER_WORK_DIR"]) / "uploads").iterdir())  # the upload was removed


def test_train_refuses_unsafe_zip_and_missing_data(env):
    at = app("train")
    assert "does not exist" in at.warning[0].value  # FER_DATA_DIR not created
    at.button(key="train_start").click().run()
    no_crash(at)
    assert "does not exist" in at.error[0].value and MANAGER.current() is None
    at.radio(key="train_source").set_value("zip").run()
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("happy/ok.png", b"x")
        zf.writestr("../../escape.txt", b"bad")
    at.file_uploader(key="train_zip").set_value(("faces.zip", evil.getvalue(), "application/zip"))
    at.button(key="train_start").click().run()
    no_crash(at)
    assert "Cannot use faces.zip" in at.error[0].value and "escapes" in at.error[0].value
    assert MANAGER.current() is None


def test_train_zip_of_own_faces_fine_tunes_the_active_model(env):
    at = app("train")
    at.radio(key="train_source").set_value("zip")
    at.radio(key="train_start_from").set_value("finetune").run()
    assert at.selectbox(key="train_arch_ft").value == "vgg" and at.selectbox(key="train_arch_ft").disabled
    at.file_uploader(key="train_zip").set_value(("faces.zip", class_zip(6), "application/zip"))
    at.number_input(key="train_epochs").set_value(1)
    at.button(key="train_start").click().run()
    no_crash(at)
    assert MANAGER.wait(TIMEOUT)
    at.run()
    no_crash(at)
    snap = MANAGER.current().snapshot()
    assert snap["state"] == "done", snap["error"]
    assert snap["card"].config["init_model"] == str(env["default"])
    assert "validation" in snap["card"].metrics


def test_reruns_leave_the_keras_state_alone(env):
    """Streamlit's per-run keras.backend.clear_session() is switched off (see ui/patches.py)."""
    from keras.src.backend.common import global_state
    from streamlit.runtime.scriptrunner import script_runner

    at = app("analyze")
    assert getattr(script_runner._clean_problem_modules, "fer_patch", False)
    tracker = global_state.GLOBAL_STATE_TRACKER
    at.run()
    at.run()
    assert global_state.GLOBAL_STATE_TRACKER is tracker


def test_the_keras_patch_finds_its_private_streamlit_hook():
    """Fails when a Streamlit upgrade removes the function ui/patches.py replaces."""
    from ui.patches import keep_keras_state

    assert keep_keras_state()


def test_the_app_says_so_when_the_keras_patch_has_nothing_to_patch(env, monkeypatch, caplog):
    from ui.patches import NOT_PATCHED

    monkeypatch.setattr("ui.patches.HOOK", "_removed_by_a_streamlit_upgrade")  # as if Streamlit dropped it
    at = app()
    no_crash(at)
    assert NOT_PATCHED in [w.value for w in at.warning]
    assert NOT_PATCHED in caplog.text
