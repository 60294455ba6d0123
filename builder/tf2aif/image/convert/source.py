"""The source model: a SavedModel every converter accepts, its signature and its digest.

Every converter reads a SavedModel (OpenVINO and tf2onnx cannot read a Keras 3 `.keras` file or
model object), so a `.keras` file is exported first, and a non-default signature is re-saved as
`serving_default` so each converter picks the same function without its own option.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tf2aif.errors import ConversionError
from tf2aif.image.artifact import TensorSpec

__all__ = ["DEFAULT_SIGNATURE", "SourceModel", "load_source", "source_digest"]

log = logging.getLogger(__name__)

DEFAULT_SIGNATURE = "serving_default"

# tf.DType.name -> Open Inference Protocol datatype
OIP_DATATYPES = {
    "float32": "FP32",
    "float16": "FP16",
    "float64": "FP64",
    "bfloat16": "BF16",
    "int8": "INT8",
    "uint8": "UINT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "bool": "BOOL",
    "string": "BYTES",
}


@dataclass(frozen=True, kw_only=True)
class SourceModel:
    saved_model: Path  # SavedModel whose serving_default is the chosen signature
    keras_model: Path | None  # the user's .keras file, when that was the source
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    function: Callable[..., Any]  # the loaded signature: function(**inputs) -> {name: tensor}
    loaded: Any  # the loaded SavedModel; keeps the signature's variables alive
    digest: str


def load_source(model: Path, *, signature: str, workdir: Path) -> SourceModel:
    """Resolve `model` (SavedModel dir or .keras file) into a SavedModel with one known signature."""
    import tensorflow as tf

    if not model.exists():
        raise ConversionError(f"model not found: {model}")
    digest = source_digest(model)
    keras_model = model if model.is_file() else None
    if model.is_file():
        saved_model = _export_keras(model, workdir / "exported", signature)
        signature = DEFAULT_SIGNATURE
    elif (model / "saved_model.pb").is_file():
        saved_model = model
    else:
        raise ConversionError(
            f"{model}: not a SavedModel (no saved_model.pb) nor a .keras file; "
            "export the model with `model.export(dir)` or save it with `model.save('m.keras')`"
        )
    loaded = tf.saved_model.load(str(saved_model))
    if signature not in loaded.signatures:
        raise ConversionError(
            f"{model}: no signature {signature!r}; it has: {', '.join(sorted(loaded.signatures))}"
        )
    if signature != DEFAULT_SIGNATURE:
        saved_model = _resave(loaded, signature, workdir / "resaved")
    function = loaded.signatures[signature]
    inputs, outputs = _tensor_specs(function)
    return SourceModel(
        saved_model=saved_model,
        keras_model=keras_model,
        inputs=inputs,
        outputs=outputs,
        function=function,
        loaded=loaded,
        digest=digest,
    )


def source_digest(model: Path) -> str:
    """sha256 over every file of the model (relative path and bytes, sorted by path)."""
    files = [model] if model.is_file() else sorted(p for p in model.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for path in files:
        name = path.name if path == model else path.relative_to(model).as_posix()
        digest.update(name.encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return f"sha256:{digest.hexdigest()}"


def _export_keras(path: Path, target: Path, signature: str) -> Path:
    import keras

    if path.suffix != ".keras":
        raise ConversionError(f"{path}: expected a SavedModel folder or a .keras file")
    if signature != DEFAULT_SIGNATURE:
        raise ConversionError(
            f"{path}: a .keras file has no signature {signature!r}; "
            f"use {DEFAULT_SIGNATURE!r} or export a SavedModel with that signature"
        )
    log.info("exporting %s to a SavedModel", path)
    keras.models.load_model(path).export(str(target), verbose=False)
    return target


def _resave(loaded: Any, signature: str, target: Path) -> Path:
    import tensorflow as tf

    log.info("re-saving signature %r as %r", signature, DEFAULT_SIGNATURE)
    tf.saved_model.save(
        loaded, str(target), signatures={DEFAULT_SIGNATURE: loaded.signatures[signature]}
    )
    return target


def _tensor_specs(function: Any) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    _, input_specs = function.structured_input_signature
    output_specs = function.structured_outputs
    return (
        tuple(_tensor_spec(name, spec) for name, spec in sorted(input_specs.items())),
        tuple(_tensor_spec(name, spec) for name, spec in sorted(output_specs.items())),
    )


def _tensor_spec(name: str, spec: Any) -> TensorSpec:
    dtype = spec.dtype.name
    if dtype not in OIP_DATATYPES:
        raise ConversionError(f"tensor {name!r} has dtype {dtype}, which tf2aif cannot serve")
    if spec.shape.rank is None:
        raise ConversionError(f"tensor {name!r} has unknown rank; give the signature a shape")
    shape = tuple(-1 if d is None else int(d) for d in spec.shape.as_list())
    return TensorSpec(name=name, datatype=OIP_DATATYPES[dtype], shape=shape)
