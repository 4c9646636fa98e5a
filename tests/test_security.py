"""Security of a shared deployment: training access, confined dataset paths, uploads, safe model loading."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app_helpers import REPO, app_env, set_env, write_fer_folder
from fer.app_services import registry
from fer.app_services.jobs import MANAGER
from fer.app_services.settings import Settings, confine
from fer.modelfile import card_path
from synth import make_split, write_csv

TIMEOUT = 120
TOKEN = "correct-horse-battery"


@pytest.fixture()
def env(tmp_path, monkeypatch):
    """The app on test folders, with no model at all (the Train page does not need one to start)."""
    values = app_env(tmp_path, tmp_path / "models" / "none.keras")
    set_env(monkeypatch, values)
    for name in ("FER_ADMIN_TOKEN", "FER_TRAINING"):
        monkeypatch.delenv(name, raising=False)
    registry.ACTIVE.set(None)
    assert MANAGER.wait(TIMEOUT)
    MANAGER.forget()
    yield {"root": tmp_path, **values}
    current = MANAGER.current()
    if current is not None:
        current.cancel()
        assert MANAGER.wait(TIMEOUT)
    MANAGER.forget()


def train_page() -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("app_pages/train.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def has_start(at: AppTest) -> bool:
    return any(b.key == "train_start" for b in at.button)


# ---------------------------------------------------------------- settings


def test_admin_token_and_training_switch_settings():
    cfg = Settings.load({"FER_ADMIN_TOKEN": TOKEN}, {"FER_ADMIN_TOKEN": "from-the-environment"})
    assert cfg.admin_token == TOKEN  # secrets over environment
    assert TOKEN not in repr(cfg)
    assert cfg.token_ok(TOKEN) and not cfg.token_ok("from-the-environment")
    assert not cfg.token_ok(None) and not cfg.token_ok("") and not cfg.token_ok(TOKEN + " ")
    assert Settings.load({}, {"FER_ADMIN_TOKEN": TOKEN}).admin_token == TOKEN
    assert Settings.load({"fer_admin_token": TOKEN}, {}).admin_token == TOKEN
    open_cfg = Settings.load({}, {})
    assert open_cfg.admin_token is None and open_cfg.token_ok(None) and open_cfg.training
    assert not Settings.load({"FER_TRAINING": False}, {}).training  # a TOML boolean
    assert not Settings.load({}, {"FER_TRAINING": "off"}).training
    assert Settings.load({}, {"FER_TRAINING": "On"}).training
    with pytest.raises(ValueError, match="FER_TRAINING must be on or off"):
        Settings.load({}, {"FER_TRAINING": "sometimes"})
    with pytest.raises(ValueError, match="at least 8 characters"):
        Settings.load({}, {"FER_ADMIN_TOKEN": "1234"})


def test_dataset_paths_are_confined_to_the_data_folder(tmp_path):
    root = tmp_path / "data"
    (root / "fer2013" / "train").mkdir(parents=True)
    (root / "fer2013.csv").write_text("emotion,pixels,Usage\n")
    outside = tmp_path / "secret"
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    (root / "alias").symlink_to(root / "fer2013")
    loop = root / "loop"
    loop.symlink_to(loop)
    base = root.resolve()
    assert confine(root, "") == base and confine(root, None) == base
    assert confine(root, "fer2013") == base / "fer2013"
    assert confine(root, " fer2013.csv ") == base / "fer2013.csv"
    assert confine(root, str(root / "fer2013" / "train")) == base / "fer2013" / "train"  # absolute, inside
    assert confine(root, "fer2013/../fer2013.csv") == base / "fer2013.csv"  # '..' that stays inside
    assert confine(root, "alias") == base / "fer2013"  # a link inside the folder
    for typed in ("..", "../secret", "fer2013/../../secret", str(outside), "/etc", "escape", "escape/x"):
        with pytest.raises(ValueError, match="is outside the data folder"):
            confine(root, typed, "the data folder")
    with pytest.raises(ValueError, match="does not exist"):
        confine(root, "missing")
    with pytest.raises(ValueError, match="NUL"):
        confine(root, "fer2013\x00")
    with pytest.raises(ValueError):
        confine(root, "loop")
    assert Settings.load({}, {"FER_DATA_DIR": str(root)}).dataset_path("fer2013") == base / "fer2013"


# ---------------------------------------------------------------- the Train page's access gate


def test_train_page_is_open_without_a_token(env):
    at = train_page()
    assert has_start(at) and not [t for t in at.text_input if t.key == "train_token"]
    assert any("processed" in c.value or "Privacy" in c.value for c in at.caption)


def test_train_page_locked_wrong_and_right_token(env, monkeypatch):
    monkeypatch.setenv("FER_ADMIN_TOKEN", TOKEN)
    at = train_page()
    assert not has_start(at) and "needs the admin token" in at.info[0].value
    box = at.text_input(key="train_token")
    assert box.proto.type == box.proto.PASSWORD
    box.set_value("guess-guess").run()
    assert "not the admin token" in at.error[0].value and not has_start(at)
    at.text_input(key="train_token").set_value(TOKEN).run()
    assert not at.exception
    assert has_start(at) and not [t for t in at.text_input if t.key == "train_token"]
    at.run()  # stays unlocked for this session
    assert has_start(at)
    assert not has_start(train_page())  # another session is still locked


def test_training_switched_off(env, monkeypatch):
    monkeypatch.setenv("FER_TRAINING", "off")
    monkeypatch.setenv("FER_ADMIN_TOKEN", TOKEN)
    at = train_page()
    assert "switched off" in at.info[0].value
    assert not has_start(at) and not at.text_input


# ---------------------------------------------------------------- what the Train page reads and writes


def test_a_typed_dataset_path_outside_the_data_folder_is_refused(env):
    data = Path(env["FER_DATA_DIR"])
    write_fer_folder(data / "fer2013")
    (env["root"] / "private").mkdir()
    (data / "shortcut").symlink_to(env["root"] / "private")
    at = train_page()
    for typed, message in (("../private", "is outside the data folder"), (str(env["root"]), "is outside"),
                           ("shortcut", "is outside"), ("nothing_here", "does not exist")):
        at.text_input(key="train_data_path").set_value(typed)
        at.button(key="train_start").click().run()
        assert not at.exception
        assert "Cannot use this dataset path" in at.error[0].value and message in at.error[0].value, typed
        assert MANAGER.current() is None


def test_an_uploaded_file_name_never_chooses_a_server_path(env):
    work = Path(env["FER_WORK_DIR"])
    csv_path = write_csv(env["root"] / "upload.csv", {"train": make_split(2, 1)})
    at = train_page()
    at.radio(key="train_source").set_value("csv").run()
    at.file_uploader(key="train_csv").set_value(("../../escaped.csv", csv_path.read_bytes(), "text/csv"))
    at.button(key="train_start").click().run()
    assert not at.exception
    job = MANAGER.current()
    job.cancel()  # only where the upload went matters here
    staged = Path(job.request.data_path)
    assert staged.name == "fer2013.csv" and staged.parent.parent == (work / "uploads")
    assert re.fullmatch(r"csv-\w+", staged.parent.name)  # a fresh mkdtemp folder, not the client's name
    assert not (work.parent / "escaped.csv").exists() and not (REPO.parent / "escaped.csv").exists()
    assert MANAGER.wait(TIMEOUT)
    assert not any((work / "uploads").iterdir())  # deleted once read (or cancelled)


# ---------------------------------------------------------------- model files and serialisation


def test_model_files_load_in_keras_safe_mode(model_path, tmp_path):
    """A .keras file with a Lambda layer carries Python bytecode: it must be refused, never run."""
    import keras

    from fer.modelfile import load_model

    marker = tmp_path / "payload-ran"
    payload = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]")
    inputs = keras.Input((48, 48, 1))
    outputs = keras.layers.Dense(7, activation="softmax")(keras.layers.Flatten()(keras.layers.Lambda(payload)(inputs)))
    evil = tmp_path / "evil.keras"
    keras.Model(inputs, outputs).save(evil)
    card_path(evil).write_text(card_path(model_path).read_text())
    marker.unlink()  # building the model ran it once
    keras.saving.load_model(evil, safe_mode=False)
    assert marker.exists()  # the payload is real: unsafe loading runs it
    marker.unlink()
    with pytest.raises(ValueError, match="could not load model"):
        load_model(evil)
    assert not marker.exists()


UNSAFE = [r"^\s*(import|from)\s+(pickle|cPickle|dill|joblib|shelve|marshal)\b", r"allow_pickle\s*=\s*True",
          r"safe_mode\s*=\s*False", r"pd\.read_pickle", r"torch\.load\(", r"unsafe_load|yaml\.load\("]


def test_no_pickle_or_unsafe_loading_in_the_code():
    files = [REPO / "app.py"] + [f for d in ("fer", "ui", "app_pages", "benchmarks") for f in (REPO / d).rglob("*.py")]
    found = [f"{f.relative_to(REPO)}:{i}: {line.strip()}" for f in files
             for i, line in enumerate(f.read_text().splitlines(), 1)
             if any(re.search(p, line) for p in UNSAFE)]
    assert len(files) > 20 and not found, found
    assert "np.load(cache, allow_pickle=False)" in (REPO / "fer" / "data.py").read_text()
