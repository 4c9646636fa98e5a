"""8-bit ONNX graphs of the emotion models: what they would gain in speed and lose in accuracy.

    python benchmarks/int8_speed.py models/fer_default.keras models/fer_effnet.keras --data path/to/fer2013 \
        [--calibration 1024] [--conditions] [--reduce-range] [--repeats 200]

For each ``.keras`` file, in one process: its float32 ONNX graph (``fer.onnx_runtime.onnx_for_file``, the graph
the app runs) and an int8 copy made by ``fer.quantize.quantize_int8`` (ONNX Runtime's static quantization: QDQ
format, int8 weights per output channel, uint8 activations whose ranges come from ``--calibration`` training
faces by the percentile method; the first convolution and the classifier's matrix product stay float32, where
8 bits cost the most; the in-browser mode's shipped int8 graph is this recipe with ``--reduce-range``).
It prints public_test accuracy (uncorrected, one pass) of both graphs, the share of faces where their labels
agree, and milliseconds per face on one thread for one face (the webcam) and for 8 (a group photo), with the
float32 graph's time divided by the int8 one's in the same run. ``--conditions`` adds the mean accuracy over
the 8 camera conditions of ``python -m fer evaluate --corruptions all`` (the same degraded copies: seed 0,
every severity). Nothing is written to ``models/`` (``scripts/export_onnx_models.py --data`` writes the shipped one).

The int8 accuracy depends on the CPU that runs the graph: x86 CPUs without VNNI (AVX2, or AVX-512 without
VNNI) multiply uint8 by int8 through 16-bit sums that can saturate; CPUs with VNNI do not. The script prints
which kind it runs on; ``--reduce-range`` quantizes weights to 7 bits, ONNX Runtime's remedy for saturation,
so that both settings can be compared on one machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import numpy as np  # noqa: E402
from member_speed import median_ms  # noqa: E402  (median ms per face of a call, after warm-up)


def int8_dot_product() -> str:
    """How this CPU multiplies 8-bit numbers: VNNI (exact 32-bit sums) or not (16-bit sums that can saturate)."""
    try:
        flags = set(next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                         if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        return "unknown (no /proc/cpuinfo flags)"
    vnni = sorted(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})
    if vnni:
        return f"VNNI ({', '.join(vnni)}): no saturation"
    return "no VNNI (" + ("AVX-512" if "avx512f" in flags else "AVX2") + "): 16-bit sums, saturation possible"


def probabilities(clf, x: np.ndarray) -> np.ndarray:
    return np.concatenate([clf(x[i:i + 256]) for i in range(0, len(x), 256)])


def graphs(path: Path, train_x: np.ndarray, n_cal: int = 1024, reduce_range: bool = False) -> tuple[bytes, bytes]:
    """The float32 ONNX graph of ``path`` (the app's) and its int8 copy (:func:`fer.quantize.quantize_int8`),
    calibrated on ``n_cal`` training faces (a fixed random choice, seed 0)."""
    from fer.onnx_runtime import onnx_for_file
    from fer.quantize import calibration_faces, quantize_int8

    graph = onnx_for_file(path)
    return graph, quantize_int8(graph, calibration_faces(train_x, n_cal), reduce_range)


def measure(path: Path, train_x: np.ndarray, test: dict[str, np.ndarray], y: np.ndarray, n_cal: int,
            repeats: int, reduce_range: bool = False) -> dict:
    from fer.onnx_runtime import OnnxClassifier

    graph, small = graphs(path, train_x, n_cal, reduce_range)
    row = {"model": path.name, "MB": (len(graph) / 1e6, len(small) / 1e6)}
    engines = {"float32": OnnxClassifier(graph, threads=1), "int8": OnnxClassifier(small, threads=1)}
    labels = {}
    for engine, clf in engines.items():
        accs = {}
        for condition, x in test.items():
            pred = probabilities(clf, x).argmax(1)
            accs[condition] = float((pred == y).mean() * 100)
            if condition == "clean":
                labels[engine] = pred
        row[engine] = accs
        faces = test["clean"][:8].astype(np.float32).reshape(-1, 48, 48, 1)
        row[engine]["ms_1"] = median_ms(clf, faces[:1], repeats)
        row[engine]["ms_8"] = median_ms(clf, faces, repeats)
    row["agree"] = float((labels["float32"] == labels["int8"]).mean() * 100)
    return row


def report(rows: list[dict], conditions: bool) -> None:
    head = "| model | MB float32 / int8 | public_test float32 | int8 | labels agree |"
    if conditions:
        head += " mean of the 8 conditions, float32 | int8 |"
    head += " ms/face float32, 1 face | int8 | ratio | float32, 8 faces | int8 | ratio |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        f, q = r["float32"], r["int8"]
        cells = [r["model"], f"{r['MB'][0]:.1f} / {r['MB'][1]:.1f}", f"{f['clean']:.2f}%", f"{q['clean']:.2f}%",
                 f"{r['agree']:.1f}%"]
        if conditions:
            mean = lambda a: np.mean([v for k, v in a.items() if k not in ("clean", "ms_1", "ms_8")])  # noqa: E731
            cells += [f"{mean(f):.2f}%", f"{mean(q):.2f}%"]
        cells += [f"{f['ms_1']:.2f}", f"{q['ms_1']:.2f}", f"{f['ms_1'] / q['ms_1']:.2f}x",
                  f"{f['ms_8']:.2f}", f"{q['ms_8']:.2f}", f"{f['ms_8'] / q['ms_8']:.2f}x"]
        print("| " + " | ".join(cells) + " |", flush=True)


def load_data(models: list[Path], folder: str):
    """The FER2013 dataset in ``folder`` (train and public_test), after checking that every model file exists;
    ``None``, with the reason on stderr, when either is missing."""
    missing = [str(m) for m in models if not m.is_file()]
    if missing:
        print(f"error: no model file {', '.join(missing)}", file=sys.stderr)
        return None
    from fer.data import load_dataset, require_splits

    try:
        return require_splits(load_dataset(folder))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", type=Path, help=".keras model files (their ONNX graphs are quantized)")
    p.add_argument("--data", required=True, help="the FER2013 folder: train (calibration) and public_test")
    p.add_argument("--calibration", type=int, default=1024, help="training faces for the activation ranges")
    p.add_argument("--conditions", action="store_true", help="also the mean over the 8 camera conditions")
    p.add_argument("--reduce-range", action="store_true",
                   help="7-bit weights (ONNX Runtime's remedy for saturation on CPUs without VNNI)")
    p.add_argument("--repeats", type=int, default=200, help="timed calls per figure (the median is kept)")
    args = p.parse_args(argv)
    if args.calibration < 16 or args.repeats < 1:
        print("error: --calibration must be at least 16 faces and --repeats at least 1", file=sys.stderr)
        return 2
    data = load_data(args.models, args.data)
    if data is None:
        return 2
    split = data.splits["public_test"]
    test = {"clean": split.x}
    if args.conditions:
        from fer.robustness import condition_sets

        test.update(condition_sets(split.x))
    print(f"int8 arithmetic on this CPU: {int8_dot_product()}; weights: "
          f"{'7-bit (--reduce-range)' if args.reduce_range else '8-bit'}", flush=True)
    rows = [measure(m, data.splits["train"].x, test, split.y, args.calibration, args.repeats, args.reduce_range)
            for m in args.models]
    report(rows, args.conditions)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
