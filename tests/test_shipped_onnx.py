"""The committed ONNX graphs of the shipped models (models/NAME.onnx) match their .keras files, and are used."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fer.export import PARITY_TOLERANCE, parity_faces
from fer.onnx_runtime import committed_graph, committed_paths, onnx_for_file
from fer.profiles import member_files, read_manifest

REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted({f for name in read_manifest()["profiles"] for f in member_files(name)[0]})
REGENERATE = "run: python scripts/export_onnx_models.py"


@pytest.mark.parametrize("model", SHIPPED, ids=lambda p: p.name)
def test_each_shipped_model_has_a_current_committed_graph(model):
    onnx_path, meta_path = committed_paths(model)
    assert onnx_path.is_file() and meta_path.is_file(), f"{onnx_path.name} is missing; {REGENERATE}"
    assert committed_graph(model) is not None, f"{onnx_path.name} was made from another {model.name}; {REGENERATE}"
    assert json.loads(meta_path.read_text())["source"] == model.name


@pytest.mark.parametrize("model", SHIPPED, ids=lambda p: p.name)
def test_each_committed_graph_gives_the_keras_probabilities(model):
    from fer.modelfile import load_model
    from fer.onnx_runtime import OnnxClassifier
    from fer.predictor import predict_proba

    faces = parity_faces(16, seed=3)
    got = OnnxClassifier(committed_graph(model))(faces)
    assert np.abs(got - predict_proba(load_model(model)[0], faces)).max() <= PARITY_TOLERANCE


def test_a_stale_or_tampered_graph_is_not_used(tmp_path, monkeypatch):
    """A sidecar recording another .keras, or a graph whose bytes changed, falls back to converting and caching."""
    model = SHIPPED[0]
    for f in (model, *committed_paths(model)):
        shutil.copy(f, tmp_path)
    copy = tmp_path / model.name
    onnx_path, meta_path = committed_paths(copy)
    assert committed_graph(copy) == onnx_path.read_bytes()
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "source_sha256": "0" * 64}))
    assert committed_graph(copy) is None
    meta_path.write_text(json.dumps(meta))
    onnx_path.write_bytes(onnx_path.read_bytes() + b"\0")
    assert committed_graph(copy) is None
    meta_path.write_text("{not json")
    assert committed_graph(copy) is None
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    shutil.copy(model.with_suffix(".json"), tmp_path)  # the card, which loading the .keras needs
    converted = onnx_for_file(copy)
    assert len(list((tmp_path / "cache" / "onnx").glob("*.onnx"))) == 1
    assert converted.startswith(b"\x08")  # an ONNX ModelProto (ir_version first)


def test_a_fresh_host_converts_nothing(tmp_path):
    """Both shipped profiles load from the committed graphs: no Keras import, nothing written to the cache."""
    code = ("import sys, numpy as np; from fer.onnx_runtime import load_onnx_profile; "
            "p = [load_onnx_profile(n).probabilities(np.full((2, 48, 48), 90, np.uint8)) for n in ('live', 'photo')]; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'tf2onnx') if m in sys.modules), p[1].shape)")
    env = {**os.environ, "FER_CACHE_DIR": str(tmp_path / "cache")}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "[] (2, 7)"
    assert not (tmp_path / "cache").exists()
