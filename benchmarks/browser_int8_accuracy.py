"""The in-browser mode's model in 8 bits against float32: accuracy under the page's recipe, clean and degraded.

    python benchmarks/browser_int8_accuracy.py --data path/to/fer2013 [--model models/fer_default.keras]

Both graphs run here on ONNX Runtime exactly as the page runs them (``fer.browser_models.browser_profile``:
one pass, the card's prior correction): the committed 8-bit graph (``models/NAME.int8.onnx``) and the
float32 one (``int8=False``). For public_test it prints accuracy and balanced accuracy, clean and under the
8 camera conditions of ``python -m fer evaluate --corruptions all`` (seed 0, every severity), with their
mean, and the int8 figure minus the float32 one. The page itself gives the same labels as ONNX Runtime
here (``benchmarks/wasm_int8.py``; tests/e2e/test_e2e_browser_live.py checks the page against this recipe).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="the FER2013 folder (its public_test split is measured)")
    p.add_argument("--model", type=Path, default=None,
                   help="a .keras file with a committed int8 graph (default: the in-browser mode's shipped model)")
    args = p.parse_args(argv)

    from fer.browser_models import browser_profile
    from fer.data import load_dataset, require_splits
    from fer.robustness import condition_sets, ensemble_classifier, format_table, summarize

    try:
        split = require_splits(load_dataset(args.data), ("public_test",)).splits["public_test"]
        profiles = {"float32": browser_profile(args.model, int8=False), "int8": browser_profile(args.model)}
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if profiles["int8"].info.get("precision") != "int8":
        print(f"error: {args.model or 'the shipped model'} has no current committed int8 graph: "
              "run python scripts/export_onnx_models.py --data path/to/fer2013", file=sys.stderr)
        return 2
    sets = condition_sets(split.x)
    results = {}
    for name, profile in profiles.items():
        classify = ensemble_classifier(profile)
        results[name] = summarize({c: classify(x) for c, x in sets.items()}, split.y)
    print(format_table(results))
    f, q = results["float32"], results["int8"]
    for key in ("accuracy", "balanced_accuracy"):
        print(f"clean {key}: float32 {f['clean'][key]:.2%}, int8 {q['clean'][key]:.2%} "
              f"({100 * (q['clean'][key] - f['clean'][key]):+.2f} points)")
    print(f"mean of the 8 conditions: float32 {f['mean']:.2%}, int8 {q['mean']:.2%} "
          f"({100 * (q['mean'] - f['mean']):+.2f} points)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
