import numpy as np
import pytest

from fer.averaging import average_run, mean_weights, recompute_batchnorm
from fer.modelfile import load_model
from fer.training import TrainConfig, epoch_checkpoint, run_dir, train
from test_training import CFG, tiny_data


def _kernels(path):
    import keras

    model = keras.saving.load_model(path, compile=False)
    return {w.path: w.numpy() for w in model.weights if w.path.endswith("kernel")}


@pytest.fixture(scope="module")
def kept_run(tmp_path_factory):
    """A 3-epoch run that kept every epoch's checkpoint; the tests below only read it."""
    out = tmp_path_factory.mktemp("kept") / "m.keras"
    train(tiny_data(), TrainConfig(**CFG, epochs=3, keep_checkpoints=True), out, command="python -m fer train x")
    return out


def test_swa_averages_the_kept_epochs_and_records_it(tmp_path, kept_run):
    data, out = tiny_data(), kept_run
    kept = [epoch_checkpoint(run_dir(out), e) for e in (1, 2, 3)]
    assert all(p.is_file() for p in kept)
    path, card = average_run(data, out, tmp_path / "swa.keras", first_epoch=2, command="python -m fer average y")
    model, loaded = load_model(path)
    two, three = _kernels(kept[1]), _kernels(kept[2])
    assert not np.allclose(two["predictions/kernel"], three["predictions/kernel"])
    now = {w.path: w.numpy() for w in model.weights}
    for key in two:
        np.testing.assert_allclose(now[key], (two[key] + three[key]) / 2, rtol=1e-5, atol=1e-6, err_msg=key)
    assert loaded.averaged["first_epoch"] == 2 and loaded.averaged["last_epoch"] == 3
    assert loaded.averaged["checkpoints"] == 2 and loaded.averaged["command"] == "python -m fer average y"
    assert loaded.command == "python -m fer train x" and loaded.best_epoch == 0
    assert 0 <= loaded.metrics["public_test"]["accuracy"] <= 1 and "public_test_tta_flip" in loaded.metrics


def test_a_fine_tuned_run_blends_with_its_starting_model(tmp_path, tiny_run):
    data, start, tuned = tiny_data(), tiny_run, tmp_path / "tuned.keras"  # start: a finished run, only read
    train(data, TrainConfig(**CFG, epochs=1, keep_checkpoints=True), tuned, init_model=str(start))
    path, card = average_run(data, tuned, tmp_path / "wise.keras", first_epoch=1, base_weight=0.25)
    base, last = _kernels(start), _kernels(epoch_checkpoint(run_dir(tuned), 1))
    now = {w.path: w.numpy() for w in load_model(path)[0].weights}
    for key in base:
        np.testing.assert_allclose(now[key], 0.75 * last[key] + 0.25 * base[key], rtol=1e-5, atol=1e-6, err_msg=key)
    assert card.averaged["base_weight"] == 0.25 and card.averaged["base_model"] == str(start)
    with pytest.raises(ValueError, match="base_weight must be in"):
        average_run(data, tuned, tmp_path / "x.keras", first_epoch=1, base_weight=1.0)


def test_swa_is_reproducible(tmp_path, kept_run):
    """BatchNorm statistics come from forward passes with dropout on: the same command gives the same model."""
    data, out = tiny_data(), kept_run
    first, _ = average_run(data, out, tmp_path / "a.keras", first_epoch=1)
    second, _ = average_run(data, out, tmp_path / "b.keras", first_epoch=1)
    a, b = load_model(first)[0], load_model(second)[0]
    stats = [(x.path, x.numpy(), y.numpy()) for x, y in zip(a.weights, b.weights) if "moving" in x.path]
    assert stats
    for path, x, y in stats:
        np.testing.assert_array_equal(x, y, err_msg=path)


def test_swa_refuses_runs_without_checkpoints_and_bad_epochs(tmp_path, tiny_run):
    data = tiny_data()
    with pytest.raises(ValueError, match="no training run found"):
        average_run(data, tmp_path / "plain.keras", tmp_path / "a.keras", first_epoch=1)
    out = tiny_run  # a finished 2-epoch run without kept checkpoints
    with pytest.raises(ValueError, match="--keep-checkpoints"):
        average_run(data, out, tmp_path / "a.keras", first_epoch=1)
    with pytest.raises(ValueError, match="between 1 and 1"):
        average_run(data, out, tmp_path / "a.keras", first_epoch=2)
    with pytest.raises(ValueError, match="at least one checkpoint"):
        mean_weights([])
    with pytest.raises(ValueError, match="started from scratch"):
        average_run(data, out, tmp_path / "a.keras", first_epoch=2, base_weight=0.5)
    with pytest.raises(ValueError, match="must end in .keras"):
        average_run(data, out, tmp_path / "a.h5", first_epoch=1)
    assert not (tmp_path / "a.keras").exists()


def test_recompute_batchnorm_gives_the_data_statistics():
    import keras

    inputs = keras.Input((48, 48, 1))
    conv = keras.layers.Conv2D(4, 3, name="conv")
    bn = keras.layers.BatchNormalization(momentum=0.9, name="bn")
    model = keras.Model(inputs, bn(conv(inputs)))
    x = np.random.default_rng(0).integers(0, 256, (96, 48, 48)).astype(np.uint8)
    assert recompute_batchnorm(model, x, batch_size=32) == 3
    feats = np.asarray(conv(x[..., None].astype("float32"))).reshape(3, -1, 4)
    np.testing.assert_allclose(bn.moving_mean.numpy(), feats.mean(axis=(0, 1)), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.moving_variance.numpy(), feats.var(axis=1).mean(axis=0), rtol=1e-3)
    assert bn.momentum == 0.9  # the layer's own momentum is restored
    with pytest.raises(ValueError, match="at least 32 images"):
        recompute_batchnorm(model, x[:10], batch_size=32)


def test_recompute_batchnorm_reaches_nested_models():
    import keras

    inner_in = keras.Input((48, 48, 1))
    bn = keras.layers.BatchNormalization(name="bn")
    inner = keras.Model(inner_in, bn(keras.layers.Conv2D(4, 3, name="conv")(inner_in)), name="block")
    inputs = keras.Input((48, 48, 1))
    model = keras.Model(inputs, keras.layers.Flatten()(inner(inputs)))
    x = np.random.default_rng(1).integers(0, 256, (64, 48, 48)).astype(np.uint8)
    recompute_batchnorm(model, x, batch_size=32)
    assert np.abs(bn.moving_mean.numpy()).max() > 1.0  # moved from its initial zeros to the data's mean
