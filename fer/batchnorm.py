"""BatchNormalization statistics: find the layers, recompute their moving mean and variance on images.

Used by training ("precise BN" before each validation of short epochs) and by weight averaging
(averaged weights no longer match the statistics any checkpoint carried).
"""

from __future__ import annotations

import numpy as np


def batchnorm_layers(model) -> list:
    """Every BatchNormalization layer of ``model``, nested sub-models included."""
    import keras

    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found.extend(batchnorm_layers(layer))
    return found


def recompute_batchnorm(model, x: np.ndarray, batch_size: int = 256) -> int:
    """Set every BatchNormalization's moving statistics to their mean over ``x``, as in training.

    ``x`` is uint8 faces (n, 48, 48) or (n, 48, 48, 1). The forward passes run in training mode,
    so the statistics see the same in-model augmentation and dropout as during training; each
    batch is weighted equally (a cumulative mean, not an exponential one). Returns the number of
    batches used.
    """
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    x = np.asarray(x)
    x = x[..., None] if x.ndim == 3 else x
    if len(x) < batch_size:
        raise ValueError(f"recomputing BatchNorm statistics needs at least {batch_size} images, got {len(x)}")
    saved = [layer.momentum for layer in layers]
    for layer in layers:
        layer.moving_mean.assign(np.zeros(layer.moving_mean.shape, "float32"))
        layer.moving_variance.assign(np.ones(layer.moving_variance.shape, "float32"))
    n_batches = len(x) // batch_size
    try:
        for k in range(n_batches):
            for layer in layers:
                layer.momentum = k / (k + 1)  # new = old * k/(k+1) + batch / (k+1): the running mean
            model(x[k * batch_size : (k + 1) * batch_size].astype(np.float32), training=True)
    finally:
        for layer, momentum in zip(layers, saved):
            layer.momentum = momentum
    return n_batches
