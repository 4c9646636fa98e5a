"""Every shipped model keeps the product's features working: each profile's model calibrates with a
replay shipped for it and explains its labels; each model in models/ fine-tunes (the Train page)."""

from __future__ import annotations

import numpy as np
import pytest

from fer.export import parity_faces
from fer.modelfile import MODELS_DIR, read_card
from fer.profiles import read_manifest
from synth import make_split

MEMBERS = sorted({m for spec in read_manifest()["profiles"].values() for m in spec["members"]})
ARCHITECTURES = {m: read_card(MODELS_DIR / m).architecture for m in MEMBERS}
# Architectures whose training step tests/test_efficientnet.py already compiles and runs through `fer train`
# (a minute each on 2 cores): here only their shipped weights are checked to start a fine-tune.
TRAINED_ELSEWHERE = {"effnet_lite0"}


@pytest.mark.parametrize("profile", ["photo", "live"])
def test_each_profiles_model_calibrates_with_its_shipped_replay_and_explains_its_labels(profile):
    from fer.calibrate import CalibrationConfig, calibrate, find_replay
    from fer.explain import explain_faces
    from fer.inference import EmotionRecognizer

    rec = EmotionRecognizer(profile=profile)
    replay, notes = find_replay(rec.model, sorted(MODELS_DIR.glob("*.replay.npz")))
    assert replay is not None, f"no shipped replay matches the {profile} model: {notes}"
    faces = parity_faces(14)
    labels = np.arange(14) % 7
    result = calibrate(rec.model, faces, labels, replay=replay, config=CalibrationConfig(steps=20))
    report = result.report
    assert report.public_before is not None and report.public_before["n"] == len(replay.test_y)
    assert report.public_before["accuracy"] > 0.6  # the replay's public_test, through this model's head
    assert result.model.output_shape[-1] == 7

    why = explain_faces(rec, faces[:2])
    assert len(why) == 2 and why[0].heatmap.shape == (48, 48)
    assert why[0].target == int(rec.classify(faces[:1]).argmax())


@pytest.mark.parametrize("member", [m for m in MEMBERS if ARCHITECTURES[m] not in TRAINED_ELSEWHERE])
def test_each_shipped_model_fine_tunes_for_an_epoch(member, tmp_path):
    from fer.data import Dataset, Split
    from fer.training import TrainConfig, train

    card = read_card(MODELS_DIR / member)
    data = Dataset("generated", "synth", {"train": Split(*make_split(6, 1)), "public_test": Split(*make_split(2, 2))})
    cfg = TrainConfig(arch=card.architecture, epochs=1, batch_size=16, augment=False, precision="float32",
                      warmup_epochs=0.5)
    result = train(data, cfg, tmp_path / "tuned.keras", init_model=MODELS_DIR / member)
    assert result.card.architecture == card.architecture and result.card.config["init_model"].endswith(member)
    assert result.model_path.is_file()


@pytest.mark.parametrize("member", [m for m in MEMBERS if ARCHITECTURES[m] in TRAINED_ELSEWHERE])
def test_shipped_weights_start_a_fine_tune_of_their_architecture(member):
    """What ``train(init_model=...)`` does before its first step: a fresh training model of the card's architecture
    (augmentation on, as the Train page builds it) takes every shipped weight and then predicts what the shipped
    model predicts."""
    from fer.modelfile import load_model
    from fer.predictor import compiled_predictor
    from fer.training import TrainConfig, build_for, weights_for

    shipped, card = load_model(MODELS_DIR / member)
    fresh = build_for(TrainConfig(arch=card.architecture, camera=0.5), "float32", seed=1)
    faces = parity_faces(8)[..., None].astype("float32")
    before = compiled_predictor(fresh)(faces)
    fresh.set_weights(weights_for(fresh, shipped))
    want = compiled_predictor(shipped)(faces)
    np.testing.assert_allclose(compiled_predictor(fresh)(faces), want, atol=1e-5)
    assert np.abs(before - want).max() > 1e-3  # the fresh model did differ before it took the weights
