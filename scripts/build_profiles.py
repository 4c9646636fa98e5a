"""Write ``models/profiles.json``: the photo and live profiles, their prior correction and their figures.

    python scripts/build_profiles.py --data path/to/fer2013 \
        --photo fer_default.keras fer_resnet.keras --photo-tta flip --photo-weights auto \
        --live fer_default.keras fer_effnet.keras --live-weights auto

For each profile: the members' probabilities on public_test (never trained on), ``tau`` chosen there
by balanced accuracy with plain accuracy kept within 0.3 points (:func:`fer.prior.tune_tau`), the
metrics with and without the correction, the members' weights (given, equal, or chosen there by
:func:`choose_weights`), and the classifier's cost per face (median over repeats of
one face through :meth:`fer.profiles.Ensemble.probabilities`, after warm-up). Each member's card also
gets its own ``prior`` and ``tau`` (one pass), so that a model used alone keeps its correction.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fer.data import load_dataset  # noqa: E402
from fer.modelfile import MODELS_DIR, card_path, load_model, read_card  # noqa: E402
from fer.prior import adjust, balanced_accuracy, class_prior, tune_tau  # noqa: E402
from fer.profiles import MANIFEST_FORMAT, PROFILES, Ensemble, card_prior, evaluate_ensemble  # noqa: E402


def ms_per_face(ensemble: Ensemble, face: np.ndarray, repeats: int = 200) -> float:
    for _ in range(20):
        ensemble.probabilities(face)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        ensemble.probabilities(face)
        times.append(time.perf_counter() - t)
    return round(1000 * float(np.median(times)), 2)


def train_prior(card) -> list[float]:
    counts = card.data.get("splits", {}).get("train", {}).get("classes")
    if not counts:
        raise ValueError(f"the card of this {card.architecture} model lists no training class counts")
    return [round(float(p), 6) for p in class_prior(counts)]


def update_member_card(path: Path, model, split) -> None:
    """Store the member's own prior and one-pass tau in its card (a model used alone keeps its correction)."""
    card = read_card(path)
    card.prior = train_prior(card)
    raw = Ensemble([model], [card]).probabilities(split.x, corrected=False)
    card.tau, _ = tune_tau(raw, split.y, card.prior)
    card_path(path).write_text(card.to_json())


def profile_entry(name: str, ensemble: Ensemble, split, face: np.ndarray, command: str) -> dict:
    raw = ensemble.probabilities(split.x, corrected=False)
    tau, table = tune_tau(raw, split.y, ensemble.prior)
    ensemble = replace(ensemble, tau=tau, name=name)
    result = evaluate_ensemble(ensemble, split)
    keep = ("accuracy", "balanced_accuracy", "loss", "n")
    return {
        "description": PROFILES[name],
        "tau": tau,
        "passes": ensemble.passes,
        "ms_per_face": ms_per_face(ensemble, face),
        "public_test": {**{k: result[k] for k in keep},
                        "per_class_recall": {k: v["recall"] for k, v in result["per_class"].items()},
                        "confusion": result["confusion"],
                        "uncorrected": {k: result["uncorrected"][k] for k in ("accuracy", "balanced_accuracy")}},
        "tau_table": table,
        "evaluate_command": f"python -m fer evaluate --data path/to/fer2013 --profile {name}",
        "build_command": command,
    }


def corrected_scores(probs: np.ndarray, y: np.ndarray, prior) -> tuple[float, float, float]:
    """(tau, accuracy, balanced accuracy) of ``probs`` after the tau that :func:`tune_tau` picks."""
    tau, _ = tune_tau(probs, y, prior)
    fixed = adjust(probs, prior, tau)
    return tau, float((fixed.argmax(1) == y).mean()), balanced_accuracy(fixed, y)


def weight_grid(members: int) -> list[tuple[float, ...]]:
    """Every weighting of ``members`` models on a grid (step 0.05 for two, 0.1 for more), each weight
    at least one step: no member is dropped."""
    step = 0.05 if members == 2 else 0.1
    units = round(1 / step)
    combos = [c for c in itertools.product(range(1, units), repeat=members - 1) if sum(c) < units]
    return [tuple(round(k * step, 2) for k in (*c, units - sum(c))) for c in combos]


def choose_weights(probs: list[np.ndarray], y: np.ndarray, prior) -> tuple[list[float], list[dict]]:
    """Members' weights, chosen on public_test: of the weightings in :func:`weight_grid` whose
    prior-corrected accuracy is at least that of the best member alone (the ensemble must not read
    worse than its best model), the one with the highest prior-corrected balanced accuracy. ``probs``
    are the members' uncorrected probabilities on public_test, ``y`` its labels."""
    if len(probs) < 2:
        raise ValueError("weights 'auto' need two or more members in the profile")
    floor = max(corrected_scores(p, y, prior)[1] for p in probs)
    table = []
    for weights in weight_grid(len(probs)):
        mixed = sum(w * p for w, p in zip(weights, probs))
        tau, acc, bal = corrected_scores(mixed, y, prior)
        table.append({"weights": list(weights), "tau": tau, "accuracy": round(acc, 4),
                      "balanced_accuracy": round(bal, 4)})
    ok = [row for row in table if row["accuracy"] >= round(floor, 4)] or table
    return max(ok, key=lambda row: (row["balanced_accuracy"], row["accuracy"]))["weights"], table


def member_report(names: list[str], probs: list[np.ndarray], y: np.ndarray) -> dict:
    """Each member alone (uncorrected, with the profile's TTA) and each pair: how often their labels differ
    and how often both are wrong. Members that err apart are what an ensemble gains from."""
    labels = [p.argmax(1) for p in probs]
    alone = {n: round(float((lab == y).mean()), 4) for n, lab in zip(names, labels)}
    pairs = [{"members": [names[i], names[j]],
              "disagree": round(float((labels[i] != labels[j]).mean()), 4),
              "both_wrong": round(float(((labels[i] != y) & (labels[j] != y)).mean()), 4)}
             for i, j in itertools.combinations(range(len(names)), 2)]
    return {"accuracy_alone": alone, "pairs": pairs}


def weights_help(name: str) -> str:
    return (f"the {name} members' weights in the average: numbers, 'equal' (default), or 'auto' "
            "(chosen on public_test, see choose_weights)")


def check_weight_args(members: list[str], weights: list[str], flag: str) -> list[str]:
    """``weights`` as given on the command line: 'equal', 'auto' (two or more members) or one positive
    number per member; ``SystemExit`` with the fix otherwise."""
    if weights in (["equal"], ["auto"]):
        if weights == ["auto"] and len(members) < 2:
            raise SystemExit(f"error: {flag} auto needs two or more members; give one more model or drop it")
        return weights
    try:
        if len(weights) == len(members) and min(float(w) for w in weights) > 0:
            return weights
    except ValueError:
        pass
    raise SystemExit(f"error: {flag} takes 'equal', 'auto' or {len(members)} positive numbers, one per model; "
                     f"got {' '.join(weights)}")


def weigh(ensemble: Ensemble, members: list[str], weights: list[str], split) -> tuple[Ensemble, dict]:
    """``ensemble`` with its members' weights, and (for 'auto') the weight table and the members' report."""
    if weights == ["equal"]:
        return ensemble, {}
    if weights != ["auto"]:
        return replace(ensemble, weights=[float(w) for w in weights]), {}
    probs = [replace(ensemble, models=[m], cards=[c], weights=None).probabilities(split.x, corrected=False)
             for m, c in zip(ensemble.models, ensemble.cards)]
    chosen, table = choose_weights(probs, split.y, ensemble.prior)
    extra = {"weight_table": table, "members_report": member_report(members, probs, split.y)}
    for pair in extra["members_report"]["pairs"]:
        print(f"  {' vs '.join(pair['members'])}: disagree {pair['disagree']:.1%}, "
              f"both wrong {pair['both_wrong']:.1%}", flush=True)
    return replace(ensemble, weights=chosen), extra


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="FER2013 with its public_test split")
    ap.add_argument("--photo", nargs="+", required=True, metavar="MODEL", help="model files in models/")
    ap.add_argument("--photo-tta", default="flip", choices=("flip", "crops"))
    ap.add_argument("--photo-weights", nargs="+", default=["equal"], metavar="W", help=weights_help("photo"))
    ap.add_argument("--live", nargs="+", required=True, metavar="MODEL",
                    help="model files in models/, one pass each; the first, fer_default.keras, is also what "
                         "the in-browser mode runs alone and what calibration fine-tunes")
    ap.add_argument("--live-weights", nargs="+", default=["equal"], metavar="W", help=weights_help("live"))
    ap.add_argument("--out", default=str(MODELS_DIR / "profiles.json"))
    args = ap.parse_args(argv)
    recipes = {
        "photo": (args.photo, args.photo_tta, check_weight_args(args.photo, args.photo_weights, "--photo-weights")),
        "live": (args.live, None, check_weight_args(args.live, args.live_weights, "--live-weights")),
    }
    command = "python scripts/build_profiles.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    command = command.replace(args.data, "path/to/fer2013")
    split = load_dataset(args.data).split("public_test")
    out = Path(args.out)
    names = list(dict.fromkeys([*args.photo, *args.live]))
    loaded = {n: load_model(out.parent / n)[0] for n in names}
    for n in names:
        update_member_card(out.parent / n, loaded[n], split)
    cards = {n: read_card(out.parent / n) for n in names}
    face = split.x[:1]
    doc = {"format": MANIFEST_FORMAT, "split": "public_test", "profiles": {}}
    for name, (members, tta, weights) in recipes.items():
        member_cards = [cards[m] for m in members]
        ensemble = Ensemble([loaded[m] for m in members], member_cards, tta, card_prior(member_cards))
        ensemble, extra = weigh(ensemble, members, weights, split)
        weighted = {"weights": [round(w, 4) for w in ensemble.weights]} if len(members) > 1 else {}
        entry = profile_entry(name, ensemble, split, face, command)
        doc["profiles"][name] = {"members": members, **weighted, "tta": tta, **entry, **extra}
        pt = entry["public_test"]
        print(f"{name}: tau {entry['tau']}  accuracy {pt['accuracy']} (uncorrected {pt['uncorrected']['accuracy']})"
              f"  balanced {pt['balanced_accuracy']} (uncorrected {pt['uncorrected']['balanced_accuracy']})"
              f"  {entry['ms_per_face']} ms/face, {entry['passes']} passes", flush=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
