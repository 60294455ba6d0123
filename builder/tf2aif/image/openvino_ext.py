"""OpenVINO extensions an IR needs, shared by the converter, its fidelity check and the server.

A model with string ops (Keras TextVectorization, tf.strings) converts to OpenVINO only with the
openvino-tokenizers extension, whose ops (StringTensorUnpack, RegexNormalization, VocabEncoder,
...) then appear in the IR: whatever reads that IR must load the extension first. The converter
records it in the artifact (`options.extensions`), and the server and the fidelity check load
what is listed there.

OpenVINO takes string tensors as numpy bytes (`S`) or str (`U`) arrays, never object arrays;
both pad with NUL, so a string ending in NUL would silently lose it and is refused instead.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

__all__ = [
    "TOKENIZERS",
    "as_openvino_input",
    "as_openvino_inputs",
    "extensions_used",
    "load_extensions",
    "refusal",
]

TOKENIZERS = "openvino_tokenizers"
# module -> the pip package a user installs (the serve-openvino and convert-tf bases carry both)
PACKAGES = {TOKENIZERS: "openvino-tokenizers"}
NUL_ENDING = "OpenVINO string tensors cannot end a string in a NUL byte (numpy drops it)"


def load_extensions(names: Iterable[str]) -> None:
    """Import each extension module: importing registers its ops with every new ov.Core."""
    for name in names:
        if name not in PACKAGES:
            raise RuntimeError(f"unknown OpenVINO extension {name!r} (known: {sorted(PACKAGES)})")
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise RuntimeError(
                f"the model needs the OpenVINO extension {name}: pip install "
                f"{PACKAGES[name]} (the version that matches openvino) ({exc})"
            ) from exc


def extensions_used(model: Any) -> tuple[str, ...]:
    """The extension modules an IR's ops come from (ops whose opset is `extension`)."""
    custom = any(op.get_type_info().version_id == "extension" for op in model.get_ordered_ops())
    return (TOKENIZERS,) if custom else ()


def as_openvino_input(value: np.ndarray) -> np.ndarray:
    """An object array of bytes/str (a BYTES tensor) as the bytes array OpenVINO takes."""
    if value.dtype != object:
        return value
    encoded = [_utf8(v) for v in value.reshape(-1)]
    if any(v.endswith(b"\0") for v in encoded):
        raise ValueError(NUL_ENDING)
    return np.array(encoded, dtype=np.bytes_).reshape(value.shape)


def refusal(inputs: Mapping[str, np.ndarray]) -> str | None:
    """Why OpenVINO cannot take these inputs intact (what `as_openvino_input` refuses), or None."""
    for name, value in inputs.items():
        try:
            as_openvino_input(value)
        except ValueError as exc:
            return f"input {name!r}: {exc}"
    return None


def as_openvino_inputs(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: as_openvino_input(value) for name, value in inputs.items()}


def _utf8(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise ValueError(f"a string tensor holds a {type(value).__name__}, not bytes or str")
