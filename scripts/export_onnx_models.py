"""Write the ONNX graphs of the shipped models beside them, so that a fresh host converts nothing.

    python scripts/export_onnx_models.py             # every member of models/profiles.json whose graph is stale
    python scripts/export_onnx_models.py --data path/to/fer2013   # and the in-browser model's int8 graph
    python scripts/export_onnx_models.py --check     # only say whether the committed graphs are current

For each model ``models/NAME.keras`` it writes ``models/NAME.onnx`` (``keras.Model.export`` with
tf2onnx, see fer.onnx_runtime) and ``models/NAME.onnx.json``, which records the SHA-256 of the
``.keras`` file, the converter version and the opset. ``fer.onnx_runtime.onnx_for_file`` uses a
committed graph only while that record matches the file; otherwise it converts and caches as for
any other model. Run it again whenever a shipped ``.keras`` file is replaced (tests/test_shipped_onnx.py
fails until then). It also prints each graph's largest probability difference from Keras on 64 faces.

With ``--data`` it also writes ``models/NAME.int8.onnx`` and its sidecar for the model the Live page's
in-browser mode runs (the live profile's first member, :func:`fer.browser_models.browser_profile`):
:func:`fer.quantize.write_int8`, calibrated on 1,024 training faces, its public_test accuracy and that of
the float32 graph recorded in the sidecar. Without ``--data`` a re-exported float32 graph leaves that
int8 graph stale (the page then runs float32) and ``--check`` says so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def shipped_models(manifest: Path) -> list[Path]:
    """The model files every shipped profile uses, once each, in manifest order."""
    from fer.profiles import member_files, read_manifest

    files: list[Path] = []
    for name in read_manifest(manifest)["profiles"]:
        files += [f for f in member_files(name, manifest)[0] if f not in files]
    return files


def browser_model(manifest: Path) -> Path:
    """The model the Live page's in-browser mode runs: the live profile's first member."""
    from fer.profiles import member_files

    return member_files("live", manifest)[0][0]


def load_data(folder: str):
    """FER2013's train and public_test splits in ``folder``; None, with the reason on stderr, when missing."""
    from fer.data import load_dataset, require_splits

    try:
        return require_splits(load_dataset(folder))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def write_browser_int8(model: Path, data) -> None:
    import json

    from fer.quantize import int8_paths, write_int8

    test = data.splits["public_test"]
    out = write_int8(model, data.splits["train"].x, (test.x, test.y))
    acc = json.loads(int8_paths(model)[1].read_text())["public_test"]
    print(f"{model.name} -> {out.name} ({out.stat().st_size / 1e6:.1f} MB), public_test "
          f"{acc['accuracy_float32']:.2%} float32, {acc['accuracy_int8']:.2%} int8, labels agree on "
          f"{acc['labels_agree']:.1%}")


def largest_difference(path: Path, faces) -> float:
    """Largest absolute probability difference between the committed graph and Keras on ``faces``."""
    import numpy as np

    from fer.modelfile import load_model
    from fer.onnx_runtime import OnnxClassifier, committed_paths
    from fer.predictor import predict_proba

    got = OnnxClassifier(committed_paths(path)[0].read_bytes())(faces)
    return float(np.abs(got - predict_proba(load_model(path)[0], faces)).max())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", type=Path, default=REPO / "models" / "profiles.json",
                   help="the profile manifest whose member models to export (default models/profiles.json)")
    p.add_argument("--data", help="the FER2013 folder (train: calibration, public_test: accuracy): also write "
                                  "the in-browser model's int8 graph")
    p.add_argument("--force", action="store_true", help="convert every model again, not only the stale ones "
                                                       "(a new conversion can change the bytes: the int8 graph too)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when a graph is missing or stale")
    args = p.parse_args(argv)

    from fer.onnx_runtime import committed_graph, write_committed
    from fer.quantize import committed_int8, int8_paths

    try:
        files = shipped_models(args.manifest)
        browser = browser_model(args.manifest)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stale = [f for f in files if committed_graph(f) is None]
    if args.check:
        for f in files:
            print(f"{f.name}: {'stale or missing' if f in stale else 'current'}")
        int8_ok = committed_int8(browser) is not None
        print(f"{int8_paths(browser)[0].name}: {'current' if int8_ok else 'stale or missing'}"
              + ("" if int8_ok else " (run with --data path/to/fer2013)"))
        return 1 if stale or not int8_ok else 0
    data = load_data(args.data) if args.data else None
    if args.data and data is None:
        return 2
    from fer.export import parity_faces

    faces = parity_faces(64)
    for f in files if args.force else stale:
        try:
            out = write_committed(f)
        except ValueError as exc:
            print(f"error: {f.name}: {exc}", file=sys.stderr)
            return 2
        print(f"{f.name} -> {out.name} ({out.stat().st_size / 1e6:.1f} MB), "
              f"largest difference from Keras on 64 faces {largest_difference(f, faces):.1e}")
    if not (stale or args.force):
        print(f"every committed float32 graph is current ({len(files)} models)")
    if data is not None:
        write_browser_int8(browser, data)
    elif committed_int8(browser) is None:
        print(f"warning: {int8_paths(browser)[0].name} is stale or missing (the in-browser mode runs float32): "
              "run again with --data path/to/fer2013", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
