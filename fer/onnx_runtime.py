"""The emotion model on ONNX Runtime: a Keras model converted to ONNX here, with no extra package.

::

    data = keras_to_onnx(model)                  # bytes of an ONNX graph: (n, 48, 48, 1) 0..255 in, (n, 7) out
    clf = OnnxClassifier(data)                   # an ONNX Runtime session
    probs = clf(crops_uint8)                     # (n, 48, 48) uint8 -> (n, 7) float32, as model(x) gives
    ens = load_onnx_profile("photo")             # a whole profile, picklable; no Keras once converted

Converted model files are cached by content (:func:`onnx_for_file`), so a process that only
classifies (a Ray actor, a server replica) starts without importing Keras or TensorFlow.

The converter covers the layers this project's architectures use (Conv2D, BatchNormalization,
Activation/ReLU/Softmax, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, Flatten, Dense,
Add, Rescaling; dropout, noise, :class:`fer.model.FaceAugment` and :class:`fer.camera_augment.CameraAugment`
are identities at inference), in any graph of them. The preprocessing (``Rescaling``) stays in the graph.
A model with another layer gets a ``ValueError`` that names it. Parity with Keras: ``tests/test_export.py``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fer.labels import NUM_CLASSES

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "face", "probabilities"
IDENTITY_LAYERS = {"InputLayer", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise",
                   "GaussianDropout", "AlphaDropout", "FaceAugment", "CameraAugment", "RandomFlip", "RandomRotation",
                   "RandomZoom", "RandomTranslation", "RandomContrast", "RandomBrightness", "Identity"}
"""Layers that pass their input through unchanged at inference."""


class _Graph:
    """ONNX nodes and weights being built; tensors in NCHW between the input and the first flat layer."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.weights: list = []
        self.count = 0

    def name(self, base: str) -> str:
        self.count += 1
        return f"{base}_{self.count}"

    def const(self, base: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(base)
        self.weights.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], base: str, **attrs: Any) -> str:
        from onnx import helper

        out = self.name(base)
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def _activation(g: _Graph, x: str, fn: Any, base: str, rank: int) -> str:
    name = fn if isinstance(fn, str) else getattr(fn, "__name__", str(fn))
    if name in ("linear", "identity", None):
        return x
    if name == "relu":
        return g.op("Relu", [x], base)
    if name == "sigmoid":
        return g.op("Sigmoid", [x], base)
    if name in ("swish", "silu"):
        return g.op("Mul", [x, g.op("Sigmoid", [x], base)], base)
    if name == "tanh":
        return g.op("Tanh", [x], base)
    if name == "softmax":
        return g.op("Softmax", [x], base, axis=1 if rank == 4 else -1)
    raise ValueError(f"activation {name!r} (in {base}) has no ONNX conversion here; "
                     "use relu, sigmoid, swish, tanh or softmax, or export with --format tflite/savedmodel")


def _padding(layer) -> str:
    return "SAME_UPPER" if layer.padding == "same" else "VALID"


def _conv(g: _Graph, layer, x: str) -> str:
    if layer.data_format != "channels_last" or tuple(layer.dilation_rate) != (1, 1) or layer.groups != 1:
        raise ValueError(f"Conv2D {layer.name}: only channels_last, undilated, ungrouped convolutions convert")
    kernel = np.transpose(layer.kernel.numpy(), (3, 2, 0, 1))
    inputs = [x, g.const(f"{layer.name}_w", kernel.astype(np.float32))]
    if layer.use_bias:
        inputs.append(g.const(f"{layer.name}_b", layer.bias.numpy().astype(np.float32)))
    y = g.op("Conv", inputs, layer.name, kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
             auto_pad=_padding(layer))
    return _activation(g, y, layer.activation, layer.name, 4)


def _batchnorm(g: _Graph, layer, x: str, rank: int) -> str:
    if layer.axis not in (-1, rank - 1, [-1], [rank - 1]):
        raise ValueError(f"BatchNormalization {layer.name} normalises axis {layer.axis}; only the last converts")
    n = layer.moving_mean.shape[0]
    gamma = layer.gamma.numpy() if layer.scale else np.ones(n, np.float32)
    beta = layer.beta.numpy() if layer.center else np.zeros(n, np.float32)
    scale = gamma / np.sqrt(layer.moving_variance.numpy() + layer.epsilon)
    shift = beta - layer.moving_mean.numpy() * scale
    shape = (1, n, 1, 1) if rank == 4 else (1, n)
    y = g.op("Mul", [x, g.const(f"{layer.name}_s", scale.reshape(shape).astype(np.float32))], layer.name)
    return g.op("Add", [y, g.const(f"{layer.name}_t", shift.reshape(shape).astype(np.float32))], layer.name)


def _pool(g: _Graph, layer, x: str, op_type: str) -> str:
    attrs = {"kernel_shape": list(layer.pool_size), "strides": list(layer.strides), "auto_pad": _padding(layer)}
    if op_type == "AveragePool":
        attrs["count_include_pad"] = 0
    return g.op(op_type, [x], layer.name, **attrs)


def _dense(g: _Graph, layer, x: str) -> str:
    inputs = [x, g.const(f"{layer.name}_w", layer.kernel.numpy().astype(np.float32))]
    inputs.append(g.const(f"{layer.name}_b", (layer.bias.numpy() if layer.use_bias
                                                else np.zeros(layer.units)).astype(np.float32)))
    return _activation(g, g.op("Gemm", inputs, layer.name), layer.activation, layer.name, 2)


def _rescale(g: _Graph, layer, x: str, rank: int) -> str:
    scale = np.asarray(layer.scale, np.float32)
    offset = np.asarray(layer.offset, np.float32)
    if scale.size != 1 or offset.size != 1:
        raise ValueError(f"Rescaling {layer.name}: only one scale and one offset convert")
    y = g.op("Mul", [x, g.const(f"{layer.name}_s", scale.reshape(()))], layer.name)
    return g.op("Add", [y, g.const(f"{layer.name}_o", offset.reshape(()))], layer.name)


def _convert_layer(g: _Graph, layer, xs: list[str], rank: int) -> tuple[str, int]:
    """ONNX nodes of one layer: its output tensor and that tensor's rank."""
    kind = type(layer).__name__
    x = xs[0]
    if kind in IDENTITY_LAYERS:
        return x, rank
    if kind == "Conv2D":
        return _conv(g, layer, x), 4
    if kind == "BatchNormalization":
        return _batchnorm(g, layer, x, rank), rank
    if kind == "Activation":
        return _activation(g, x, layer.activation, layer.name, rank), rank
    if kind == "ReLU" and not layer.negative_slope and layer.max_value is None and not layer.threshold:
        return g.op("Relu", [x], layer.name), rank
    if kind == "Softmax":
        return _activation(g, x, "softmax", layer.name, rank), rank
    if kind == "MaxPooling2D":
        return _pool(g, layer, x, "MaxPool"), 4
    if kind == "AveragePooling2D":
        return _pool(g, layer, x, "AveragePool"), 4
    if kind == "GlobalAveragePooling2D" and not layer.keepdims:
        return g.op("Flatten", [g.op("GlobalAveragePool", [x], layer.name)], layer.name), 2
    if kind == "Flatten":
        nhwc = g.op("Transpose", [x], layer.name, perm=[0, 2, 3, 1]) if rank == 4 else x
        return g.op("Flatten", [nhwc], layer.name), 2
    if kind == "Dense" and rank == 2:
        return _dense(g, layer, x), 2
    if kind == "Add":
        y = xs[0]
        for other in xs[1:]:
            y = g.op("Add", [y, other], layer.name)
        return y, rank
    if kind == "Rescaling":
        return _rescale(g, layer, x, rank), rank
    raise ValueError(f"layer {layer.name!r} ({kind}) has no ONNX conversion here; "
                     "export with --format tflite or --format savedmodel instead")


def _inputs_of(layer) -> list:
    nodes = layer._inbound_nodes  # Keras keeps a layer's call graph here (functional and Sequential models)
    if len(nodes) != 1:
        raise ValueError(f"layer {layer.name!r} is called {len(nodes)} times; shared layers do not convert")
    return list(nodes[0].input_tensors)


class UnsupportedModel(ValueError):
    """The model has a layer or shape that :func:`keras_to_onnx` does not convert (the message names it)."""


def keras_to_onnx(model, name: str = "fer") -> bytes:
    """An ONNX graph (bytes) computing ``model(x, training=False)`` for x (n, 48, 48, 1) float32 0..255;
    :class:`UnsupportedModel` names what does not convert."""
    try:
        return _convert(model, name)
    except UnsupportedModel:
        raise
    except ValueError as exc:
        raise UnsupportedModel(str(exc)) from None


def _convert(model, name: str) -> bytes:
    from onnx import TensorProto, checker, helper

    g = _Graph()
    shape = tuple(model.input_shape[1:])
    if len(shape) != 3:
        raise ValueError(f"model input {shape} is not an image (h, w, channels)")
    nchw = g.op("Transpose", [INPUT_NAME], "to_nchw", perm=[0, 3, 1, 2])
    tensors: dict[int, tuple[str, int]] = {id(model.inputs[0]): (nchw, 4)}
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        srcs = [tensors.get(id(t)) for t in _inputs_of(layer)]
        if any(s is None for s in srcs):
            raise ValueError(f"layer {layer.name!r} reads a tensor from outside the model's graph")
        out, rank = _convert_layer(g, layer, [s[0] for s in srcs], srcs[0][1])
        tensors[id(layer.output)] = (out, rank)
    last, rank = tensors[id(model.outputs[0])]
    if rank != 2:
        raise ValueError("the model's output is not a flat (n, classes) tensor")
    g.nodes.append(helper.make_node("Identity", [last], [OUTPUT_NAME], name="output"))
    n_out = int(model.output_shape[-1])
    graph = helper.make_graph(
        g.nodes, name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["n", *shape])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["n", n_out])], g.weights)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="fer")
    onnx_model.ir_version = 8
    checker.check_model(onnx_model)
    return onnx_model.SerializeToString()


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

CONVERTER_VERSION = 1
"""Part of the conversion cache's key: bump it when :func:`keras_to_onnx`'s output changes."""
CACHE_ENV = "FER_CACHE_DIR"


def cache_dir() -> Path:
    """Where converted models are kept: ``$FER_CACHE_DIR``, else ``$XDG_CACHE_HOME/fer`` or ``~/.cache/fer``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fer"


def onnx_for_file(path: str | Path) -> bytes:
    """The ONNX graph of the ``.keras`` model at ``path``, converted once and kept in :func:`cache_dir`
    under the file's SHA-256: a second call (any process) neither converts nor imports Keras.
    A cache that cannot be written (a read-only home) only costs the conversion each time."""
    from fer.modelfile import check_archive, load_model

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model file {path} does not exist")
    check_archive(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
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
