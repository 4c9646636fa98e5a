"""Write the ONNX graphs of the shipped models beside them, so that a fresh host converts nothing.

    python scripts/export_onnx_models.py             # every member of models/profiles.json
    python scripts/export_onnx_models.py --check     # only say whether the committed graphs are current

For each model ``models/NAME.keras`` it writes ``models/NAME.onnx`` (``keras.Model.export`` with
tf2onnx, see fer.onnx_runtime) and ``models/NAME.onnx.json``, which records the SHA-256 of the
``.keras`` file, the converter version and the opset. ``fer.onnx_runtime.onnx_for_file`` uses a
committed graph only while that record matches the file; otherwise it converts and caches as for
any other model. Run it again whenever a shipped ``.keras`` file is replaced (tests/test_shipped_onnx.py
fails until then). It also prints each graph's largest probability difference from Keras on 64 faces.
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
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when a graph is missing or stale")
    args = p.parse_args(argv)

    from fer.onnx_runtime import committed_graph, write_committed

    try:
        files = shipped_models(args.manifest)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stale = [f for f in files if committed_graph(f) is None]
    if args.check:
        for f in files:
            print(f"{f.name}: {'stale or missing' if f in stale else 'current'}")
        return 1 if stale else 0
    from fer.export import parity_faces

    faces = parity_faces(64)
    for f in files:
        try:
            out = write_committed(f)
        except ValueError as exc:
            print(f"error: {f.name}: {exc}", file=sys.stderr)
            return 2
        print(f"{f.name} -> {out.name} ({out.stat().st_size / 1e6:.1f} MB), "
              f"largest difference from Keras on 64 faces {largest_difference(f, faces):.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
