"""Rebuild a .keras model with `unroll=True` in every recurrent layer, for TFLite builtins.

An unrolled LSTM/GRU is a straight line of matmuls (one copy per time step) instead of a While
loop over TensorLists, so the TFLite converter lowers it to builtin ops and the model runs on
plain LiteRT. Unrolling needs the number of time steps, so every recurrent layer must see a fixed
sequence length. The weights are copied over unchanged: the outputs are the same function.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tf2aif.errors import ConversionError
from tf2aif.image.convert.job import ConvertJob

__all__ = ["RECURRENT_LAYERS", "set_unroll", "unrolled_saved_model"]

OPTION = "options.tflite.unroll_recurrent"
# Keras layers whose config takes `unroll` (Bidirectional/TimeDistributed wrap one: found nested)
RECURRENT_LAYERS = frozenset({"LSTM", "GRU", "SimpleRNN", "RNN", "ConvLSTM1D", "ConvLSTM2D"})


def unrolled_saved_model(job: ConvertJob) -> Path:
    """A SavedModel of the job's .keras model with its recurrent layers unrolled."""
    if job.keras_model is None:
        raise ConversionError(
            f"{OPTION} rebuilds the model from its Keras config, which a SavedModel does not "
            "keep: point model.path at the .keras file, or set options.tflite.select_tf_ops: true",
            variant=job.variant,
        )
    import keras

    model = keras.models.load_model(job.keras_model)
    if not any(_unrolled_config(layer) for layer in model.layers):
        return job.saved_model  # nothing recurrent: the model converts as it is
    _require_fixed_length(model, job.variant)

    def clone(layer: Any) -> Any:
        config = _unrolled_config(layer)
        return layer.__class__.from_config(config or layer.get_config())

    try:
        rebuilt = keras.models.clone_model(model, clone_function=clone)
        rebuilt.set_weights(model.get_weights())
    except (ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConversionError(
            f"{OPTION}: the model could not be rebuilt unrolled: {first}", variant=job.variant
        ) from exc
    target = job.workdir / "unrolled"
    rebuilt.export(str(target), verbose=False)
    return target


def set_unroll(config: Any) -> bool:
    """Set `unroll: true` in every recurrent layer config inside `config`; whether any was found."""
    found = False
    for node in _dicts(config):
        inner = node.get("config")
        if node.get("class_name") in RECURRENT_LAYERS and isinstance(inner, dict):
            inner["unroll"] = True
            found = True
    return found


def _unrolled_config(layer: Any) -> dict | None:
    """The layer's config with `unroll: true` set in it or the layers it wraps; None if none."""
    config = layer.get_config()
    found = set_unroll({"class_name": type(layer).__name__, "config": config})
    return config if found else None


def _dicts(value: Any) -> Iterator[dict]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _dicts(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _dicts(item)


def _require_fixed_length(model: Any, variant: str) -> None:
    for layer in model.layers:
        if _unrolled_config(layer) is None:
            continue
        shape = _input_shape(layer)
        if shape is not None and (len(shape) < 3 or shape[1] is None):
            raise ConversionError(
                f"{OPTION}: layer {layer.name!r} reads sequences of shape {tuple(shape)}: "
                "unrolling needs a fixed sequence length; give the model's Input one "
                "(keras.Input(shape=(steps, features))), or set options.tflite.select_tf_ops: true",
                variant=variant,
            )


def _input_shape(layer: Any) -> tuple | None:
    try:
        return tuple(layer.input.shape)
    except (AttributeError, ValueError):  # a layer of a nested model: the converter will say
        return None
