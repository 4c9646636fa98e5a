"""The emotion model on ONNX Runtime: Keras' own ONNX exporter (tf2onnx), sessions, ensembles, a cache.

::

    data = keras_to_onnx(model)                  # bytes of an ONNX graph: (n, 48, 48, 1) 0..255 in, (n, 7) out
    clf = OnnxClassifier(data)                   # an ONNX Runtime session
    probs = clf(crops_uint8)                     # (n, 48, 48) uint8 -> (n, 7) float32, as model(x) gives
    ens = load_onnx_profile("photo")             # a whole profile, picklable; no Keras once converted

:func:`keras_to_onnx` runs ``keras.Model.export(path, format="onnx")`` (tf2onnx) on the model's
inference graph (``training=False``: dropout, noise and augmentation layers are identities), then
names the graph's input ``face`` (batch dimension ``n``, dynamic) and its output ``probabilities``.
The preprocessing (``Rescaling``) stays in the graph. A model with an operation ONNX has no
counterpart for gets an :class:`UnsupportedModel` that names the layer and the operation.
Parity with Keras: ``tests/test_export.py``.

A ``.keras`` file is converted once (:func:`onnx_for_file`): the shipped models' graphs are
committed beside them (``models/NAME.onnx``, with ``NAME.onnx.json`` recording the SHA-256 of the
``.keras`` they come from; ``python scripts/export_onnx_models.py`` writes them), any other model's
graph is cached by content in :func:`cache_dir`. So a process that only classifies (the app's
Analyze pages, a Ray actor, a server replica) starts without importing Keras or TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fer.labels import NUM_CLASSES

OPSET = 17
INPUT_NAME, OUTPUT_NAME, BATCH_DIM = "face", "probabilities", "n"


class UnsupportedModel(ValueError):
    """The model has a layer or shape that :func:`keras_to_onnx` does not convert (the message names it)."""


def keras_to_onnx(model, name: str = "fer") -> bytes:
    """An ONNX graph (bytes) computing ``model(x, training=False)`` for x (n, 48, 48, 1) float32 0..255,
    made by Keras' exporter; :class:`UnsupportedModel` names what does not convert."""
    shape = tuple(model.input_shape[1:]) if len(getattr(model, "inputs", None) or []) == 1 else ()
    if len(shape) != 3 or None in shape:
        raise UnsupportedModel(f"model input {getattr(model, 'input_shape', '?')} is not one image (h, w, channels); "
                               "only single-image models convert")
    with tempfile.TemporaryDirectory(prefix="fer-onnx-") as tmp:
        path = Path(tmp) / f"{name}.onnx"
        _export(model, shape, path)
        graph = _load_checked(path)
    return _renamed(graph, name).SerializeToString()


def _export(model, shape: tuple, path: Path) -> None:
    """``model.export(path, format="onnx")`` after one call on a batch (the exporter needs a called model)."""
    model(np.zeros((2, *shape), np.float32), training=False)
    quiet = [logging.getLogger(n) for n in ("tf2onnx", "absl")]
    levels = [log.level for log in quiet]
    for log in quiet:
        log.setLevel(logging.ERROR)
    try:
        model.export(str(path), format="onnx", verbose=False, opset_version=OPSET)
    except ImportError as exc:
        raise UnsupportedModel(f"Keras' ONNX exporter needs tf2onnx ({exc}); pip install -r requirements.txt") \
            from None
    except Exception as exc:  # noqa: BLE001 - tf2onnx raises many types for graphs it cannot take
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise UnsupportedModel(f"Keras' ONNX exporter could not convert the model: {first}; "
                               "export with --format tflite or --format savedmodel instead") from None
    finally:
        for log, level in zip(quiet, levels):
            log.setLevel(level)


def _load_checked(path: Path):
    """The exported graph, refused when tf2onnx left TensorFlow operations ONNX does not define."""
    import onnx

    graph = onnx.load(str(path))
    unknown = [node for node in graph.graph.node if not onnx.defs.has(node.op_type, node.domain or "")]
    if unknown:
        where = "; ".join(f"layer {_layer_of(n.name)!r} uses {n.op_type}" for n in unknown[:3])
        raise UnsupportedModel(f"{where}, which has no ONNX conversion; "
                               "export with --format tflite or --format savedmodel instead")
    if len(graph.graph.input) != 1 or len(graph.graph.output) != 1:
        raise UnsupportedModel(f"the exported graph has {len(graph.graph.input)} inputs and "
                               f"{len(graph.graph.output)} outputs; only one image in, one tensor out converts")
    return graph


def _layer_of(node_name: str) -> str:
    """The Keras layer a tf2onnx node comes from: ``functional_1/odd_norm_1/Erfc`` -> ``odd_norm``."""
    parts = node_name.split("/")
    layer = parts[1] if len(parts) > 2 else parts[0]
    stem, _, suffix = layer.rpartition("_")
    return stem if stem and suffix.isdigit() else layer


def _renamed(graph, name: str):
    """The graph with input ``face`` (batch ``n``) and output ``probabilities``, checked by ONNX."""
    from onnx import checker, helper

    g = graph.graph
    old_in, old_out = g.input[0].name, g.output[0].name
    for node in g.node:
        node.input[:] = [INPUT_NAME if i == old_in else i for i in node.input]
        node.output[:] = [OUTPUT_NAME if o == old_out else o for o in node.output]
    if old_in == old_out:  # an identity model: keep both names
        g.node.append(helper.make_node("Identity", [INPUT_NAME], [OUTPUT_NAME], name="output"))
    g.input[0].name, g.output[0].name, g.name = INPUT_NAME, OUTPUT_NAME, name
    for value in (g.input[0], g.output[0]):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_param = BATCH_DIM
    graph.producer_name = "fer (keras.Model.export, tf2onnx)"
    checker.check_model(graph)
    return graph


class OnnxClassifier:
    """An ONNX emotion model on ONNX Runtime: ``clf(crops)`` -> (n, 7) float32 probabilities.

    ``crops`` are uint8 (or float 0..255) faces (n, 48, 48) or (n, 48, 48, 1). The input buffer is
    reused between calls of the same batch size. Thread-safe (ONNX Runtime sessions are); the
    buffer is per thread.
    """

    def __init__(self, model: bytes | str, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self._local = threading.local()

    def _buffer(self, n: int, shape: tuple[int, ...]) -> np.ndarray:
        buf = getattr(self._local, "buf", None)
        if buf is None or buf.shape[0] != n:
            buf = np.empty((n, *shape[1:3], 1), np.float32)
            self._local.buf = buf
        return buf

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        x = np.asarray(crops)
        if x.ndim == 3:
            x = x[..., None]
        buf = self._buffer(len(x), x.shape)
        np.copyto(buf, x, casting="unsafe")
        return self.session.run(None, {self.input_name: buf})[0]


@dataclass
class OnnxEnsemble:
    """A :class:`fer.profiles.Ensemble` on ONNX Runtime: its members, TTA views and prior correction.

    ``probabilities(crops)`` gives what the Keras ensemble gives (within ~1e-6), in one ONNX Runtime
    call per member. It holds the members as ONNX graphs (``graphs``, bytes) and their cards, so it
    pickles small and needs no Keras or TensorFlow where it is unpickled (a Ray actor, a worker):
    the sessions (``threads`` each) are made on first use, in the process that uses them.
    Make one with :func:`load_onnx_profile` (cached conversion) or :meth:`from_ensemble`.
    """

    graphs: list[bytes]
    cards: list
    tta: str | None = None
    prior: np.ndarray | None = None
    tau: float = 0.0
    name: str = "custom"
    info: dict = field(default_factory=dict)
    threads: int = 1
    weights: list[float] | None = None

    def __post_init__(self) -> None:
        from fer.profiles import check_recipe

        self.prior, self.weights = check_recipe(len(self.graphs), self.cards, self.tta, self.prior, self.tau,
                                                self.weights)
        self._members: list[OnnxClassifier] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_ensemble(cls, ensemble, threads: int = 1) -> "OnnxEnsemble":
        """The Keras :class:`fer.profiles.Ensemble` ``ensemble``, converted."""
        return cls([keras_to_onnx(m) for m in ensemble.models], list(ensemble.cards), ensemble.tta, ensemble.prior,
                   ensemble.tau, ensemble.name, dict(ensemble.info), threads, list(ensemble.weights))

    @property
    def passes(self) -> int:
        """Model passes per face: members x TTA views."""
        from fer.profiles import passes

        return passes(len(self.graphs), self.tta)

    @property
    def members(self) -> list[OnnxClassifier]:
        """One ONNX Runtime session per member, made on first use."""
        with self._lock:
            if self._members is None:
                self._members = [OnnxClassifier(g, threads=self.threads) for g in self.graphs]
            return self._members

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_members", "_lock")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._members, self._lock = None, threading.Lock()

    def probabilities(self, crops: np.ndarray, corrected: bool = True) -> np.ndarray:
        """Probabilities (n, 7) for uint8 faces (n, 48, 48); the prior correction unless ``corrected=False``."""
        from fer.prior import adjust
        from fer.profiles import mix

        x = np.asarray(crops)
        if len(x) == 0:
            return np.zeros((0, NUM_CLASSES), np.float32)
        probs = mix(x, self.tta, self.weights, self.members)
        return adjust(probs, self.prior, self.tau) if corrected else probs


# ---------------------------------------------------------------- loading without Keras

CONVERTER_VERSION = 2
"""Part of the conversion cache's key and of the committed graphs' sidecars: bump it when
:func:`keras_to_onnx`'s output changes (2: Keras' exporter; 1 was a hand-written converter)."""
CACHE_ENV = "FER_CACHE_DIR"
SIDECAR_SUFFIX = ".onnx.json"


def cache_dir() -> Path:
    """Where converted models are kept: ``$FER_CACHE_DIR``, else ``$XDG_CACHE_HOME/fer`` or ``~/.cache/fer``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fer"


def file_digest(path: str | Path) -> str:
    """The SHA-256 (hex) of a file's bytes: what a converted graph is keyed on."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def committed_paths(path: str | Path) -> tuple[Path, Path]:
    """Where the committed graph of the ``.keras`` file ``path`` lives, and its sidecar:
    ``models/fer_default.keras`` -> ``models/fer_default.onnx``, ``models/fer_default.onnx.json``."""
    path = Path(path)
    return path.with_suffix(".onnx"), path.with_name(path.stem + SIDECAR_SUFFIX)


def sidecar(source: str | Path, graph: bytes) -> dict:
    """What a committed graph records: its source file and that file's SHA-256, the converter, the opset."""
    source = Path(source)
    return {"source": source.name, "source_sha256": file_digest(source), "converter_version": CONVERTER_VERSION,
            "opset": OPSET, "onnx_sha256": hashlib.sha256(graph).hexdigest(),
            "made_by": "python scripts/export_onnx_models.py (keras.Model.export, format='onnx')"}


def read_recorded(path: Path, sidecar: Path, want: Callable[[], dict], hash_key: str) -> bytes | None:
    """The bytes of ``path`` when its JSON ``sidecar`` records every value of ``want()`` (called only once both
    files are read) and, under ``hash_key``, the SHA-256 of those bytes; else None (absent, unreadable, stale)."""
    try:
        meta = json.loads(sidecar.read_text())
        data = path.read_bytes()
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    expected = {**want(), hash_key: hashlib.sha256(data).hexdigest()}
    return data if all(meta.get(k) == v for k, v in expected.items()) else None


def committed_graph(path: str | Path, digest: str | None = None) -> bytes | None:
    """The committed graph beside the ``.keras`` file ``path`` when its sidecar records this file's content
    (SHA-256), this converter version and opset, and the graph's own hash; else None (stale or absent)."""
    onnx_path, meta_path = committed_paths(path)
    return read_recorded(onnx_path, meta_path, lambda: {
        "source_sha256": digest or file_digest(path), "converter_version": CONVERTER_VERSION, "opset": OPSET},
        "onnx_sha256")


def write_committed(path: str | Path) -> Path:
    """Convert the ``.keras`` file ``path`` and write its graph and sidecar beside it (what
    ``scripts/export_onnx_models.py`` does for the shipped models); the graph's path."""
    from fer.modelfile import load_model

    graph = keras_to_onnx(load_model(path)[0])
    onnx_path, meta_path = committed_paths(path)
    onnx_path.write_bytes(graph)
    meta_path.write_text(json.dumps(sidecar(path, graph), indent=2) + "\n")
    return onnx_path


def onnx_for_file(path: str | Path) -> bytes:
    """The ONNX graph of the ``.keras`` model at ``path``, neither converted nor importing Keras when
    it was done before: the committed graph beside it (:func:`committed_graph`) when it matches the
    file's SHA-256, else the one kept in :func:`cache_dir` under that SHA-256, else converted now and
    kept there. A cache that cannot be written (a read-only home) only costs the conversion each time."""
    from fer.modelfile import check_archive, load_model

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model file {path} does not exist")
    check_archive(path)
    digest = file_digest(path)
    graph = committed_graph(path, digest)
    if graph is not None:
        return graph
    cached = cache_dir() / "onnx" / f"{digest}-v{CONVERTER_VERSION}-opset{OPSET}.onnx"
    if cached.is_file():
        return cached.read_bytes()
    data = keras_to_onnx(load_model(path)[0])
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, cached)
    except OSError:
        pass  # no writable cache: convert again next time
    return data


def load_onnx_profile(name: str = "photo", model: Any = None, manifest: str | Path | None = None,
                      threads: int = 1) -> OnnxEnsemble:
    """:func:`fer.profiles.load_profile` on ONNX Runtime: the shipped profile ``name`` (``model=None``) or
    ``model`` under its recipe, as an :class:`OnnxEnsemble`. Model files go through :func:`onnx_for_file`,
    so with a warm cache this reads only files (no Keras import); an in-memory Keras model is converted."""
    from fer.modelfile import read_card
    from fer.profiles import RECIPE_TTA, as_model_and_card, card_prior, check_profile, member_files, profile_info

    check_profile(name)
    if model is None:
        files, spec = member_files(name, manifest)
        cards = [read_card(f) for f in files]
        graphs = [onnx_for_file(f) for f in files]
        return OnnxEnsemble(graphs, cards, spec.get("tta"), card_prior(cards), float(spec.get("tau", 0.0)), name,
                            profile_info(spec), threads, spec.get("weights"))
    if isinstance(model, (str, Path)):
        graph = onnx_for_file(model)  # first: it says when the file is missing
        card = read_card(model)
    else:
        keras_model, card = as_model_and_card(model)
        graph = keras_to_onnx(keras_model)
    return OnnxEnsemble([graph], [card], RECIPE_TTA[name], card_prior([card]), float(getattr(card, "tau", 0.0)),
                        name, threads=threads)
