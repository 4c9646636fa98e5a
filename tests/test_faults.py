"""Faults: the training worker killed (-9) mid-epoch and mid-save, a save killed between its temp write
and its rename, and a damaged active model. Saved models and the active model must stay intact and
loadable, a fresh registry listing ("server restart") must find every saved model, and the app must
fall back to the shipped default with a visible warning."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from app_helpers import REPO, face_photo
from fer.app_services import registry
from fer.modelfile import load_model, read_card
from synth import make_split, write_csv

TIMEOUT = 180
WORKER_TIMEOUT = 600  # the worker runs at a lower priority: slow to start on a busy machine


@pytest.fixture()
def models(app_with_model):
    """A models folder: the shipped default (the small test model) and one saved model, fer_app_v1, active."""
    default = app_with_model["default"]
    saved = registry.save_as_new(default, default.parent, default, note="saved before the faults")
    registry.ACTIVE.set(saved)
    return {"root": app_with_model["root"], "default": default, "dir": default.parent, "saved": saved}


def assert_all_intact(m: dict, extra: tuple[Path, ...] = ()) -> None:
    """Every saved model loads; a fresh listing (a restarted server) finds them all, usable; the active one is kept."""
    registry._checked.clear()  # a restarted server has checked nothing yet
    entries = registry.list_models(m["dir"], m["default"])
    assert [e.path for e in entries] == [m["default"], m["saved"], *extra]
    assert all(e.usable for e in entries), [e.error for e in entries]
    for e in entries:
        load_model(e.path)
    assert registry.ACTIVE.get()[0] == m["saved"]


# ---------------------------------------------------------------- the training worker killed


def start_training(root: Path):
    from fer.app_services.jobs import JobManager, TrainRequest
    from fer.training import TrainConfig

    data = write_csv(root / "fer2013.csv", {"train": make_split(20, 1), "public_test": make_split(2, 2)})
    cfg = TrainConfig(arch="vgg", epochs=100, batch_size=16, augment=False, warmup_epochs=0)
    manager = JobManager()
    job = manager.start(TrainRequest(data, "generated", cfg, use_cache=False), root / "work")
    return manager, job


def wait_until(predicate, timeout: float = TIMEOUT, poll: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    event = threading.Event()
    while time.monotonic() < deadline:
        if predicate():
            return True
        event.wait(poll)
    return False


def kill_worker(manager, job) -> None:
    proc = job._proc
    assert proc is not None and proc.poll() is None, "the worker is not running"
    os.kill(proc.pid, signal.SIGKILL)
    assert manager.wait(60)
    snap = job.snapshot()
    assert snap["state"] == "failed" and "ended unexpectedly (exit code -9)" in snap["error"], snap


@pytest.mark.slow
def test_worker_killed_mid_epoch(models):
    from fer.training import run_dir

    manager, job = start_training(models["root"])
    try:
        # the first epoch is saved (best.keras), the second is under way
        assert wait_until(lambda: job.snapshot()["epoch"] >= 1 and job.snapshot()["step"] >= 1 and job.running,
                          WORKER_TIMEOUT), job.snapshot()
        kill_worker(manager, job)
    finally:
        job.cancel()
        manager.wait(60)
    rdir = run_dir(job.out_path)
    load_model_file(rdir / "best.keras")  # the run's own checkpoint is complete, too
    json.loads((rdir / "state.json").read_text())
    assert_all_intact(models)


@pytest.mark.slow
def test_worker_killed_mid_save(models):
    """Killed while a checkpoint is being written (its temp file exists, not yet renamed)."""
    from fer.training import run_dir

    manager, job = start_training(models["root"])
    rdir = run_dir(job.out_path)

    def saving() -> bool:
        try:
            return any(p.startswith(".") and p.endswith(".keras") for p in os.listdir(rdir))
        except FileNotFoundError:
            return False

    try:
        assert wait_until(saving, WORKER_TIMEOUT, poll=0.001), job.snapshot()
        kill_worker(manager, job)
    finally:
        job.cancel()
        manager.wait(60)
    assert [p for p in os.listdir(rdir) if p.startswith(".")], "the kill did not land mid-save"
    for name in ("best.keras", "last.keras"):  # absent (first save) or the previous complete one
        if (rdir / name).exists():
            load_model_file(rdir / name)
    assert_all_intact(models)


def load_model_file(path: Path) -> None:
    import keras

    import fer.model  # noqa: F401 - registers the custom layers

    keras.saving.load_model(path, compile=False, safe_mode=True)


# ---------------------------------------------------------------- saves killed between temp write and rename


KILL_ON_RENAME = """
import os, signal, sys
from pathlib import Path
real = os.replace
def replace(src, dst):
    if os.environ.get("FER_KILL_ON") in str(dst):
        os.kill(os.getpid(), signal.SIGKILL)  # the temp file is written; the rename never happens
    real(src, dst)
os.replace = replace
"""


def run_killed(script: str, kill_on: str) -> None:
    env = {**os.environ, "FER_KILL_ON": kill_on, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", KILL_ON_RENAME + textwrap.dedent(script)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


def test_save_as_new_killed_before_rename(models):
    """"Save as new model" killed mid-save: nothing half-written is listed; the next save works."""
    script = f"""
    from pathlib import Path
    from fer.app_services.registry import save_as_new
    save_as_new(Path({str(models['default'])!r}), Path({str(models['dir'])!r}), Path({str(models['default'])!r}))
    """
    run_killed(script, "fer_app_v2.keras")
    assert [p for p in os.listdir(models["dir"]) if p.startswith(".fer_app_v2")]  # the orphaned temp file
    assert_all_intact(models)
    run_killed(script, "fer_app_v2.json")  # now killed between the model's rename and the card's
    assert_all_intact(models)  # a model without its card is not offered
    again = registry.save_as_new(models["default"], models["dir"], models["default"])
    assert again.name == "fer_app_v3.keras" and read_card(again).architecture == "vgg"
    assert_all_intact(models, (again,))


def test_save_model_killed_before_rename_keeps_the_old_file(models):
    """Overwriting a model file (fer.save_model) killed mid-save: the old model and card still load."""
    target = models["saved"]
    before = target.read_bytes()
    script = f"""
    from pathlib import Path
    from fer.model import build_model
    from fer.modelfile import ModelCard, save_model
    save_model(build_model("vgg", augment=False), Path({str(target)!r}), ModelCard(architecture="vgg"))
    """
    run_killed(script, target.name)
    assert target.read_bytes() == before
    assert_all_intact(models)


# ---------------------------------------------------------------- a damaged active model


def corrupt(path: Path, how: str) -> None:
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "bit flips":
        mid = len(raw) // 2
        path.write_bytes(raw[:mid] + bytes(b ^ 0x5A for b in raw[mid : mid + 4096]) + raw[mid + 4096 :])
    else:
        path.unlink()


@pytest.mark.parametrize("how", ["truncated", "bit flips", "deleted"])
def test_damaged_active_model_falls_back_to_the_default(models, how):
    from streamlit.testing.v1 import AppTest

    corrupt(models["saved"], how)
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.sidebar.selectbox[0].value == str(models["default"])
    warning = at.sidebar.warning[0].value
    assert "fer_app_v1" in warning and "cannot be used" in warning and "shipped default" in warning
    at.switch_page("app_pages/analyze.py").run()
    photo = face_photo()
    at.file_uploader(key="analyze_uploads").set_value((photo.name, photo.read_bytes(), "image/jpeg")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert list(at.dataframe[0].value["image"]) == [photo.name]  # analysed with the default
    assert "fer_app_v1" in at.sidebar.warning[0].value  # still said on every page
    load_model(models["default"])  # the default itself was never touched
