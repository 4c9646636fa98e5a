"""``python -m fer export --format onnx|tflite|savedmodel|onnx-int8 --out DIR``: the emotion model for other runtimes.

Every format takes raw faces and gives probabilities, with the preprocessing in the graph:

- input ``face``: float32 (n, 48, 48, 1), gray levels 0..255 (a 48x48 uint8 crop, cast);
- output ``probabilities``: float32 (n, 7) in the order of ``labels`` in the card.

``onnx`` (``fer.onnx``; ONNX Runtime, onnxruntime-web) by Keras' own exporter (:mod:`fer.onnx_runtime`);
``tflite`` (``fer.tflite``; LiteRT on phones) by TensorFlow's converter; ``savedmodel`` (a
folder ``saved_model/``, signature ``serve``; TF Serving) by Keras' exporter. The model card goes
beside the file as ``fer.json``, with an ``export`` section saying the format, the input and output,
how the file was made, its largest probability difference from Keras on 500 faces, and the
optional prior correction (``probs / prior**tau``, renormalised) the live profile applies.
``onnx-int8`` (``fer.int8.onnx``, a quarter of the size) is the 8-bit graph of :mod:`fer.quantize`, calibrated on
the training faces of ``--data`` and checked by labels (:func:`export_int8`).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

FORMATS = {"onnx": "fer.onnx", "tflite": "fer.tflite", "savedmodel": "saved_model"}
"""Export formats and the file (or folder) each writes into the output folder."""
INT8, INT8_FILE = "onnx-int8", "fer.int8.onnx"
"""The 8-bit ONNX format (:mod:`fer.quantize`): calibrated on the training faces of ``--data``, checked by labels."""
INT8_AGREEMENT = 0.95
"""The least share of parity faces on which the 8-bit file must give Keras's label."""
PARITY_FACES = 500
PARITY_TOLERANCE = 1e-3


def parity_faces(n: int = PARITY_FACES, data_dir: str | Path | None = None, seed: int = 0) -> np.ndarray:
    """``n`` uint8 faces (n, 48, 48) to compare runtimes on: FER2013 test faces when ``data_dir`` has them
    (its ``test`` folder when there is one),
    else smooth random faces (blurred noise plus an oval), which exercise every layer all the same."""
    return parity_set(n, data_dir, seed)[0]


def parity_set(n: int = PARITY_FACES, data_dir: str | Path | None = None, seed: int = 0) -> tuple[np.ndarray, str]:
    """:func:`parity_faces` and where they came from: ``"FER2013"`` or ``"synthetic"`` (when ``data_dir`` is
    None or holds fewer than ``n`` faces)."""
    if data_dir is not None and Path(data_dir).is_dir():
        from fer.data import load_dataset

        folder = Path(data_dir) / "test" if (Path(data_dir) / "test").is_dir() else Path(data_dir)
        x = load_dataset(folder, skip_unknown=True).split("all").x
        if len(x) >= n:
            idx = np.random.default_rng(seed).choice(len(x), n, replace=False)
            return np.asarray(x[np.sort(idx)], np.uint8), "FER2013"
    return synthetic_faces(n, seed), "synthetic"


def synthetic_faces(n: int, seed: int = 0) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    faces = np.empty((n, 48, 48), np.uint8)
    for i in range(n):
        img = cv2.GaussianBlur(rng.uniform(0, 255, (48, 48)).astype(np.float32), (0, 0), rng.uniform(0.5, 3))
        cv2.ellipse(img, (24, 26), (15, 20), 0, 0, 360, float(rng.uniform(60, 220)), -1)
        for x in (17, 31):
            cv2.circle(img, (x, 20), 3, float(rng.uniform(0, 80)), -1)
        faces[i] = np.clip(img, 0, 255).astype(np.uint8)
    return faces


def keras_probabilities(model, faces: np.ndarray) -> np.ndarray:
    from fer.predictor import predict_proba

    return predict_proba(model, faces)


def runner(fmt: str, path: str | Path):
    """``f(faces uint8 (n, 48, 48)) -> (n, 7)`` running an exported file in its own runtime."""
    def x_of(faces):
        return np.asarray(faces, np.float32)[..., None]

    if fmt in ("onnx", INT8):
        from fer.onnx_runtime import OnnxClassifier

        return OnnxClassifier(str(path))
    if fmt == "tflite":
        interpreter = _tflite_interpreter(str(path))

        def run(faces):
            x = x_of(faces)
            inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
            interpreter.resize_tensor_input(inp["index"], x.shape)
            interpreter.allocate_tensors()
            interpreter.set_tensor(inp["index"], x)
            interpreter.invoke()
            return interpreter.get_tensor(out["index"]).copy()

        return run
    if fmt == "savedmodel":
        import tensorflow as tf

        serve = tf.saved_model.load(str(path)).signatures["serve"]
        return lambda faces: next(iter(serve(face=tf.constant(x_of(faces))).values())).numpy()
    raise ValueError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")


def _tflite_interpreter(path: str):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import warnings

        import tensorflow as tf

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Interpreter = tf.lite.Interpreter
    return Interpreter(model_path=path)


def _write_onnx(model, target: Path) -> None:
    from fer.onnx_runtime import keras_to_onnx

    target.write_bytes(keras_to_onnx(model))


def _serving_function(model):
    import tensorflow as tf

    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="face")
    return tf.function(lambda face: {"probabilities": model(face, training=False)}, input_signature=[spec])


def _write_tflite(model, target: Path) -> None:
    try:
        import tensorflow as tf
    except ImportError:
        raise ValueError("--format tflite needs TensorFlow's converter (tensorflow is not installed); "
                         "pip install tensorflow, or export --format onnx") from None
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    # frozen first: the augmentation layer's random-seed variable would otherwise stay a READ_VARIABLE
    # that LiteRT never initialises, and every output would be NaN
    frozen = convert_variables_to_constants_v2(_serving_function(model).get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    try:
        target.write_bytes(converter.convert())
    except Exception as exc:  # noqa: BLE001 - the converter raises many types
        raise ValueError(f"TensorFlow's TFLite converter failed on this model ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:200]}); export --format onnx instead") from None


def _write_savedmodel(model, target: Path) -> None:
    try:
        import tensorflow as tf
    except ImportError:
        raise ValueError("--format savedmodel needs TensorFlow (not installed); export --format onnx") from None
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"--format savedmodel needs the Keras TensorFlow backend (KERAS_BACKEND="
                         f"{keras.backend.backend()}); set KERAS_BACKEND=tensorflow or export --format onnx")
    module = tf.Module()
    module.model = model
    module.serve = _serving_function(model)
    tf.saved_model.save(module, str(target), signatures={"serve": module.serve})


WRITERS = {"onnx": _write_onnx, "tflite": _write_tflite, "savedmodel": _write_savedmodel}


def export_model(model, card, fmt: str, out_dir: str | Path, data_dir: str | Path | None = None) -> dict:
    """Write ``model`` in format ``fmt`` into ``out_dir`` with its card (``fer.json``), checked against Keras.

    Returns the card's ``export`` section. ``ValueError`` when the format cannot be produced here or
    the exported file disagrees with Keras by more than :data:`PARITY_TOLERANCE` on any probability
    (``onnx-int8``: :func:`export_int8`, checked by labels).
    """
    if fmt == INT8:
        return export_int8(model, card, out_dir, data_dir)
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of: {', '.join([*FORMATS, INT8])}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / FORMATS[fmt]
    WRITERS[fmt](model, target)
    faces, source = parity_set(data_dir=data_dir)
    diff = float(np.abs(runner(fmt, target)(faces) - keras_probabilities(model, faces)).max())
    if not diff <= PARITY_TOLERANCE:  # NaN fails too
        raise ValueError(f"the exported {fmt} model differs from Keras by {diff:.2g} on a probability "
                         f"(more than {PARITY_TOLERANCE}); it was written to {target} but should not be used")
    parity = {"faces": len(faces), "source": source, "max_abs_diff_vs_keras": diff}
    return _write_card(card, out, _section(card, fmt, target.name, parity))


def export_int8(model, card, out_dir: str | Path, data_dir: str | Path | None) -> dict:
    """``model`` as an 8-bit ONNX file (:func:`fer.quantize.quantize_int8`, calibrated on the training faces of
    the FER2013 folder ``data_dir``) with its card; ValueError without such faces, or when the file gives
    Keras's label on less than :data:`INT8_AGREEMENT` of the parity faces."""
    from fer.data import load_dataset, require_splits
    from fer.onnx_runtime import keras_to_onnx
    from fer.quantize import QUANT_VERSION, REDUCE_RANGE, calibration_faces, quantize_int8

    if data_dir is None:
        raise ValueError(f"--format {INT8} needs --data: a FER2013 folder whose training faces calibrate the "
                         "8-bit ranges")
    train = require_splits(load_dataset(data_dir), ("train",)).splits["train"].x
    calibration = calibration_faces(train)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / INT8_FILE
    target.write_bytes(quantize_int8(keras_to_onnx(model), calibration))
    faces, source = parity_set(data_dir=data_dir)
    got, want = runner(INT8, target)(faces), keras_probabilities(model, faces)
    agree = float((got.argmax(1) == want.argmax(1)).mean())
    if not agree >= INT8_AGREEMENT:
        raise ValueError(f"the 8-bit model gives Keras's label on only {agree:.1%} of {len(faces)} faces (less "
                         f"than {INT8_AGREEMENT:.0%}); it was written to {target} but should not be used: "
                         "export --format onnx")
    parity = {"faces": len(faces), "source": source, "labels_agree": agree,
              "max_abs_diff_vs_keras": float(np.abs(got - want).max())}
    section = _section(card, INT8, target.name, parity)
    section["quantization"] = {
        "recipe": "fer.quantize", "version": QUANT_VERSION, "calibration_faces": len(calibration),
        "weights": "int8 per channel" + (", 7-bit range" if REDUCE_RANGE else ""), "activations": "uint8",
        "float32": "first convolution, last matrix product, softmax"}
    return _write_card(card, out, section)


def _section(card, fmt: str, file: str, parity: dict) -> dict:
    return {
        "format": fmt, "file": file,
        "input": {"name": "face", "dtype": "float32", "shape": ["n", 48, 48, 1], "range": "gray 0..255"},
        "output": {"name": "probabilities", "dtype": "float32", "shape": ["n", len(card.labels)],
                   "labels": list(card.labels)},
        "parity": parity,
        "prior_correction": {"prior": list(card.prior), "tau": card.tau,
                             "formula": "p = probabilities / prior**tau, then p / p.sum() (skip when tau is 0)"},
    }


def _write_card(card, out: Path, section: dict) -> dict:
    doc = asdict(card)
    doc["export"] = section
    (out / "fer.json").write_text(json.dumps(doc, indent=2))
    return section


def add_command(sub) -> None:
    """Register ``export`` on an argparse sub-parser set."""
    p = sub.add_parser("export", help="write the emotion model for ONNX Runtime, LiteRT (tflite) or TF Serving")
    p.add_argument("--format", required=True, choices=(*FORMATS, INT8), dest="fmt",
                   help="onnx (fer.onnx), tflite (fer.tflite), savedmodel (saved_model/) or onnx-int8 "
                        "(fer.int8.onnx: 8-bit, a quarter of the size; needs --data for its calibration)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the model and its card into")
    p.add_argument("--model", help="model file (default: the shipped default model)")
    p.add_argument("--data", metavar="FER2013", help="check parity on 500 faces of this dataset (default: "
                                                     "synthetic faces); onnx-int8 calibrates on its training faces")
    p.set_defaults(handler=cmd_export)


def cmd_export(args) -> int:
    from fer.modelfile import load_model

    model, card = load_model(args.model)
    section = export_model(model, card, args.fmt, args.out, args.data)
    parity = section["parity"]
    agree = f", Keras's label on {parity['labels_agree']:.1%}" if "labels_agree" in parity else ""
    print(f"wrote {Path(args.out) / section['file']} and {Path(args.out) / 'fer.json'}: largest probability "
          f"difference from Keras {parity['max_abs_diff_vs_keras']:.2g}{agree} on "
          f"{parity['faces']} {parity['source']} faces")
    return 0
