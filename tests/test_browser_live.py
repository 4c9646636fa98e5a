"""The Live page's in-browser mode without a browser: the committed build against its sources, the files
and numbers Python serves it (fer.browser_models), and the page-side helpers (ui.live). The browser
itself runs in tests/e2e/test_e2e_browser_live.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from app_helpers import REPO
from fer.browser_models import KEEP_FILES, browser_bundle, browser_profile, live_recipe
from fer.modelfile import ModelCard
from fer.onnx_runtime import OnnxEnsemble

COMPONENT = REPO / "ui" / "browser_live"
FRONTEND, BUILD = COMPONENT / "frontend", COMPONENT / "build"
ORT_FILES = {"ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- the committed build

def test_build_matches_its_sources():
    """Rebuild with `cd ui/browser_live/frontend && npm ci && npm run build` when this fails."""
    manifest = json.loads((BUILD / "manifest.json").read_text())
    sources = {f"src/{p.name}": sha256(p) for p in sorted((FRONTEND / "src").iterdir())}
    sources.update({name: sha256(FRONTEND / name) for name in ("package.json", "package-lock.json", "build.mjs")})
    assert manifest["sources"] == sources, "the build is older than frontend/: run npm ci && npm run build there"
    built = {p.name for p in BUILD.iterdir() if p.is_file() and p.name != "manifest.json"}
    assert built == {p.name for p in (FRONTEND / "src").iterdir()} | ORT_FILES  # nothing else ships
    for name in built:
        assert manifest["files"][name] == sha256(BUILD / name), name
    for source in (FRONTEND / "src").iterdir():
        assert (BUILD / source.name).read_bytes() == source.read_bytes()


def test_build_uses_the_locked_onnxruntime_web():
    manifest = json.loads((BUILD / "manifest.json").read_text())
    lock = json.loads((FRONTEND / "package-lock.json").read_text())
    declared = json.loads((FRONTEND / "package.json").read_text())["dependencies"]["onnxruntime-web"]
    assert manifest["onnxruntime-web"] == lock["packages"]["node_modules/onnxruntime-web"]["version"] == declared
    size = sum((BUILD / name).stat().st_size for name in ORT_FILES)
    assert size < 16e6, f"the engine's files take {size / 1e6:.1f} MB: only the single-threaded WASM build ships"


# ---------------------------------------------------------------- what Python serves

def tiny_graph(bias: float) -> bytes:
    """A real ONNX classifier (n, 48, 48, 1) -> (n, 7): mean pixel times a weight plus a bias, softmax."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 7], [0.01 * k for k in range(7)])
    b = helper.make_tensor("b", TensorProto.FLOAT, [7], [bias] * 7)
    nodes = [helper.make_node("ReduceMean", ["face"], ["m"], keepdims=0, axes=[1, 2, 3]),
             helper.make_node("Unsqueeze", ["m", "axes"], ["m2"]),
             helper.make_node("Gemm", ["m2", "w", "b"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    face = helper.make_tensor_value_info("face", TensorProto.FLOAT, ["n", 48, 48, 1])
    probs = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", 7])
    graph = helper.make_graph(nodes, "tiny", [face], [probs], [w, b, axes])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def ensemble(bias: float = 0.0, **kw) -> OnnxEnsemble:
    prior = [0.14, 0.02, 0.14, 0.25, 0.17, 0.11, 0.17]
    return OnnxEnsemble([tiny_graph(bias)], [ModelCard("tiny")], prior=np.array(prior) / sum(prior), tau=0.35, **kw)


def test_bundle_writes_content_keyed_models(tmp_path):
    first = browser_bundle(ensemble(0.0), tmp_path)
    assert (tmp_path / first.detector).is_file() and (tmp_path / first.model).is_file()
    assert browser_bundle(ensemble(0.0), tmp_path).model == first.model  # same graph, same name
    other = browser_bundle(ensemble(1.0), tmp_path)
    assert other.model != first.model and other.detector == first.detector
    config = first.config()
    assert config["model"] == first.model and config["tau"] == 0.35 and len(config["prior"]) == 7


def test_served_detector_takes_any_size_and_answers_as_here(tmp_path):
    """The served CenterFace copy has free input dims and gives the maps ONNX Runtime gives the detector here."""
    import onnxruntime as ort

    from fer.detectors import get_detector

    bundle = browser_bundle(ensemble(), tmp_path)
    model = onnx.load(str(tmp_path / bundle.detector))
    assert [i.name for i in model.graph.input] == ["input.1"]  # no weights listed as inputs
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 128, 160)).astype(np.float32)
    served = ort.InferenceSession(str(tmp_path / bundle.detector), providers=["CPUExecutionProvider"])
    here = get_detector("centerface").session
    for a, b in zip(served.run(None, {"input.1": x}), here.run(None, {here.get_inputs()[0].name: x})):
        assert a.shape == b.shape and np.allclose(a, b, atol=1e-5)


def test_recipe_numbers_come_from_the_python_live_path():
    from fer.detectors import NMS_IOU, CenterFace
    from fer.faces import FER2013_LANDMARKS
    from fer.inference import FaceTracker
    from fer.stream import LK_PARAMS, LiveStream

    recipe = live_recipe(ensemble())
    stream = LiveStream.__init__.__kwdefaults__
    assert (recipe["detect_every"], recipe["detect_size"]) == (stream["detect_every"], stream["detect_size"])
    assert recipe["max_flow_error"] == stream["max_flow_error"] and recipe["stable_eyes"] == stream["stable_eyes"]
    assert recipe["landmarks"] == FER2013_LANDMARKS.tolist() and recipe["stride"] == CenterFace.STRIDE
    assert recipe["nms_iou"] == NMS_IOU and recipe["flow_window"] == LK_PARAMS["winSize"][0]
    assert recipe["flow_levels"] == LK_PARAMS["maxLevel"]
    assert recipe["alpha"] == FaceTracker().alpha and recipe["labels"] == list(ModelCard("tiny").labels)


def test_bundle_refuses_an_ensemble_and_prunes_old_models(tmp_path):
    two = OnnxEnsemble([tiny_graph(0.0), tiny_graph(1.0)], [ModelCard("tiny"), ModelCard("tiny")])
    with pytest.raises(ValueError, match="one model in one pass.*browser_profile"):
        browser_bundle(two, tmp_path)
    for k in range(KEEP_FILES + 2):
        browser_bundle(ensemble(float(k)), tmp_path)
    assert len(list(tmp_path.glob("emotion-*.onnx"))) == KEEP_FILES


def test_browser_runs_the_live_profiles_first_member_alone_under_its_own_correction():
    """The shipped models in the page: the live profile's first model, one pass, its card's prior and tau
    (as for a model of the user's own), not the whole live profile."""
    from fer.modelfile import read_card
    from fer.profiles import member_files

    first = member_files("live")[0][0]
    shipped = browser_profile()
    assert len(shipped.graphs) == 1 and shipped.tta is None and shipped.passes == 1
    card = read_card(first)
    assert shipped.tau == card.tau and np.allclose(shipped.prior, card.prior)
    faces = np.random.default_rng(3).integers(0, 255, (4, 48, 48), dtype=np.uint8)
    np.testing.assert_allclose(shipped.probabilities(faces), browser_profile(first).probabilities(faces), atol=1e-6)


def test_bundle_in_an_unwritable_folder_says_so(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="cannot write the in-browser models"):
        browser_bundle(ensemble(), blocker / "models")


# ---------------------------------------------------------------- the page's helpers

def test_default_mode_is_the_browser_on_a_host_without_turn():
    from ui.live import BROWSER, SERVER, default_mode, has_turn, is_local

    stun = [{"urls": ["stun:stun.l.google.com:19302"]}]
    turn = [*stun, {"urls": ["turn:relay.example.org:3478"], "username": "u", "credential": "c"}]
    assert has_turn(turn) and not has_turn(stun) and has_turn([{"urls": "turns:relay.example.org"}])
    assert default_mode(stun, "fer-demo.streamlit.app") == BROWSER
    assert default_mode(turn, "fer-demo.streamlit.app") == SERVER
    assert all(is_local(h) for h in ("localhost:8501", "127.0.0.1:8501", "[::1]:8501", "LOCALHOST"))
    assert not is_local("example.org:8501") and default_mode(stun, "localhost:8501") == SERVER
    assert default_mode(stun, None) == SERVER  # no browser request (AppTest): the page as it was


def test_browser_summaries_feed_the_timeline_once():
    from ui.live import BrowserSummaries, Timeline

    probs = [0.05, 0.0, 0.05, 0.7, 0.1, 0.05, 0.05]
    summary = {"seq": 3, "t": 1000.0, "playing": True, "fps": 24.5, "camera_fps": 30.0, "latency_ms": 31.0,
               "behind_ms": 45.0, "skipped": 7, "n_faces": 1, "emotion": "happy", "score": 0.7, "probs": probs,
               "points": [[999.2, probs], [999.6, probs]]}
    summaries, timeline = BrowserSummaries(), Timeline()
    timeline.extend(summaries.results(summary), now=1000.0)
    timeline.extend(summaries.results(summary), now=1000.0)  # a rerun that is not the component's
    assert len(timeline.points) == 2 and timeline.last.fps == 24.5 and timeline.last.emotion == "happy"
    assert timeline.last.skipped == 7 and timeline.last.behind_ms == 45.0
    assert summaries.results(None) == [] and summaries.results({"seq": 4, "points": [[1.0, [1.0]]]})[-1].n_faces == 0
    csv = timeline.csv().decode().splitlines()
    assert csv[0] == "seconds,emotion,angry,disgust,fear,happy,sad,surprise,neutral"
    assert csv[1].startswith("0.000,happy,0.0500") and csv[2].startswith("0.400,happy")


def test_browser_summaries_carry_a_crop_only_when_given_a_valid_one():
    import base64

    from ui.live import BrowserSummaries

    summaries, crop = BrowserSummaries(), np.arange(48 * 48, dtype=np.uint32).astype(np.uint8).reshape(48, 48)
    summaries.results({"seq": 1, "playing": True})
    assert summaries.latest_face() is None and summaries.playing
    for bad in ("not base64!", base64.b64encode(b"short").decode(), 12):
        summaries.results({"seq": bad, "crop": bad})
        assert summaries.latest_face() is None
    summaries.results({"seq": 2, "crop": base64.b64encode(crop.tobytes()).decode(), "playing": False})
    got, t = summaries.latest_face()
    assert np.array_equal(got, crop) and t > 0 and not summaries.playing


def test_benchmark_script_runs():
    """benchmarks/browser_live.py (named in docs/browser_live.md) still imports and parses its options."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "browser_live.py"), "--help"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "--seconds" in out.stdout and "--modes" in out.stdout
