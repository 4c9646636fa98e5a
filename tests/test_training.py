import threading

import numpy as np
import pytest

from fer.data import Dataset, Split
from fer.evaluate import evaluate, metrics_from_probs, tta_views
from fer.modelfile import load_model
from fer.training import TrainConfig, TrainingCancelled, read_state, run_dir, train
from synth import make_split


def tiny_data(with_test: bool = True) -> Dataset:
    splits = {"train": Split(*make_split(10, 1))}
    if with_test:
        splits["public_test"] = Split(*make_split(3, 2))
    return Dataset("synthetic", "test", splits)


CFG = dict(arch="vgg", batch_size=16, lr=3e-3, warmup_epochs=0.5, precision="float32")


@pytest.mark.slow
def test_train_save_load_evaluate_and_resume(tmp_path, tiny_run, copy_run):
    from fer.modelfile import read_card

    data, out = tiny_data(), copy_run(tiny_run, tmp_path / "m.keras")  # train(data, CFG with epochs=2, out)
    first = read_card(out)
    assert first.epochs == 2 and out.is_file()
    state = read_state(out)
    assert state["epoch"] == 2 and [h["epoch"] for h in state["history"]] == [1, 2]
    second = train(data, TrainConfig(**CFG, epochs=3), out, resume=True)
    state = read_state(out)
    assert state["epoch"] == 3 and [h["epoch"] for h in state["history"]] == [1, 2, 3]
    assert not second.cancelled and second.card.epochs == 3 and len(second.card.history) == 3
    import keras

    last = keras.saving.load_model(run_dir(out) / "last.keras", compile=True)
    assert int(last.optimizer.iterations.numpy()) == 3 * state["steps"]  # schedule position kept
    model, card = load_model(out)
    assert card.config["selection_split"] == "public_test" and card.best_epoch in (1, 2, 3)
    again = evaluate(model, data.split("public_test"))
    assert again["accuracy"] == card.metrics["public_test"]["accuracy"]
    assert "public_test_tta_flip" in card.metrics and getattr(model, "optimizer", None) is None


def test_short_epochs_validate_with_precise_batchnorm_statistics(tmp_path):
    """70 images at batch 16 make 5-step epochs, far shorter than BatchNorm's 100-step moving average."""
    from fer.model import build_model
    from fer.training import _precise_batchnorm_callback

    result = train(tiny_data(), TrainConfig(**CFG, epochs=1, augment=False), tmp_path / "b.keras")
    assert result.card.history[0]["val_accuracy"] == 1.0  # 29% with the lagging moving averages
    assert result.card.metrics["public_test"]["accuracy"] == 1.0  # the saved model has them too
    model, x = build_model("vgg"), np.zeros((32, 48, 48, 1), np.float32)
    assert _precise_batchnorm_callback(model, x, 99, 16) is not None
    assert _precise_batchnorm_callback(model, x, 100, 16) is None  # long epochs: Keras as is


def test_cancel_keeps_best_epoch_and_never_breaks_the_output(tmp_path):
    data, out = tiny_data(with_test=False), tmp_path / "c.keras"
    cancel = threading.Event()

    class StopInSecondEpoch:
        def on_batch(self, epoch, step, steps, logs):
            if epoch == 1 and step == 2:
                cancel.set()

    result = train(data, TrainConfig(**CFG, epochs=3), out, listener=StopInSecondEpoch(), cancel=cancel)
    assert result.cancelled and result.card.epochs == 1 and result.card.best_epoch == 1
    assert result.card.config["selection_split"] == "validation"
    load_model(out)
    cancel.set()
    with pytest.raises(TrainingCancelled):
        train(data, TrainConfig(**CFG, epochs=1), tmp_path / "never.keras", cancel=cancel)
    assert not (tmp_path / "never.keras").exists()


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        TrainConfig(epochs=0).validate()
    with pytest.raises(ValueError, match="arch must be one of"):
        TrainConfig(arch="nope").validate()


def test_metrics_and_tta_views():
    y = np.array([0, 0, 1, 3])
    probs = np.eye(7)[[0, 1, 1, 3]] * 0.9 + 0.1 / 7
    m = metrics_from_probs(probs, y)
    assert m["accuracy"] == 0.75 and m["confusion"][0][:2] == [1, 1]
    assert m["per_class"]["angry"]["recall"] == 0.5 and m["per_class"]["disgust"]["precision"] == 0.5
    x = np.arange(2 * 48 * 48, dtype=np.uint8).reshape(2, 48, 48)
    assert len(tta_views(x, "flip")) == 2 and len(tta_views(x, "crops")) == 10
    np.testing.assert_array_equal(tta_views(x, "flip")[1], x[:, :, ::-1])


@pytest.mark.slow
def test_lineage_is_fixed_when_the_run_starts(tmp_path, tiny_run, copy_run):
    """Shipping a run's result over its --init-model (then resuming it) must not rewrite its stages."""
    import shutil

    data, base = tiny_data(), copy_run(tiny_run, tmp_path / "base.keras")  # a finished 2-epoch run
    out = tmp_path / "tuned.keras"
    train(data, TrainConfig(**CFG, epochs=1), out, init_model=base)
    for suffix in (".keras", ".json"):
        shutil.copy(out.with_suffix(suffix), base.with_suffix(suffix))
    resumed = train(data, TrainConfig(**CFG, epochs=2), out, init_model=base, resume=True)
    assert resumed.card.epochs == 2
    assert [s["epochs"] for s in resumed.card.stages] == [2]


def test_fine_tuning_keeps_the_starting_weights_and_records_the_lineage(tmp_path, tiny_run, copy_run):
    from fer.modelfile import card_path, full_history, read_card

    data, base = tiny_data(), copy_run(tiny_run, tmp_path / "base.keras")  # a finished 2-epoch run, seed 0
    base_model, base_card = load_model(base)
    started = {"file": "x.npz", "origin": "ImageNet weights of X", "license": "Apache-2.0"}
    base_card.config["pretrained_weights"] = started  # as a stage 1 that started from ImageNet weights
    card_path(base).write_text(base_card.to_json())
    out = tmp_path / "tuned.keras"
    tuned = train(data, TrainConfig(**{**CFG, "lr": 1e-7}, epochs=1), out, init_model=base)
    assert tuned.card.config["init_model"] == str(base)
    assert tuned.card.config["pretrained_weights"] == started  # the origin and licence follow the stages
    assert [s["epochs"] for s in tuned.card.stages] == [2] and tuned.card.stages[0]["history"] == base_card.history
    rows = full_history(read_card(out))
    assert [(r["epoch"], r["stage"]) for r in rows] == [(1, 1), (2, 1), (3, 2)]
    # at a negligible learning rate every kernel is still the starting model's (a fresh one's differ)
    tuned_model, _ = load_model(out)
    kernels = [(w.path, w.numpy()) for w in base_model.weights if w.path.endswith("kernel")]
    assert kernels
    now = {w.path: w.numpy() for w in tuned_model.weights}
    for path, k in kernels:
        np.testing.assert_allclose(now[path], k, atol=1e-4, err_msg=path)
    # stage 2 must not replay stage 1's shuffles, augmentations and dropout masks step for step
    assert (read_state(base)["seed"], read_state(out)["seed"]) == (0, 1)
    assert not np.allclose(_first_augmentation(base), _first_augmentation(out))


def _first_augmentation(path):
    """What a run's augmentation layer draws on its first batch."""
    import keras

    layer = keras.saving.load_model(run_dir(path) / "last.keras", compile=False).get_layer("augment")
    x = np.random.default_rng(0).uniform(0, 1, (4, 48, 48, 1)).astype("float32")
    return keras.ops.convert_to_numpy(layer(x, training=True))


def test_time_budget_picks_the_epochs_that_fit(tmp_path, monkeypatch):
    import time

    import fer.training
    from fer.training import _budgeted

    short = train(tiny_data(), TrainConfig(**CFG, epochs=5, time_budget_s=0.01), tmp_path / "short.keras")
    assert short.card.epochs == 1 and short.card.config["epochs"] == 1  # too little time: one epoch
    # the real measurement ran above; a second probe (a model compiled and saved) would only say again that
    # a tiny epoch takes seconds
    monkeypatch.setattr(fer.training, "measure_epoch_seconds", lambda *a, **k: {"epoch_s": 5.0, "compile_s": 20.0})
    roomy = _budgeted(TrainConfig(**CFG, epochs=7, time_budget_s=3600), tmp_path / "r.keras", False, "float32",
                      70, 21, time.monotonic())
    assert roomy.epochs == 7 and roomy.time_budget_s == 3600  # capped by --epochs
    with pytest.raises(ValueError, match="time_budget_s"):
        TrainConfig(**CFG, time_budget_s=-1).validate()


def test_patience_stops_after_epochs_without_gain_and_resume_respects_it(tmp_path):
    data, out = tiny_data(), tmp_path / "p.keras"
    result = train(data, TrainConfig(**CFG, epochs=6, patience=1), out)
    scores = [h["val_accuracy"] for h in result.card.history]
    # the run ends at the first epoch that does not beat every earlier one, or runs all 6
    first_miss = next((i + 1 for i in range(1, len(scores)) if scores[i] <= max(scores[:i])), 6)
    assert result.card.epochs == first_miss and len(scores) == first_miss
    assert result.card.epochs < 6, scores  # 21 validation images cannot improve five times in a row
    assert not result.cancelled and result.card.config["patience"] == 1
    stopped_at = result.card.epochs
    again = train(data, TrainConfig(**CFG, epochs=6, patience=1), out, resume=True)
    assert again.card.epochs == stopped_at  # nothing left to do under the same rule
    more = train(data, TrainConfig(**CFG, epochs=stopped_at + 1, patience=0), out, resume=True)
    assert more.card.epochs == stopped_at + 1 and more.card.config["patience"] == 0
    with pytest.raises(ValueError, match="patience must be 0"):
        TrainConfig(**CFG, patience=-1).validate()


def test_distillation_learns_the_teachers_cached_soft_targets(tmp_path, tiny_run, model_path, copy_run):
    from fer.profiles import load_profile
    from fer.training import distill_targets, teacher_probabilities

    data = tiny_data()
    teacher = copy_run(tiny_run, tmp_path / "teacher.keras")  # a trained model; the test overwrites it below
    cfg = TrainConfig(**CFG, epochs=1, augment=False, teacher=str(teacher), distill_weight=0.6)
    split, cache = data.split("train"), tmp_path / "cache" / "soft.npy"
    soft = teacher_probabilities(cfg.teacher, split, cache)
    expected = load_profile("photo", teacher).probabilities(split.x, corrected=False)  # flip TTA, no correction
    np.testing.assert_allclose(soft, expected, atol=1e-5)
    np.save(cache, np.full_like(soft, 1 / 7))  # a cache for the same teacher and faces is reused ...
    assert np.allclose(teacher_probabilities(cfg.teacher, split, cache), 1 / 7)
    retrained = model_path  # conftest's model: another trained VGG, other weights
    for suffix in (".keras", ".json"):  # the same teacher path, other weights: recomputed
        teacher.with_suffix(suffix).write_bytes(retrained.with_suffix(suffix).read_bytes())
    assert not np.allclose(teacher_probabilities(cfg.teacher, split, cache), 1 / 7)
    expected = load_profile("photo", teacher).probabilities(split.x, corrected=False)
    other = Split(split.x[::-1].copy(), split.y[::-1].copy())  # ... other faces recompute it
    np.testing.assert_allclose(teacher_probabilities(cfg.teacher, other, cache), expected[::-1], atol=1e-5)
    onehot = np.eye(7, dtype=np.float32)[split.y]
    mixed = distill_targets(cfg, split, onehot, cache)  # recomputed for these faces: the teacher's own targets
    np.testing.assert_allclose(mixed, 0.6 * expected + 0.4 * onehot, atol=1e-5)
    student = train(data, cfg, tmp_path / "student.keras")
    assert student.card.config["teacher"] == str(teacher)
    assert (run_dir(student.model_path) / "teacher_probs.npy").is_file()
    with pytest.raises(ValueError, match="teacher must be"):
        TrainConfig(teacher="nonsense").validate()


def test_the_logit_adjusted_loss_is_menons_and_a_run_with_it_resumes(tmp_path):
    import keras

    from fer.model import LogitAdjustedLoss

    prior = np.array([0.3, 0.02, 0.14, 0.25, 0.12, 0.07, 0.1])
    probs = np.random.default_rng(0).dirichlet(np.ones(7), size=5).astype(np.float32)
    y = np.eye(7, dtype=np.float32)[[0, 1, 2, 3, 4]]
    shifted = np.exp(np.log(probs) + np.log(prior))
    want = -np.log(shifted / shifted.sum(axis=1, keepdims=True))  # cross-entropy of softmax(log p + log prior)
    got = float(LogitAdjustedLoss(prior, tau=1.0)(y, probs))
    assert got == pytest.approx(float((want * y).sum(1).mean()), rel=1e-5)
    plain = float(keras.losses.CategoricalCrossentropy()(y, probs))
    assert float(LogitAdjustedLoss(prior, tau=0.0)(y, probs)) == pytest.approx(plain, rel=1e-5)
    with pytest.raises(ValueError, match="7 positive class frequencies"):
        LogitAdjustedLoss([0.5, 0.5])

    data, out = tiny_data(), tmp_path / "la.keras"
    first = train(data, TrainConfig(**CFG, epochs=1, augment=False, logit_adjust=1.0), out)
    assert first.card.config["logit_adjust"] == 1.0
    more = train(data, TrainConfig(**CFG, epochs=2, augment=False, logit_adjust=1.0), out, resume=True)
    assert more.card.epochs == 2  # the checkpoint's compiled loss (a fer layer-like object) loads back
    with pytest.raises(ValueError, match="logit_adjust must be in"):
        TrainConfig(logit_adjust=-1).validate()
