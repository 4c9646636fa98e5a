"""Fast, thread-safe batched inference calls for a Keras model on any backend."""

from __future__ import annotations

import weakref
from typing import Callable

import numpy as np

_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def compiled_predictor(model) -> Callable[[np.ndarray], np.ndarray]:
    """Return ``f(x) -> probabilities`` that runs ``model`` in inference mode as a compiled graph.

    On TensorFlow this is one ``tf.function`` traced once for any batch size (much faster than
    ``model.predict`` for small batches, and safe to call from several threads); other backends
    use Keras' compiled ``predict_on_batch``.
    """
    if model not in _CACHE:
        _CACHE[model] = _make_predictor(model)
    return _CACHE[model]


def _make_predictor(model) -> Callable[[np.ndarray], np.ndarray]:
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    else:
        fn = model.predict_on_batch
    empty = np.zeros((0, *model.output_shape[1:]), np.float32)

    def predict(x: np.ndarray) -> np.ndarray:
        # an empty batch never reaches the graph: oneDNN's batch norm fails on it on some CPUs (AVX-512)
        x = np.asarray(x, dtype=np.float32)
        return empty.copy() if len(x) == 0 else np.asarray(fn(x), dtype=np.float32)

    return predict


def predict_proba(model, x: np.ndarray, batch_size: int = 256, predictor=None) -> np.ndarray:
    """Probabilities for uint8 faces ``x`` of shape (n, 48, 48) or (n, 48, 48, 1), in batches."""
    predictor = predictor or compiled_predictor(model)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3:
        x = x[..., None]
    outs = [predictor(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    return np.concatenate(outs) if outs else np.zeros((0, model.output_shape[-1]), np.float32)
