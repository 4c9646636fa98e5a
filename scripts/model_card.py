"""Render the model cards: docs/model_card.md and README.md's results table, from models/*.json.

    python scripts/model_card.py           # rewrite both
    python scripts/model_card.py --check   # exit 1 if either is stale (tests/test_model_card.py runs this)

No figure is typed twice: the shipped model's figures come from its card (``models/fer_default.json``),
the baselines that no card holds (the seed CNN, the `fer` package) from ``docs/baselines.json``. The
README's table sits between ``<!-- results:begin -->`` and ``<!-- results:end -->``; the rest of the
README is left as it is. The profile rows come from ``models/profiles.json`` (``fer.profiles``);
without it, from the default card's ``metrics`` (``public_test`` for live, ``public_test_tta_flip`` for
photo). Dataset paths in recorded commands are shown as ``path/to/fer2013``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODEL_CARD_MD = REPO / "docs" / "model_card.md"
README = REPO / "README.md"
BASELINES = REPO / "docs" / "baselines.json"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
DATA = "path/to/fer2013"
PROFILE_TEXT = {
    "photo": "what *Analyze photos*, `predict` and `video` use",
    "live": "one pass per model: the live webcam",
}
FALLBACK = {  # no `profiles` in the card: the single model, with and without flip TTA
    "photo": ("public_test_tta_flip", "the shipped model with flip TTA (2x cost)",
              f"python -m fer evaluate --data {DATA} --tta --json"),
    "live": ("public_test", "the shipped model, one pass", f"python -m fer evaluate --data {DATA} --json"),
}


def cards(models: Path = REPO / "models") -> dict[str, dict]:
    """``{stem: card}`` of the tracked cards in ``models/`` (the default first); local models are left out."""
    try:
        listed = subprocess.run(["git", "ls-files", "--", "*.json"], cwd=models, capture_output=True, text=True,
                                check=True).stdout.split()
        paths = [models / name for name in listed]
    except (OSError, subprocess.CalledProcessError):
        paths = sorted(models.glob("*.json"))
    paths = sorted(paths, key=lambda p: (p.stem != "fer_default", p.stem))
    docs = {p.stem: json.loads(p.read_text()) for p in paths if p.is_file()}
    return {stem: d for stem, d in docs.items() if isinstance(d, dict) and "architecture" in d}


def manifest(models: Path = REPO / "models") -> dict:
    """``models/profiles.json``: the photo and live profiles (empty when there is none)."""
    path = models / "profiles.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}%"


def balanced(metrics: dict) -> float | None:
    """Balanced accuracy: the mean of the per-class recalls."""
    per_class = metrics.get("per_class") or {}
    recalls = [v["recall"] for v in per_class.values()]
    return sum(recalls) / len(recalls) if recalls else None


def public_cmd(text: str, card: dict) -> str:
    """A recorded command with this machine's dataset path replaced by ``path/to/fer2013``."""
    source = (card.get("data") or {}).get("source")
    return text.replace(source, DATA) if source else text


def profile_rows(card: dict, profiles: dict | None = None) -> list[dict]:
    """The shipped profiles (photo, live): name, what, accuracy, balanced accuracy, ms per face, command."""
    rows = []
    for name in ("photo", "live"):
        if profiles and name in profiles:
            p = profiles[name]
            test = p.get("public_test", {})
            rows.append({"name": f"shipped, `{name}` profile", "what": PROFILE_TEXT[name],
                         "accuracy": test.get("accuracy"), "balanced": test.get("balanced_accuracy"),
                         "recall": test.get("per_class_recall"), "ms": p.get("ms_per_face"),
                         "command": public_cmd(p.get("evaluate_command") or p.get("command", ""), card),
                         "members": p.get("members"), "tta": p.get("tta"), "tau": p.get("tau"),
                         "passes": p.get("passes"), "uncorrected": test.get("uncorrected") or {},
                         "weights": p.get("weights")})
        else:
            key, what, command = FALLBACK[name]
            m = card["metrics"].get(key)
            if m is None:
                continue
            rows.append({"name": f"shipped, `{name}` profile", "what": what, "accuracy": m["accuracy"],
                         "balanced": balanced(m), "ms": None, "command": command,
                         "recall": {k: v["recall"] for k, v in m["per_class"].items()}})
    return rows


def results_table(card: dict, baselines: dict, profiles: dict | None = None) -> str:
    """The README's 5-row results table and the commands that measure each row."""
    rows = profile_rows(card, profiles)
    seed, reported, pkg = baselines["seed_same_split"], baselines["seed_reported"], baselines["fer_package"]
    lines = ["| | model | FER2013 public_test | balanced accuracy | speed (2-core CPU) |",
             "|---|---|---:|---:|---:|"]
    for i, r in enumerate(rows, 1):
        speed = "—" if r["ms"] is None else f"{r['ms']:.1f} ms / face"
        if r["ms"] is None and r["name"].endswith("`live` profile"):  # no profile timing yet: row 5's run
            speed = f"{pkg['ours_ms_per_frame']:.1f} ms / 1-face frame"
        lines.append(f"| {i} | {r['name']}: {r['what']} | **{pct(r['accuracy'])}** | {pct(r['balanced'])} | {speed} |")
    n = len(rows)
    lines.append(f"| {n + 1} | {seed['name']}: {seed['what']} | {pct(seed['public_test'])} "
                 f"({pct(seed['public_test_tta_flip'])} with flip TTA) | — | — |")
    lines.append(f"| {n + 2} | {reported['name']}: {reported['what']} | {pct(reported['public_test'])} | — | — |")
    clf = baselines.get("fer_package_classifier") or {}
    lines.append(f"| {n + 3} | {pkg['name']}: {pkg['what']} | {pct(clf.get('accuracy'))} | "
                 f"{pct(clf.get('balanced_accuracy'))} | {pkg['ms_per_frame']:.1f} ms / frame "
                 f"(ours {pkg['ours_ms_per_frame']:.1f}) |")
    lines += ["", "How each row is measured (`path/to/fer2013`: your copy of the data set):", ""]
    for i, r in enumerate(rows, 1):
        lines.append(f"{i}. `{r['command']}`")
    lines.append(f"{n + 1}. `{seed['command']}` (then `python -m fer evaluate --data {DATA} "
                 "--model models/seed_baseline.keras --tta`)")
    lines.append(f"{n + 2}. {reported['command']}")
    lines.append(f"{n + 3}. `{pkg['command']}` (the `fer` venv: see the script's docstring)"
                 + (f"; accuracy, its classifier alone on the same crops: `{clf['command']}`" if clf else ""))
    card_date = card.get("created", "")[:10]
    lines += ["", f"Rows 1-{n}: `models/profiles.json` and the shipped cards ({card_date}); the others: "
              "`docs/baselines.json`. Generated by `python scripts/model_card.py`; details in "
              "[docs/model_card.md](docs/model_card.md) and [docs/experiments.md](docs/experiments.md)."]
    return "\n".join(lines + robustness_summary(baselines))


def per_class_table(metrics: dict) -> list[str]:
    labels = metrics.get("labels") or list(metrics["per_class"])
    out = ["| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for label in labels:
        c = metrics["per_class"][label]
        out.append(f"| {label} | {pct(c['precision'])} | {pct(c['recall'])} | {pct(c['f1'])} | {c['support']} |")
    return out


def confusion_table(metrics: dict) -> list[str]:
    labels = metrics.get("labels") or list(metrics["per_class"])
    out = ["| true \\ predicted | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for label, row in zip(labels, metrics["confusion"]):
        out.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    return out


def comparison_rows(baselines: dict) -> list[dict]:
    """The baselines measured on the same public_test crops: the seed CNN and the `fer` package's classifier."""
    rows = []
    seed = baselines.get("seed_same_split")
    if seed:
        rows.append({"name": seed["name"], "models": "the seed's CNN (5,905,863 parameters)",
                     "accuracy": seed["public_test"], "command": seed["command"]})
    pkg = baselines.get("fer_package_classifier")
    if pkg:
        rows.append({"name": pkg["name"], "models": pkg["what"], "accuracy": pkg["accuracy"],
                     "balanced": pkg["balanced_accuracy"], "recall": pkg["per_class_recall"],
                     "ms": pkg["ms_per_face"], "command": pkg["command"],
                     "note": f"one face per call, same run: ours (live) {pkg['ours_live_ms_per_face']:.1f} ms"})
    return rows


def render_comparison(baselines: dict, labels: list[str]) -> list[str]:
    rows = comparison_rows(baselines)
    if not rows:
        return []
    out = ["For comparison, on the same public_test crops (no prior correction; `docs/baselines.json`):", "",
           "| baseline | model | public_test | balanced accuracy | ms / face | "
           + " | ".join(f"{k} recall" for k in labels) + " |",
           "|---|---|---:|---:|---:|" + "---:|" * len(labels)]
    for r in rows:
        recall = r.get("recall") or {}
        ms = "—" if r.get("ms") is None else f"{r['ms']:.2f} ({r['note']})"
        out.append(f"| {r['name']} | {r['models']} | {pct(r['accuracy'], 2)} | {pct(r.get('balanced'), 2)} | {ms} | "
                   + " | ".join(pct(recall.get(k)) for k in labels) + " |")
    out += ["", "Measured by: " + "; ".join(f"`{r['command']}`" for r in rows) + ".", ""]
    return out


def render_profiles(doc: dict, card: dict, baselines: dict | None = None) -> list[str]:
    """The photo and live profiles of ``models/profiles.json``: recipe, figures with and without the prior
    correction, recall per class, cost per face, the commands, and the baselines measured the same way."""
    rows = profile_rows(card, doc.get("profiles") or {})
    if not rows:
        return []
    out = ["## Profiles (`models/profiles.json`)", "",
           "Photos, videos, `predict`, `evaluate` and `fer.EmotionRecognizer()` use **photo**; the live webcam and "
           "`--profile live` use **live**. Both divide out the training split's class prior "
           "(`softmax(log p - tau * log prior)`, `fer.prior`), with `tau` chosen on public_test balanced accuracy "
           "while plain accuracy stays within 0.3 points of the uncorrected one.", "",
           "| profile | models | TTA | passes / face | tau | public_test | balanced accuracy | "
           "uncorrected | uncorrected balanced | ms / face |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        plain = r.get("uncorrected") or {}
        members, weights = r.get("members") or [], r.get("weights")
        models = " + ".join(f"`{m}`" + (f" ({w:.0%})" if weights else "") for m, w in zip(members, weights or members))
        ms = "—" if r["ms"] is None else f"{r['ms']:.1f}"
        out.append(f"| {r['name']} | {models} | {r.get('tta') or 'none'} | {r.get('passes')} | {r.get('tau')} | "
                   f"{pct(r['accuracy'], 2)} | {pct(r['balanced'], 2)} | {pct(plain.get('accuracy'), 2)} | "
                   f"{pct(plain.get('balanced_accuracy'), 2)} | {ms} |")
    labels = card["labels"]
    out += ["", "Recall per class (public_test, corrected):", "", "| profile | " + " | ".join(labels) + " |",
            "|---|" + "---:|" * len(labels)]
    for r in rows:
        recall = r.get("recall") or {}
        out.append(f"| {r['name']} | " + " | ".join(pct(recall.get(k)) for k in labels) + " |")
    builds = {p.get("build_command") for p in doc["profiles"].values() if p.get("build_command")}
    out += ["", "Measure: " + "; ".join(f"`{r['command']}`" for r in rows) + ". Built (tau chosen, figures and "
            "cost measured) by:", ""] + [f"    {public_cmd(b, card)}" for b in sorted(builds)] + [""]
    return out + render_comparison(baselines or {}, labels)


def render_robustness(baselines: dict) -> list[str]:
    """The table of ``benchmarks/robustness.py --write``: accuracy per camera condition, ours and the `fer` package."""
    rob = (baselines or {}).get("robustness")
    if not rob:
        return []
    results = rob["results"]
    names = list(results)
    conditions = list(next(iter(results.values()))["conditions"])
    out = ["## Under camera conditions", "",
           f"The {next(iter(results.values()))['n']} {rob['split']} crops, each degraded once per condition by "
           f"`fer.corruptions` (severity {rob['severity']}: each crop at one of the five severities, in equal "
           f"shares; seed {rob['seed']}), the same images for every classifier (accuracy, prior-corrected for ours; "
           f"{rob['measured']}):", "",
           "| condition | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names),
           "| clean | " + " | ".join(pct(results[n]["clean"]["accuracy"]) for n in names) + " |"]
    for c in conditions:
        out.append(f"| {c} | " + " | ".join(pct(results[n]["conditions"][c]["accuracy"]) for n in names) + " |")
    out += [f"| **mean of the {len(conditions)}** | " + " | ".join(f"**{pct(results[n]['mean'])}**" for n in names)
            + " |", "", f"Measured by `{rob['command']}`{remeasured(rob)}; one profile: `python -m fer evaluate --data "
            f"{DATA} --profile live --corruptions all`. The ranges of each condition: `fer.corruptions.RANGES`.", ""]
    return out


def remeasured(rob: dict) -> str:
    """", then X re-measured by `cmd` (date)" for each later run that replaced some rows of the table."""
    return "".join(f", then {', '.join(r['rows'])} re-measured by `{r['command']}` ({r['measured']})"
                   for r in rob.get("remeasured", []))


def robustness_summary(baselines: dict) -> list[str]:
    """The README's short version: clean accuracy, the mean under the 8 conditions and the worst one."""
    rob = (baselines or {}).get("robustness")
    if not rob:
        return []
    out = ["", "Under 8 camera conditions (blur, noise, JPEG, darkness, ...; the same degraded public_test crops):", "",
           "| classifier | clean | mean of the 8 conditions | worst condition |", "|---|---:|---:|---|"]
    for name, r in rob["results"].items():
        worst = r["worst"]
        out.append(f"| {name} | {pct(r['clean']['accuracy'])} | **{pct(r['mean'])}** | {worst} "
                   f"({pct(r['conditions'][worst]['accuracy'])}) |")
    return out + ["", f"`{rob['command']}` ({rob['measured']}){remeasured(rob)}; per condition: "
                  "[docs/model_card.md](docs/model_card.md#under-camera-conditions)."]


def render_card(stem: str, card: dict) -> str:
    out = [f"## `models/{stem}.keras`", ""]
    hours = card.get("wall_time_s", 0) / 3600
    facts = [("architecture", f"`{card.get('architecture')}`"), ("input", "x".join(map(str, card["input_shape"]))),
             ("labels", ", ".join(card["labels"])), ("created", card.get("created", "—")),
             ("epochs (this run)", f"{card.get('epochs')}" + (f" (best epoch {card['best_epoch']})"
                                                               if card.get("best_epoch") else "")),
             ("wall time (this run)", f"{hours:.1f} h"), ("hardware", card.get("hardware", "—")),
             ("precision", card.get("precision", "—")), ("Keras", f"{card.get('keras_version')} "
                                                                 f"({card.get('backend')} backend)")]
    out += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in facts] + [""]
    for key, m in card.get("metrics", {}).items():
        tta = f", TTA {m['tta']}" if m.get("tta") else ""
        out += [f"### Metrics: `{key}`", "",
                f"{m.get('n')} images{tta}: accuracy **{pct(m['accuracy'], 2)}**, balanced accuracy "
                f"{pct(balanced(m), 2)}, loss {m.get('loss')}.", ""]
        out += per_class_table(m) + ["", "Confusion matrix (rows: true class):", ""] + confusion_table(m) + [""]
    data = card.get("data") or {}
    if data:
        out += ["### Data", "", f"Form: {data.get('form')}; skipped files/rows: {data.get('skipped', 0)}.", "",
                "| split | images | " + " | ".join(card["labels"]) + " |", "|---|---:|" + "---:|" * len(card["labels"])]
        for split, s in data.get("splits", {}).items():
            counts = " | ".join(str(s["classes"].get(k, 0)) for k in card["labels"])
            out.append(f"| {split} | {s['n']} | {counts} |")
        out.append("")
    out += ["### How it was trained", ""]
    if card.get("notes"):
        out += [public_cmd(card["notes"], card), ""]
    stages = card.get("stages") or []
    if stages:
        out += ["Stages, in order (each stage's `--out` is the next one's `--init-model`):", ""]
        for i, s in enumerate(stages, 1):
            out.append(f"{i}. {s.get('epochs')} epochs, {s.get('wall_time_s', 0) / 3600:.1f} h: "
                       f"`{public_cmd(s['command'], card)}`")
        out.append("")
    if card.get("command"):
        out += ["This run:", "", f"    {public_cmd(card['command'], card)}", ""]
    avg = card.get("averaged")
    if avg:
        best = avg.get("best_single_epoch") or {}
        out += [f"Weight averaging (SWA) over epochs {avg.get('first_epoch')}-{avg.get('last_epoch')} "
                f"({avg.get('checkpoints')} checkpoints; BatchNorm statistics recomputed over "
                f"{avg.get('batchnorm_images')} training images); the run's best single epoch was "
                f"{best.get('epoch')} at {pct(best.get('accuracy'), 2)}:", "",
                f"    {public_cmd(avg['command'], card)}", ""]
    cfg = card.get("config") or {}
    start = cfg.get("pretrained_weights") or {}
    if start:
        out += [f"Started from pretrained weights (`models/stages/{start.get('file')}`): {start.get('origin')}. "
                f"Licence: {start.get('license')}. Source SHA-256 `{start.get('source_sha256')}`.", ""]
    if cfg:
        out += ["Training configuration of this run: " + ", ".join(f"`{k}={public_cmd(str(v), card)}`"
                                                              for k, v in cfg.items() if k != "pretrained_weights")
                + ".", ""]
    history = card.get("history") or []
    if history:
        best = max(history, key=lambda h: h.get("val_accuracy", 0))
        out += [f"History: {len(history)} epochs in this run; best validation accuracy "
                f"{pct(best.get('val_accuracy'), 2)} at epoch {best.get('epoch')}; every epoch is in the card's "
                "`history`.", ""]
    return "\n".join(out)


def model_card_md(all_cards: dict[str, dict], baselines: dict | None = None) -> str:
    head = ["# Model cards", "",
            "<!-- Generated by `python scripts/model_card.py` from models/*.json: edit the cards, not this file. -->",
            "",
            "Every shipped model is `name.keras` plus its card `name.json`: labels in order, input shape, "
            "training configuration, data, history, metrics per split and the commands that produced it. "
            "This page renders those cards; the README's results table comes from the same script.", ""]
    profiles = render_profiles(manifest(), all_cards["fer_default"], baselines) + render_robustness(baselines)
    return "\n".join(head + profiles + [render_card(stem, card) for stem, card in all_cards.items()]).rstrip() + "\n"


def readme_with_table(readme: str, table: str) -> str:
    if BEGIN not in readme or END not in readme:
        raise ValueError(f"README.md has no {BEGIN} ... {END} markers for the results table")
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return readme[:start] + "\n" + table + "\n" + readme[end:]


def outputs() -> dict[Path, str]:
    all_cards = cards()
    baselines = json.loads(BASELINES.read_text())
    return {MODEL_CARD_MD: model_card_md(all_cards, baselines),
            README: readme_with_table(README.read_text(), results_table(all_cards["fer_default"], baselines,
                                                                        manifest().get("profiles")))}


def stale() -> list[str]:
    """The generated files whose content differs from what the cards give now."""
    return [str(p.relative_to(REPO)) for p, text in outputs().items() if not p.is_file() or p.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is stale")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale()
        if bad:
            print(f"stale: {', '.join(bad)}; run python scripts/model_card.py", file=sys.stderr)
        return 1 if bad else 0
    for path, text in outputs().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
