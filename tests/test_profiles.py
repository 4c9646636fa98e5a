"""Prior correction (fer.prior) and the photo/live profiles (fer.profiles) on the shipped models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fer.evaluate import metrics_from_probs
from fer.labels import EMOTIONS
from fer.prior import adjust, balanced_accuracy, check_prior, class_prior, tune_tau
from fer.profiles import PROFILES, read_manifest

FER_PRIOR = class_prior({"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "sad": 4830,
                         "surprise": 3171, "neutral": 4965})


def biased_probs(n_per_class: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A classifier that knows the class but multiplies in the FER2013 prior (what training on it teaches)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(7), n_per_class)
    logits = rng.normal(0, 1.0, (len(y), 7))
    logits[np.arange(len(y)), y] += 1.5
    p = np.exp(logits) * FER_PRIOR
    return p / p.sum(axis=1, keepdims=True), y


def test_adjust_is_the_identity_at_tau_zero_and_lifts_rare_classes():
    probs, _ = biased_probs(20)
    np.testing.assert_allclose(adjust(probs, FER_PRIOR, 0.0), probs.astype(np.float32))
    out = adjust(probs, FER_PRIOR, 1.0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    disgust, happy = EMOTIONS.index("disgust"), EMOTIONS.index("happy")
    assert (out[:, disgust] > probs[:, disgust]).all() and (out[:, happy] < probs[:, happy]).all()
    # tau = 1 divides the prior back out exactly: the unbiased softmax
    np.testing.assert_allclose(out, (probs / FER_PRIOR) / (probs / FER_PRIOR).sum(1, keepdims=True), atol=1e-5)


def test_tune_tau_recovers_balanced_accuracy_within_the_accuracy_bound():
    probs, y = biased_probs()
    tau, table = tune_tau(probs, y, FER_PRIOR, max_accuracy_drop=0.003)
    base = [row for row in table if row["tau"] == 0][0]
    best = [row for row in table if row["tau"] == tau][0]
    assert tau > 0.5 and best["balanced_accuracy"] > base["balanced_accuracy"] + 0.05
    assert best["accuracy"] >= base["accuracy"] - 0.003
    # a tight bound on accuracy on an imbalanced test set holds tau back
    yi = np.concatenate([y, np.full(2000, EMOTIONS.index("happy"))])
    pi = np.concatenate([probs, np.tile(np.eye(7)[EMOTIONS.index("happy")] * 0.5 + 0.5 / 7, (2000, 1))])
    tight, rows = tune_tau(pi, yi, FER_PRIOR, max_accuracy_drop=0.0)
    acc0 = [r for r in rows if r["tau"] == 0][0]["accuracy"]
    assert [r for r in rows if r["tau"] == tight][0]["accuracy"] >= acc0


def test_balanced_accuracy_is_the_mean_recall():
    probs, y = biased_probs(30)
    m = metrics_from_probs(probs, y)
    assert m["balanced_accuracy"] == pytest.approx(np.mean([v["recall"] for v in m["per_class"].values()]), abs=1e-4)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy(probs, y), abs=1e-4)


@pytest.mark.parametrize("bad", [[0.5, 0.5], [0.0, 0.2, 0.2, 0.2, 0.2, 0.1, 0.1], [0.2] * 7])
def test_bad_priors_are_refused(bad):
    with pytest.raises(ValueError, match="positive frequencies"):
        check_prior(bad)
    with pytest.raises(ValueError, match="every emotion"):
        class_prior({"angry": 3})


@pytest.mark.parametrize("doc, message", [
    ({"profiles": {"photo": {"members": ["a.keras"]}}}, "exactly the profiles"),
    ({"profiles": {"photo": {"members": []}, "live": {"members": ["a.keras"]}}}, "non-empty 'members'"),
    ({"profiles": {"photo": {"members": ["a.keras"], "tta": "rotate"}, "live": {"members": ["a.keras"]}}}, "tta"),
    ([1, 2], "exactly the profiles"),
    ({"profiles": {"photo": {"members": ["a.keras", "b.keras"], "weights": [1.0]}, "live": {"members": ["a.keras"]}}},
     "must be 2 positive numbers"),
    ({"profiles": {"photo": {"members": ["a.keras"], "weights": [-1]}, "live": {"members": ["a.keras"]}}},
     "positive numbers"),
])
def test_bad_manifests_say_what_is_wrong(tmp_path, doc, message):
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=message):
        read_manifest(path)


def shipped_members_average(spec: dict, faces: np.ndarray, tta: str | None) -> np.ndarray:
    """A shipped profile's uncorrected output, computed here: each member called on the faces (and their
    mirrors for flip TTA), averaged with the manifest's weights (equal if absent)."""
    from fer.modelfile import MODELS_DIR, load_model

    members = [load_model(MODELS_DIR / m)[0] for m in spec["members"]]
    weights = spec.get("weights")  # the members' shares of the average
    assert weights is None or (len(weights) == len(members) and abs(sum(weights) - 1) < 1e-3)
    views = [faces] + ([faces[:, :, ::-1]] if tta == "flip" else [])
    return np.average([np.mean([m(v[..., None].astype("float32")).numpy() for v in views], axis=0)
                       for m in members], axis=0, weights=weights)


def test_shipped_profiles_photo_is_an_ensemble_with_tta_and_live_one_pass_per_model():
    from fer.inference import EmotionRecognizer

    doc = read_manifest()
    assert set(doc["profiles"]) == set(PROFILES)
    photo, live = EmotionRecognizer(), EmotionRecognizer(profile="live")
    assert photo.profile == "photo" and photo.tta == "flip" and live.tta is None
    assert photo.ensemble.passes == 2 * len(doc["profiles"]["photo"]["members"]) <= 8
    assert live.ensemble.passes == len(doc["profiles"]["live"]["members"]) <= 2  # the webcam's budget
    assert live.model is not None and doc["profiles"]["live"]["members"][0] == "fer_default.keras"  # calibration's
    faces = np.random.default_rng(0).integers(0, 255, (3, 48, 48), dtype=np.uint8)
    for rec in (photo, live):
        spec = doc["profiles"][rec.profile]
        assert rec.ensemble.tau == spec["tau"] and rec.ensemble.prior is not None
        raw = shipped_members_average(spec, faces, rec.tta)
        np.testing.assert_allclose(rec.classify(faces), adjust(raw, rec.ensemble.prior, rec.ensemble.tau), atol=1e-4)
        np.testing.assert_allclose(rec.classify(faces, corrected=False), raw, atol=1e-4)
    with pytest.raises(ValueError, match="unknown profile"):
        EmotionRecognizer(profile="fast")


def test_shipped_profiles_figures_come_from_their_build():
    """The manifest's figures: corrected balanced accuracy not below uncorrected, accuracy within 0.3 points."""
    for name, spec in read_manifest()["profiles"].items():
        pt = spec["public_test"]
        assert pt["balanced_accuracy"] >= pt["uncorrected"]["balanced_accuracy"], name
        assert pt["accuracy"] >= pt["uncorrected"]["accuracy"] - 0.003 - 1e-9, name
        assert spec["ms_per_face"] > 0 and spec["passes"] >= 1


def test_auto_weights_cover_the_simplex_and_favour_the_informative_member():
    from test_pins import load_script

    script = load_script("build_profiles")
    for k, size in ((2, 19), (3, 36)):
        grid = script.weight_grid(k)
        assert len(grid) == size and len(set(grid)) == size
        assert all(len(w) == k and min(w) > 0 and sum(w) == pytest.approx(1.0) for w in grid)
    good, y = biased_probs(60, seed=1)
    noise = np.random.default_rng(2).dirichlet(np.ones(7), len(y))
    weights, table = script.choose_weights([noise, good, noise], y, FER_PRIOR)
    assert len(table) == 36 and weights[1] == max(weights) and weights[1] >= 0.6
    with pytest.raises(ValueError, match="two or more"):
        script.choose_weights([good], y, FER_PRIOR)


def test_build_profiles_checks_its_weight_arguments_before_loading_anything():
    from test_pins import load_script

    script = load_script("build_profiles")
    two = ["a.keras", "b.keras"]
    assert script.check_weight_args(two, ["auto"], "--live-weights") == ["auto"]
    assert script.check_weight_args(two, ["0.6", "0.4"], "--live-weights") == ["0.6", "0.4"]
    assert script.check_weight_args(["a.keras"], ["equal"], "--live-weights") == ["equal"]
    for members, weights, why in ((["a.keras"], ["auto"], "two or more members"),
                                  (two, ["0.5"], "2 positive numbers"), (two, ["1", "-1"], "2 positive numbers"),
                                  (two, ["x", "1"], "2 positive numbers")):
        with pytest.raises(SystemExit, match=why):
            script.check_weight_args(members, weights, "--live-weights")


def test_members_report_counts_disagreements_and_shared_errors():
    from test_pins import load_script

    script = load_script("build_profiles")
    y = np.array([0, 1, 2, 3])
    onehot = np.eye(7)
    a, b = onehot[[0, 1, 2, 4]], onehot[[0, 5, 2, 4]]  # a: 3 right; b: 2 right; they differ on face 2
    report = script.member_report(["a.keras", "b.keras"], [a, b], y)
    assert report["accuracy_alone"] == {"a.keras": 0.75, "b.keras": 0.5}
    assert report["pairs"] == [{"members": ["a.keras", "b.keras"], "disagree": 0.25, "both_wrong": 0.25}]
