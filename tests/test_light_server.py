"""A light server: Home and an analysed photo run on ONNX Runtime, without importing TensorFlow or Keras.

Runs the app (Streamlit's AppTest) on the shipped models in a fresh process with an empty cache, as a
freshly deployed host would, and reads that process's ``sys.modules`` at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from app_helpers import face_photo

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("tensorflow", "keras", "tf2onnx", "jax", "torch")

SCRIPT = """
import json, sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=180).run()
home = [e.message for e in at.exception]
at.switch_page("app_pages/analyze.py").run()
photo = open(sys.argv[2], "rb").read()
at.file_uploader(key="analyze_uploads").set_value(("face.jpg", photo, "image/jpeg")).run()
table = at.dataframe[0].value if at.dataframe else None
rec = at.session_state["_selection"]
from ui import state
print(json.dumps({"errors": home + [e.message for e in at.exception] + [e.value for e in at.error],
                  "faces": 0 if table is None else len(table),
                  "engine": state._load_recognizer(rec.key, state.PHOTO_PROFILE).engine,
                  "heavy": sorted(m for m in %r if m in sys.modules)}))
""" % (HEAVY,)


def test_home_and_an_analysed_photo_import_no_tensorflow(tmp_path):
    env = {**os.environ, "FER_CACHE_DIR": str(tmp_path / "cache"), "FER_MODELS_DIR": str(tmp_path / "models"),
           "FER_WORK_DIR": str(tmp_path / "work"), "FER_DATA_DIR": str(tmp_path / "data"),
           "FER_DEFAULT_MODEL": str(REPO / "models" / "fer_default.keras"), "FER_ICE_SERVERS": "[]"}
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(REPO / "app.py"), str(face_photo())], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["errors"] == [] and got["faces"] >= 1 and got["engine"] == "onnx"
    assert got["heavy"] == [], f"the Analyze page imported {got['heavy']}"
    assert not (tmp_path / "cache" / "onnx").exists()  # the committed graphs: nothing converted


def test_a_model_onnx_cannot_take_runs_on_keras_in_the_app(tmp_path, monkeypatch):
    """The app's fallback: a layer with no ONNX counterpart gives a Keras recognizer, not an error."""
    from fer.modelfile import ModelCard, save_model
    from test_export import odd_model
    from ui import state

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    path = save_model(odd_model(), tmp_path / "odd.keras", ModelCard(architecture="odd"))
    key = f"{path.resolve()}|{path.stat().st_mtime_ns}"
    assert state._cached_recognizer(key, state.LIVE_PROFILE, "onnx").engine == "keras"
    assert state.configured_engine() == "onnx"
