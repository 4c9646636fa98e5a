"""Every shipped model keeps the product's features working: each profile's model calibrates with a
replay shipped for it and explains its labels; each model in models/ fine-tunes (the Train page)."""

from __future__ import annotations

import numpy as np
import pytest

from fer.export import parity_faces
from fer.modelfile import MODELS_DIR
from fer.profiles import read_manifest
from synth import make_split

MEMBERS = sorted({m for spec in read_manifest()["profiles"].values() for m in spec["members"]})


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


@pytest.mark.parametrize("member", MEMBERS)
def test_each_shipped_model_fine_tunes_for_an_epoch(member, tmp_path):
    from fer.data import Dataset, Split
    from fer.modelfile import read_card
    from fer.training import TrainConfig, train

    card = read_card(MODELS_DIR / member)
    data = Dataset("generated", "synth", {"train": Split(*make_split(6, 1)), "public_test": Split(*make_split(2, 2))})
    cfg = TrainConfig(arch=card.architecture, epochs=1, batch_size=16, augment=False, precision="float32",
                      warmup_epochs=0.5)
    result = train(data, cfg, tmp_path / "tuned.keras", init_model=MODELS_DIR / member)
    assert result.card.architecture == card.architecture and result.card.config["init_model"].endswith(member)
    assert result.model_path.is_file()
