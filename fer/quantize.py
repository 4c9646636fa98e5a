"""8-bit copies of a model's ONNX graph, for the Live page's in-browser mode.

::

    small = quantize_int8(graph, calibration_faces(train_x))   # bytes of an int8 (QDQ) ONNX graph
    write_int8(Path("models/fer_default.keras"), train_x)      # models/fer_default.int8.onnx + .int8.onnx.json
    committed_int8("models/fer_default.keras")                 # its bytes while current, else None

On onnxruntime-web's one WASM thread the int8 graph of ``fer_default`` classifies a face about 1.5x faster than
the float32 one at the same public_test accuracy (docs/browser_live.md, ``benchmarks/wasm_int8.py``). It is
ONNX Runtime's static quantization: QDQ format, 7-bit weights per output channel, uint8 activations whose
ranges come from 1,024 training faces (seed 0) by the percentile method; the first convolution, the last
matrix product and the softmax stay float32 (probabilities are not rounded to 1/255). 7-bit weights keep
every pair of uint8 x int7 products inside 16 bits, so CPUs without VNNI (AVX2), which sum such pairs in
16 bits, do not saturate as they do with 8-bit weights; with VNNI and in WebAssembly the two give the same
accuracy (docs/browser_live.md, ``benchmarks/int8_no_vnni.py``: measured on an emulated AVX2 CPU).

A committed int8 graph is used only while its sidecar records the SHA-256 of the model's current committed
float32 graph (:func:`fer.onnx_runtime.committed_graph`) and its own bytes: a replaced model falls back to float32.
Making one needs the ``onnx`` package and the FER2013 training faces (``scripts/export_onnx_models.py --data``);
reading one needs neither.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tempfile
from pathlib import Path

import numpy as np

QUANT_VERSION = 1
"""Bumped when the recipe below changes (a committed graph made by another version is not used)."""
CALIBRATION_FACES = 1024
CALIBRATION_SEED = 0
REDUCE_RANGE = True  # 7-bit weights: the same sums with or without VNNI
INT8_SUFFIX, INT8_SIDECAR_SUFFIX = ".int8.onnx", ".int8.onnx.json"


def calibration_faces(train_x: np.ndarray, n: int = CALIBRATION_FACES, seed: int = CALIBRATION_SEED) -> np.ndarray:
    """``n`` training faces (a fixed random choice) as float32 (n, 48, 48, 1), the graph's input."""
    if len(train_x) == 0:
        raise ValueError("no training faces to calibrate the 8-bit ranges on")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(train_x), min(int(n), len(train_x)), replace=False)
    return np.asarray(train_x)[pick].astype(np.float32).reshape(-1, 48, 48, 1)


def quantize_int8(graph: bytes, calibration: np.ndarray, reduce_range: bool = REDUCE_RANGE) -> bytes:
    """The int8 (QDQ) copy of the float32 ONNX ``graph``, its activation ranges calibrated on ``calibration``
    faces (n, 48, 48, 1; whole batches of 64 are used); ``reduce_range``: 7-bit weights (no saturation on CPUs
    without VNNI)."""
    if len(calibration) == 0:
        raise ValueError("no calibration faces for the 8-bit ranges")
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        src, pre, out = (Path(tmp) / n for n in ("float.onnx", "pre.onnx", "int8.onnx"))
        src.write_bytes(graph)
        quant_pre_process(str(src), str(pre))
        model = onnx.load(str(pre))
        name = model.graph.input[0].name
        weighted = [n.name for n in model.graph.node if n.op_type in ("Conv", "MatMul", "Gemm")]
        keep_float = [weighted[0], weighted[-1]] if len(weighted) > 1 else []
        keep_float += [n.name for n in model.graph.node if n.op_type == "Softmax"]  # probabilities in full precision
        size = min(64, len(calibration))  # equal batches: ONNX Runtime's histogram stacks them (the rest is left out)
        batches = iter([{name: calibration[i:i + size]} for i in range(0, len(calibration) - size + 1, size)])

        class Faces(CalibrationDataReader):
            def get_next(self):
                return next(batches, None)

        with contextlib.redirect_stdout(io.StringIO()):  # the calibrator prints its progress
            quantize_static(str(pre), str(out), Faces(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.Percentile, nodes_to_exclude=keep_float,
                            reduce_range=reduce_range)
        return out.read_bytes()


def int8_paths(path: str | Path) -> tuple[Path, Path]:
    """``models/fer_default.keras`` -> ``models/fer_default.int8.onnx``, ``models/fer_default.int8.onnx.json``."""
    path = Path(path)
    return path.with_name(path.stem + INT8_SUFFIX), path.with_name(path.stem + INT8_SIDECAR_SUFFIX)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def committed_int8(path: str | Path) -> bytes | None:
    """The committed int8 graph of the ``.keras`` file ``path`` while its sidecar records the SHA-256 of the
    model's current committed float32 graph, this recipe's version and the int8 graph's own bytes; else None."""
    from fer.onnx_runtime import committed_graph, read_recorded

    graph = committed_graph(path) if Path(path).is_file() else None
    if graph is None:
        return None
    return read_recorded(*int8_paths(path), lambda: {"float_onnx_sha256": _sha(graph), "quant_version": QUANT_VERSION},
                         "int8_onnx_sha256")


def _labels(clf, x: np.ndarray) -> np.ndarray:
    return np.concatenate([clf(x[i:i + 256]) for i in range(0, len(x), 256)]).argmax(1)


def write_int8(path: str | Path, train_x: np.ndarray, test: tuple[np.ndarray, np.ndarray] | None = None) -> Path:
    """Quantize the committed float32 graph of the ``.keras`` file ``path`` and write the int8 graph and its
    sidecar beside it; ``test`` (faces, labels) adds both graphs' accuracy and label agreement to the sidecar."""
    from fer.onnx_runtime import OnnxClassifier, committed_graph

    graph = committed_graph(path)
    if graph is None:
        raise ValueError(f"{path} has no current committed ONNX graph: run python scripts/export_onnx_models.py")
    small = quantize_int8(graph, calibration_faces(train_x))
    meta = {"source": Path(path).name, "float_onnx_sha256": _sha(graph), "int8_onnx_sha256": _sha(small),
            "quant_version": QUANT_VERSION, "calibration": {"faces": CALIBRATION_FACES, "seed": CALIBRATION_SEED,
                                                              "split": "train", "method": "percentile"},
            "weights": "int8, 7-bit range, per channel" if REDUCE_RANGE else "int8, per channel",
            "activations": "uint8", "made_by": "python scripts/export_onnx_models.py --data path/to/fer2013"}
    if test is not None:
        x, y = np.asarray(test[0], np.float32).reshape(-1, 48, 48, 1), np.asarray(test[1])
        pred = {k: _labels(OnnxClassifier(g), x) for k, g in (("float32", graph), ("int8", small))}
        meta["public_test"] = {"faces": int(len(y)), **{f"accuracy_{k}": round(float((p == y).mean()), 4)
                                                        for k, p in pred.items()},
                               "labels_agree": round(float((pred["float32"] == pred["int8"]).mean()), 4)}
    small_path, meta_path = int8_paths(path)
    small_path.write_bytes(small)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return small_path
