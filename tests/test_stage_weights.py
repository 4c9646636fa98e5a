"""scripts/stage_weights.py: a run's weights through a float16 file and back, with the lineage kept."""

import subprocess
import sys
from pathlib import Path

import numpy as np

from fer.modelfile import load_model

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "stage_weights.py"


def run(*args):
    proc = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_float16_stage_file_rebuilds_the_model_and_its_lineage(model_path, tmp_path):
    stage, rebuilt = tmp_path / "stage.npz", tmp_path / "rebuilt.keras"
    run("save", model_path, stage)
    run("load", stage, rebuilt)
    (a, card_a), (b, card_b) = load_model(model_path), load_model(rebuilt)
    x = np.random.default_rng(0).integers(0, 255, (16, 48, 48, 1)).astype("float32")
    diff = np.abs(np.asarray(a(x)) - np.asarray(b(x))).max()
    assert 0 < diff < 2e-3  # float16 storage: close, not bit-identical
    assert card_b.architecture == card_a.architecture and card_b.epochs == card_a.epochs
    assert card_b.history == card_a.history and stage.stat().st_size < 0.7 * model_path.stat().st_size


def test_rebuild_keeps_the_float32_weights_and_the_card(model_path, tmp_path):
    rebuilt = tmp_path / "rebuilt.keras"
    assert "largest probability difference" in run("rebuild", model_path, rebuilt)
    (a, card_a), (b, card_b) = load_model(model_path), load_model(rebuilt)
    x = np.random.default_rng(1).integers(0, 255, (16, 48, 48, 1)).astype("float32")
    assert np.abs(np.asarray(a(x, training=False)) - np.asarray(b(x, training=False))).max() < 1e-6
    assert card_b.history == card_a.history and card_b.metrics == card_a.metrics
    assert "rebuilt from" in card_b.notes
