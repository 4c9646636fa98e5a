"""The app's non-Streamlit parts: settings, safe zip extraction, model registry, training jobs."""

import io
import json
import stat
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from app_helpers import REPO, class_zip
from fer.app_services import registry
from fer.app_services.archive import UnsafeArchive, dataset_root, safe_extract
from fer.app_services.jobs import JobBusy, JobManager, TrainRequest, stage_upload, subset
from fer.app_services.settings import DEFAULT_STUN, Settings, ice_servers
from fer.data import Dataset, Split, load_dataset
from fer.labels import EMOTIONS
from fer.modelfile import card_path, read_card
from synth import make_split

# ---------------------------------------------------------------- settings


def test_settings_defaults_and_env(tmp_path):
    s = Settings.load({}, {})
    assert s.default_model.name == "fer_default.keras" and s.models_dir.name == "models"
    assert s.data_dir.name == "data"
    assert s.ice_servers == [{"urls": [DEFAULT_STUN]}]
    env = {"FER_MODELS_DIR": str(tmp_path / "m"), "FER_DATA_DIR": str(tmp_path / "d"), "FER_MAX_ZIP_MB": "5"}
    s = Settings.load({}, env)
    assert s.models_dir == tmp_path / "m" and s.default_model == REPO / "models" / "fer_default.keras"
    assert s.data_dir == tmp_path / "d" and s.max_zip_mb == 5
    # secrets win over the environment
    assert Settings.load({"FER_DATA_DIR": "/x"}, env).data_dir == Path("/x")
    assert Settings.load({"fer_data_dir": "/y"}, env).data_dir == Path("/y")


def test_settings_reject_bad_numbers():
    with pytest.raises(ValueError, match="FER_MAX_ZIP_MB"):
        Settings.load({}, {"FER_MAX_ZIP_MB": "lots"})
    with pytest.raises(ValueError, match="positive"):
        Settings.load({}, {"FER_MAX_ZIP_FILES": "0"})


def test_engine_setting_defaults_to_onnx_and_refuses_others():
    assert Settings.load({}, {}).engine == "onnx"
    assert Settings.load({"FER_ENGINE": "Keras"}, {"FER_ENGINE": "onnx"}).engine == "keras"  # secrets first
    with pytest.raises(ValueError, match="FER_ENGINE must be one of keras, onnx.*got 'tpu'"):
        Settings.load({}, {"FER_ENGINE": "tpu"})


def test_browser_int8_setting_defaults_to_on():
    assert Settings.load({}, {}).browser_int8 is True
    assert Settings.load({}, {"FER_BROWSER_INT8": "off"}).browser_int8 is False
    with pytest.raises(ValueError, match="FER_BROWSER_INT8 must be on or off"):
        Settings.load({}, {"FER_BROWSER_INT8": "maybe"})


def test_ice_servers_turn_from_env_and_secrets():
    env = {"FER_TURN_URLS": "turn:t.example:3478,turns:t.example:5349", "FER_TURN_USERNAME": "u",
           "FER_TURN_CREDENTIAL": "p"}
    servers = ice_servers({}, env)
    assert servers[0] == {"urls": [DEFAULT_STUN]}
    assert servers[1] == {"urls": ["turn:t.example:3478", "turns:t.example:5349"], "username": "u", "credential": "p"}
    servers = ice_servers({"turn": {"urls": ["turn:s"], "username": "a", "credential": "b"}}, {})
    assert servers[1]["username"] == "a"
    with pytest.raises(ValueError, match="username and a credential"):
        ice_servers({}, {"FER_TURN_URLS": "turn:x"})


def test_ice_servers_full_list_and_empty():
    assert ice_servers({}, {"FER_ICE_SERVERS": "[]"}) == []
    full = [{"urls": "stun:a"}, {"urls": ["turn:b"], "username": "u", "credential": "c"}]
    assert ice_servers({}, {"FER_ICE_SERVERS": json.dumps(full)}) == full
    assert ice_servers({"ice_servers": full}, {"FER_ICE_SERVERS": "[]"}) == full
    with pytest.raises(ValueError, match="not valid JSON"):
        ice_servers({}, {"FER_ICE_SERVERS": "[{"})
    with pytest.raises(ValueError, match="urls"):
        ice_servers({}, {"FER_ICE_SERVERS": '[{"user": 1}]'})


# ---------------------------------------------------------------- archives


def _zip(entries: dict[str, bytes], *, symlink: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def test_safe_extract_and_dataset_root(tmp_path):
    data = class_zip(4, wrapper="faces")
    out = safe_extract(data, tmp_path / "x", max_bytes=10_000_000, max_files=1000)
    root = dataset_root(out)
    assert root == out / "faces"
    ds = load_dataset(root, use_cache=False)
    assert len(ds.split("train")) == 4 * len(EMOTIONS)


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt", "C:/evil.txt", "..\\evil.txt"])
def test_zip_slip_refused(tmp_path, name):
    dest = tmp_path / "x"
    with pytest.raises(UnsafeArchive, match="escapes"):
        safe_extract(_zip({"happy/ok.txt": b"1", name: b"bad"}), dest, max_bytes=10**6, max_files=100)
    assert not (tmp_path / "evil.txt").exists()
    assert list(dest.iterdir()) == []  # nothing left behind


def test_symlink_refused(tmp_path):
    with pytest.raises(UnsafeArchive, match="symbolic links"):
        safe_extract(_zip({"happy/a.txt": b"1"}, symlink="happy/link"), tmp_path / "x", max_bytes=10**6, max_files=100)


def test_zip_bomb_refused_by_size_and_count(tmp_path):
    bomb = _zip({"happy/zeros.bin": b"\0" * 5_000_000})  # compresses to a few kB
    assert len(bomb) < 50_000
    with pytest.raises(UnsafeArchive, match="inflates"):
        safe_extract(bomb, tmp_path / "a", max_bytes=1_000_000, max_files=100)
    assert list((tmp_path / "a").iterdir()) == []
    many = _zip({f"happy/{i}.txt": b"x" for i in range(30)})
    with pytest.raises(UnsafeArchive, match="more than 20 files"):
        safe_extract(many, tmp_path / "b", max_bytes=10**6, max_files=20)


def test_lying_sizes_are_caught_while_writing(tmp_path):
    """A member whose header declares a small size but inflates to more is stopped at the cap."""
    data = bytearray(_zip({"happy/zeros.bin": b"\0" * 3_000_000}))
    # Patch the declared uncompressed size (central directory) to 10 bytes.
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24 : cd + 28] = (10).to_bytes(4, "little")
    with pytest.raises(UnsafeArchive):
        safe_extract(bytes(data), tmp_path / "x", max_bytes=1_000_000, max_files=100)


def test_not_a_zip_and_no_class_folders(tmp_path):
    with pytest.raises(UnsafeArchive, match="not a readable zip"):
        safe_extract(b"hello", tmp_path / "x", max_bytes=10**6, max_files=10)
    out = safe_extract(_zip({"docs/readme.txt": b"hi", "pics/a.txt": b"x"}), tmp_path / "y",
                       max_bytes=10**6, max_files=10)
    with pytest.raises(ValueError, match="no emotion class folders"):
        dataset_root(out)


def test_stage_upload_csv_and_zip(tmp_path):
    path, folder = stage_upload("zip", class_zip(2), tmp_path, max_bytes=10**7, max_files=100)
    assert path.name == "my_faces" and path.is_relative_to(folder)
    path, folder = stage_upload("csv", b"emotion,pixels,Usage\n", tmp_path, max_bytes=10**7, max_files=100)
    assert path.read_bytes().startswith(b"emotion") and folder.is_dir()
    with pytest.raises(UnsafeArchive):
        stage_upload("zip", b"not a zip", tmp_path, max_bytes=10**7, max_files=100)
    assert len(list((tmp_path / "uploads").iterdir())) == 2  # the failed one was removed


# ---------------------------------------------------------------- registry


def _fake_trained(tmp_path, model_path: Path, name: str) -> Path:
    """A copy of the shared model under another name (as a finished training leaves it)."""
    out = tmp_path / "run" / f"{name}.keras"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(model_path.read_bytes())
    card_path(out).write_text(card_path(model_path).read_text())
    return out


def test_registry_lists_and_saves_versions(tmp_path, model_path):
    model = model_path
    models = tmp_path / "models"
    models.mkdir()
    default = models / "fer_default.keras"
    assert registry.list_models(models, default) == []
    default.write_bytes(model.read_bytes())
    card_path(default).write_text(card_path(model).read_text())
    (models / "orphan.keras").write_bytes(b"no card")  # ignored: no card beside it
    entries = registry.list_models(models, default)
    assert [e.is_default for e in entries] == [True]
    assert entries[0].label().startswith("shipped default (vgg, ")

    trained = _fake_trained(tmp_path, model, "t1")
    first = registry.save_as_new(trained, models, default, note="trained in a test")
    second = registry.save_as_new(trained, models, default)
    assert (first.name, second.name) == ("fer_app_v1.keras", "fer_app_v2.keras")
    assert read_card(first).notes == "trained in a test"
    assert default.read_bytes() == model.read_bytes()  # never overwritten
    names = [e.name for e in registry.list_models(models, default)]
    assert names == ["fer_default", "fer_app_v1", "fer_app_v2"]
    (models / "fer_app_v10.keras").write_bytes(b"x")
    assert registry.next_version_path(models).name == "fer_app_v11.keras"


def test_registry_reports_unreadable_cards(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "broken.keras").write_bytes(b"x")
    (models / "broken.json").write_text("{not json")
    [entry] = registry.list_models(models, models / "fer_default.keras")
    assert entry.card is None and "not valid JSON" in entry.error and "unreadable" in entry.label()


def test_active_model_versions():
    active = registry.ActiveModel()
    assert active.get() == (None, 0)
    v = active.set(Path("/m/a.keras"))
    assert active.get() == (Path("/m/a.keras"), v) and v == 1


# ---------------------------------------------------------------- jobs


def test_subset_sizes_and_sources():
    x, y = make_split(20, 0)
    tx, ty = make_split(10, 1)
    splits = {"train": Split(x, y), "public_test": Split(tx, ty), "private_test": Split(tx, ty)}
    data = Dataset("src", "folders", splits)
    small = subset(data, 50, seed=1)
    assert len(small.splits["train"]) == 50 and len(small.splits["public_test"]) == 50
    assert "private_test" not in small.splits and "quick run: 50 of 140" in small.source
    rows = {img.tobytes() for img in x}
    assert all(img.tobytes() in rows for img in small.splits["train"].x)  # real images, not copies
    tree = Dataset("tree", "class_tree", {"train": Split(x, y)})
    assert set(subset(tree, 1000).splits) == {"train"} and len(subset(tree, 1000).splits["train"]) == 140
    with pytest.raises(ValueError, match="at least 14"):
        subset(tree, 5)


def test_missing_data_fails_with_the_loaders_message(tmp_path):
    from fer.training import TrainConfig

    manager = JobManager()
    request = TrainRequest(tmp_path / "missing", "missing", TrainConfig(), use_cache=False)
    job = manager.start(request, tmp_path / "runs")
    assert manager.wait(120)
    snap = job.snapshot()
    assert snap["state"] == "failed" and "does not exist" in snap["error"] and not snap["running"]
    assert snap["result_path"] is None and snap["card"] is None


# ---------------------------------------------------------------- live pipeline pieces


def test_fps_meter():
    from ui.live import FpsMeter

    meter = FpsMeter()
    assert meter.tick(100.0) == 0.0
    assert meter.tick(100.5) == pytest.approx(2.0)
    for i in range(2, 40):
        fps = meter.tick(100.0 + 0.5 + i * 0.1)
    assert fps == pytest.approx(10.0, rel=0.05)  # converges to the new rate
    assert meter.tick(200.0) == 0.0  # after a long pause it starts afresh


def test_results_queue_drops_the_oldest_and_timeline_keeps_a_minute():
    from ui.live import FrameResult, LiveProcessor, Timeline

    proc = LiveProcessor(queue_size=3)
    items = [FrameResult(t=float(i), fps=1.0, n_faces=1, emotion="happy", score=0.9,
                         scores={e: 1 / 7 for e in EMOTIONS}, latency_ms=5.0) for i in range(5)]
    for item in items:
        proc.put(item)  # never blocks the frame callback
    drained = proc.drain()
    assert [d.t for d in drained] == [2.0, 3.0, 4.0] and proc.drain() == []
    timeline = Timeline(window_s=60)
    timeline.extend(items[:2] + [FrameResult(100.0, 1.0, 0, None, 0.0, {}, 1.0)], now=100.0)
    assert timeline.last.n_faces == 0 and len(timeline.points) == 0  # old points and faceless frames dropped
    timeline.extend([FrameResult(t, 1.0, 1, "sad", 0.5, {"sad": 0.5}, 1.0) for t in (50.0, 95.0)], now=100.0)
    times, scores = timeline.series(now=100.0)
    assert times == [-50.0, -5.0] and scores[0] == {"sad": 0.5}


def test_live_processor_draws_and_reports_the_main_face(model_path):
    from fer.inference import EmotionRecognizer
    from scenes import group
    from ui.live import LiveProcessor

    scene = group(2)
    proc = LiveProcessor()
    proc.configure(EmotionRecognizer(model_path), "test-model", smoothing=True, min_score=0.5)
    out = proc.process(scene.image)  # what the frame callback does with each frame
    assert out.shape == scene.image.shape and (out != scene.image).any()
    [result] = proc.drain()
    assert result.n_faces == len(scene.boxes) and result.emotion in EMOTIONS
    assert sum(result.scores.values()) == pytest.approx(1.0, abs=1e-3)
    blank = np.zeros((240, 320, 3), np.uint8)
    assert (proc.process(blank) == blank).all()
    assert proc.drain()[0].n_faces == 0


def test_one_job_at_a_time_and_a_killed_worker_is_reported(tmp_path):
    """A second start is refused while one runs; if the training process dies (out of memory,
    killed), the job fails with a message instead of hanging."""
    import signal

    from fer.training import TrainConfig
    from synth import write_kaggle_folders

    data_dir = write_kaggle_folders(tmp_path / "d", {"train": make_split(4, 1)})
    manager = JobManager()
    cfg = TrainConfig(arch="vgg", epochs=100, batch_size=4, augment=False, warmup_epochs=0)
    job = manager.start(TrainRequest(data_dir, "tiny", cfg, use_cache=False), tmp_path / "runs")
    with pytest.raises(JobBusy, match="still running"):
        manager.start(TrainRequest(data_dir, "tiny", cfg, use_cache=False), tmp_path / "runs")
    with pytest.raises(JobBusy):
        manager.forget()
    assert wait_until(lambda: job._proc is not None)
    job._proc.send_signal(signal.SIGKILL)
    assert manager.wait(60)
    snap = job.snapshot()
    assert snap["state"] == "failed" and "ended unexpectedly" in snap["error"] and "-9" in snap["error"]
    assert job.log_path().is_file()  # the worker's stderr, kept for the error message
    manager.forget()
    assert manager.current() is None and not job.log_path().exists()  # working files removed


def wait_until(predicate, timeout: float = 60.0) -> bool:
    event = threading.Event()
    for _ in range(int(timeout / 0.1)):
        if predicate():
            return True
        event.wait(0.1)
    return False


def test_home_profiles_rows_come_from_the_manifest_with_member_weights():
    from fer.profiles import read_manifest
    from ui.widgets import profiles_rows

    doc = read_manifest()
    rows = {r["profile"]: r for r in profiles_rows(doc)}
    assert set(rows) == {"photo", "live"}
    for name, spec in doc["profiles"].items():
        assert rows[name]["accuracy"] == spec["public_test"]["accuracy"]
        assert rows[name]["ms per face"] == spec["ms_per_face"] and rows[name]["passes per face"] == spec["passes"]
        for member, weight in zip(spec["members"], spec.get("weights") or [None] * len(spec["members"])):
            shown = member.removesuffix(".keras") + (f" ({weight:.0%})" if weight is not None else "")
            assert shown in rows[name]["models"]
