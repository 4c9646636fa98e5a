"""Test session set-up shared by all test modules."""

from __future__ import annotations

import pytest

from ui.native import preload_webrtc

# The app tests run pages that import streamlit-webrtc (aiortc) in the same process where other
# tests have already loaded TensorFlow; bind the SRTP library first (see ui/native.py).
preload_webrtc()


@pytest.fixture(scope="session")
def model_path(tmp_path_factory):
    """A real small VGG model, trained 3 epochs on generated faces, with its full card.

    Trained (not just initialised) so that different faces get clearly different probabilities;
    its card has metrics, history and data like a real run's.
    """
    from fer.data import Dataset, Split
    from fer.training import TrainConfig, train
    from synth import make_split

    (x, y), (tx, ty) = make_split(10, 1), make_split(3, 2)
    data = Dataset("generated faces", "synth", {"train": Split(x, y), "public_test": Split(tx, ty)})
    cfg = TrainConfig(arch="vgg", epochs=3, batch_size=16, augment=False, warmup_epochs=0)
    return train(data, cfg, tmp_path_factory.mktemp("model") / "vgg.keras").model_path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished 2-epoch VGG run on ``test_training.tiny_data()`` with ``test_training.CFG`` (augmentation on,
    no kept checkpoints): the model, its card and its run folder.

    Trained once per session for the tests that only need *a* finished run to start from, average or refuse
    (lineage, fine-tuning, distillation, averaging); a test that changes it works on a ``copy_run`` copy.
    """
    from fer.training import TrainConfig, train
    from test_training import CFG, tiny_data

    out = tmp_path_factory.mktemp("tiny_run") / "base.keras"
    return train(tiny_data(), TrainConfig(**CFG, epochs=2), out).model_path


@pytest.fixture()
def copy_run():
    """``copy_run(src, dst)``: copy a trained model ``x.keras``, its card ``x.json`` and its run folder ``x.run/``."""
    import shutil

    from fer.training import run_dir

    def copy(src, dst):
        for suffix in (".keras", ".json"):
            shutil.copy(src.with_suffix(suffix), dst.with_suffix(suffix))
        if run_dir(src).is_dir():
            shutil.copytree(run_dir(src), run_dir(dst))
        return dst

    return copy


@pytest.fixture(scope="session")
def recognizer(model_path):
    from fer.inference import EmotionRecognizer

    return EmotionRecognizer(model_path)


@pytest.fixture()
def app_with_model(tmp_path, model_path, monkeypatch):
    """The app's environment on a copy of the small test model as its shipped default.

    ``FER_*`` variables point the app at folders under ``tmp_path`` (see :func:`app_helpers.app_env`);
    no model is active before or after. Yields the folders and variables: ``root``, ``default``
    (the copied model), ``models`` (its folder) and every variable set.
    """
    from app_helpers import app_env, set_env
    from fer.app_services import registry
    from fer.modelfile import card_path

    default = tmp_path / "models" / "fer_default.keras"
    default.parent.mkdir(parents=True)
    default.write_bytes(model_path.read_bytes())
    card_path(default).write_text(card_path(model_path).read_text())
    values = app_env(tmp_path, default)
    set_env(monkeypatch, values)
    registry.ACTIVE.set(None)
    yield {"root": tmp_path, "default": default, "models": default.parent, **values}
    registry.ACTIVE.set(None)
