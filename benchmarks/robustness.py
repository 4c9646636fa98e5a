"""Accuracy under camera conditions: our profiles and the `fer` package's classifier on the same corrupted crops.

    python benchmarks/robustness.py [--data ../shared/data/fer2013] [--severity all] [--seed 0]
                                    [--limit N] [--no-fer-package] [--write docs/baselines.json]

Each public_test crop is degraded once per condition by :mod:`fer.corruptions` (blur, sensor noise,
JPEG, darkness, low contrast, low resolution, tilt, a covered part of the face; ``--severity all`` puts
each crop at one of the five severities, in equal shares), deterministically from ``--seed``, and
every classifier sees the very same images: ``EmotionRecognizer(profile="live" | "photo").classify``
(prior-corrected) and the PyPI `fer` package's classifier through its public API with its detector
bypassed, in its own venv (as in ``benchmarks/fer_package_accuracy.py``). ``--write`` stores the table
under ``robustness`` in docs/baselines.json, which ``scripts/model_card.py`` renders and the Home page charts;
a run that measures fewer rows than are stored (``--profiles photo --no-fer-package`` after a photo-profile
change) replaces those rows and keeps the others, if it used the same seed, severity and faces.

``--variants`` adds what the pipeline could do about the conditions, on the live profile: flip TTA
(2 passes), and each crop's brightness and contrast standardized before the model (its mean and
standard deviation moved to FER2013's training averages).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from fer.corruptions import parse_conditions  # noqa: E402
from fer.robustness import condition_sets, format_table, summarize  # noqa: E402


def package_probabilities(venv: Path, sets: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The `fer` package's scores on every set, from one worker run (NaN rows where it returned nothing)."""
    from fer_package_accuracy import fer_package_scores

    names = list(sets)
    stacked = np.concatenate([sets[n] for n in names])
    with tempfile.TemporaryDirectory() as tmp:
        scores, worker = fer_package_scores(venv, stacked, tmp)
        worker.close()
    scores = np.nan_to_num(scores, nan=-1.0)
    bounds = np.cumsum([0] + [len(sets[n]) for n in names])
    return {n: scores[a:b] for n, a, b in zip(names, bounds[:-1], bounds[1:])}


TRAIN_MEAN, TRAIN_STD = 129.2, 54.5  # FER2013 train (3,000 random crops): pixel mean, mean per-crop standard deviation


def standardized(crops: np.ndarray) -> np.ndarray:
    """Each crop's pixels moved to the training set's mean and standard deviation (a brightness/contrast fix)."""
    x = np.asarray(crops, np.float32)
    mean = x.mean(axis=(1, 2), keepdims=True)
    std = x.std(axis=(1, 2), keepdims=True)
    return np.clip((x - mean) / np.maximum(std, 4.0) * TRAIN_STD + TRAIN_MEAN, 0, 255).astype(np.uint8)


def variants(rec) -> dict:
    """Name -> classify(crops) for the live profile's candidates against camera conditions."""
    flip = rec.with_tta("flip")
    return {"live + flip TTA": flip.classify, "live, standardized crops": lambda x: rec.classify(standardized(x))}


SETTINGS = ("split", "severity", "seed", "conditions")


def merged(stored: dict | None, entry: dict) -> dict:
    """``entry``, plus the rows of ``stored`` that this run did not measure, when both used the same settings.

    Re-measuring one profile after a model change (``--profiles photo --no-fer-package``) then keeps the other
    rows, which the same seed would reproduce exactly; ``remeasured`` records which rows came from which run.
    A run with other settings replaces the table.
    """
    sizes = {row.get("n") for row in [*(stored or {}).get("results", {}).values(), *entry["results"].values()]}
    if not stored or len(sizes) > 1 or any(stored.get(k) != entry.get(k) for k in SETTINGS):
        return entry
    rows = [*entry["results"], *entry.get("live_variants", {})]
    if set(stored["results"]) | set(stored.get("live_variants", {})) <= set(rows):
        return entry  # nothing of the stored table is left to keep
    base = {k: v for k, v in stored.items() if k != "remeasured"}
    base["results"] = {**stored["results"], **entry["results"]}
    if "live_variants" in entry:
        base["live_variants"] = entry["live_variants"]
    base["remeasured"] = [r for r in stored.get("remeasured", []) if set(r["rows"]) - set(rows)] + [
        {"rows": rows, "measured": entry["measured"], "command": entry["command"]}]
    return base


def write_baselines(path: Path, entry: dict) -> None:
    doc = json.loads(path.read_text())
    doc["robustness"] = merged(doc.get("robustness"), entry)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    kept = set(doc["robustness"]["results"]) - set(entry["results"])
    print(f"wrote robustness to {path}" + (f" (kept the stored rows: {', '.join(sorted(kept))})" if kept else ""))


def main(argv: list[str] | None = None) -> int:
    from fer.data import load_dataset, shared_data_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=shared_data_dir() / "fer2013")
    parser.add_argument("--conditions", default="all", help="'all' or a comma list (default all)")
    parser.add_argument("--severity", default="all", choices=("1", "2", "3", "4", "5", "all"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profiles", default="live,photo", help="our profiles to measure (default live,photo)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N public_test faces (0: all)")
    parser.add_argument("--no-fer-package", action="store_true", help="leave the `fer` package out")
    parser.add_argument("--fer-venv", type=Path, help="venv of the `fer` package (default: the benchmarks' one, "
                                                      "installed when missing)")
    parser.add_argument("--write", type=Path, help="store the table in this baselines JSON")
    parser.add_argument("--variants", action="store_true", help="also the live profile with flip TTA and with "
                                                                "standardized crops")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args(argv)
    if args.limit < 0:
        parser.error("--limit must be 0 (all) or a number of faces")
    conditions = parse_conditions(args.conditions)
    severity = args.severity if args.severity == "all" else int(args.severity)

    split = load_dataset(args.data).split("public_test")
    x, y = (split.x[: args.limit], split.y[: args.limit]) if args.limit else (split.x, split.y)
    if len(x) == 0:
        parser.error(f"{args.data} has no public_test faces")
    sets = condition_sets(x, conditions, severity, args.seed)

    from fer import EmotionRecognizer

    results = {}
    for name in [p.strip() for p in args.profiles.split(",") if p.strip()]:
        rec = EmotionRecognizer(profile=name)
        results[f"ours, {name}"] = summarize({k: rec.classify(v) for k, v in sets.items()}, y, severity, args.seed)
    extra = {}
    if args.variants:
        for name, classify in variants(EmotionRecognizer(profile="live")).items():
            extra[name] = summarize({k: classify(v) for k, v in sets.items()}, y, severity, args.seed)
    if not args.no_fer_package:
        from pipeline_speed import DEFAULT_VENV, fer_ready, install_fer

        venv = args.fer_venv or DEFAULT_VENV
        if not fer_ready(venv):
            install_fer(venv)
        results["fer package"] = summarize(package_probabilities(venv, sets), y, severity, args.seed)
    if args.json:
        print(json.dumps({**results, **extra}))
    else:
        print(f"{len(y)} public_test faces, severity {args.severity}, seed {args.seed}: accuracy")
        print(format_table({**results, **extra}))
    if args.write:
        flags = (("--variants", args.variants), (f"--profiles {args.profiles}", args.profiles != "live,photo"),
                 ("--no-fer-package", args.no_fer_package))
        cmd = "python benchmarks/robustness.py --data path/to/fer2013 --write docs/baselines.json" + "".join(
            f" {flag}" for flag, on in flags if on)
        write_baselines(args.write, {"measured": dt.date.today().isoformat(), "command": cmd, "split": "public_test",
                                     "severity": args.severity, "seed": args.seed,
                                     **({} if args.conditions == "all" else {"conditions": args.conditions}),
                                     "results": results, **({"live_variants": extra} if extra else {})})
    return 0


if __name__ == "__main__":
    sys.exit(main())
