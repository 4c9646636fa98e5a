"""Do 8-bit graphs give the same answers on a CPU without VNNI? This CPU against an emulated one, same graphs.

    python benchmarks/int8_no_vnni.py models/fer_default.keras models/fer_effnet.keras --data path/to/fer2013 \
        [--faces 600] [--cpu Haswell]

x86 CPUs without VNNI (AVX2) make ONNX Runtime sum pairs of uint8 x int8 products in 16 bits, which can
saturate; VNNI sums in 32 bits. For each ``.keras`` file this makes its float32 ONNX graph and two int8 copies
(``fer.quantize.quantize_int8``, the shipped recipe: 7-bit weights, and the same with 8-bit weights), runs them
on ``--faces`` public_test faces (a fixed random choice) with ONNX Runtime on this CPU and again under QEMU's
user-mode emulation of ``--cpu`` (``qemu-x86_64 -cpu Haswell``: AVX2 and FMA, no AVX-512, no VNNI; the same
Python, the same ONNX Runtime, which picks its kernels from the emulated CPUID), and prints each graph's
accuracy on both, how many labels agree and the largest probability difference. Emulation is slow (about
100x): 600 faces of the effnet take minutes. Needs ``qemu-user`` (``apt-get install -y qemu-user``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import numpy as np  # noqa: E402

VARIANTS = ("float32", "int8, 7-bit weights (shipped)", "int8, 8-bit weights")


def child(folder: Path, tag: str) -> None:
    """Run every graph in ``folder`` on ``faces.npz`` (one thread) and write ``probs_<tag>.npz``."""
    from int8_speed import probabilities

    from fer.onnx_runtime import OnnxClassifier

    x = np.load(folder / "faces.npz")["x"]
    out = {path.stem: probabilities(OnnxClassifier(str(path)), x) for path in sorted(folder.glob("*.onnx"))}
    np.savez(folder / f"probs_{tag}.npz", **out)


def write_graphs(models: list[Path], train_x: np.ndarray, folder: Path) -> dict[str, tuple[str, str]]:
    """Each model's three graphs (:data:`VARIANTS`) as ``folder/<i>_<j>.onnx``; ``{stem: (model name, variant)}``."""
    from int8_speed import graphs

    names = {}
    for i, model in enumerate(models):
        graph, seven = graphs(model, train_x, reduce_range=True)
        eight = graphs(model, train_x, reduce_range=False)[1]
        for j, (variant, data) in enumerate(zip(VARIANTS, (graph, seven, eight))):
            (folder / f"{i}_{j}.onnx").write_bytes(data)
            names[f"{i}_{j}"] = (model.name, variant)
    return names


def run(folder: Path, tag: str, prefix: list[str]) -> float:
    t0 = time.time()
    done = subprocess.run([*prefix, sys.executable, __file__, "--child", str(folder), tag], capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the {tag} run failed: {done.stderr[-1500:]}")
    return time.time() - t0


def report(names: dict, y: np.ndarray, native: dict, emulated: dict, cpu: str) -> None:
    print(f"| model | graph | accuracy here | accuracy on emulated {cpu} | labels agree | largest difference |")
    print("|---|---|---:|---:|---:|---:|")
    for stem, (model, variant) in names.items():
        a, b = native[stem], emulated[stem]
        print(f"| {model} | {variant} | {(a.argmax(1) == y).mean():.2%} | {(b.argmax(1) == y).mean():.2%} | "
              f"{(a.argmax(1) == b.argmax(1)).mean():.1%} | {np.abs(a - b).max():.4f} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", type=Path, help=".keras model files")
    p.add_argument("--data", help="the FER2013 folder: train (calibration) and public_test")
    p.add_argument("--faces", type=int, default=600, help="public_test faces to classify (a fixed random choice)")
    p.add_argument("--cpu", default="Haswell", help="QEMU's CPU model to emulate (qemu-x86_64 -cpu help)")
    p.add_argument("--child", nargs=2, metavar=("FOLDER", "TAG"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(Path(args.child[0]), args.child[1])
        return 0
    if not args.models or not args.data or args.faces < 1:
        p.error("give one or more .keras files, --data and --faces of at least 1")
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        print("error: no qemu-x86_64: apt-get install -y qemu-user", file=sys.stderr)
        return 2
    from int8_speed import int8_dot_product, load_data

    data = load_data(args.models, args.data)
    if data is None:
        return 2
    test = data.splits["public_test"]
    pick = np.sort(np.random.default_rng(1).choice(len(test.y), min(args.faces, len(test.y)), replace=False))
    print(f"here: {int8_dot_product()}; emulated: qemu-x86_64 -cpu {args.cpu}; {len(pick)} public_test faces",
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        np.savez(folder / "faces.npz", x=test.x[pick])
        names = write_graphs(args.models, data.splits["train"].x, folder)
        seconds = run(folder, "native", []), run(folder, "emulated", [qemu, "-cpu", args.cpu])
        native, emulated = np.load(folder / "probs_native.npz"), np.load(folder / "probs_emulated.npz")
        report(names, test.y[pick], dict(native), dict(emulated), args.cpu)
    print(f"seconds: {seconds[0]:.0f} here, {seconds[1]:.0f} emulated (load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
