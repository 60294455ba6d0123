"""The built-in converter backends, one module each; heavy imports happen inside the functions."""

from __future__ import annotations

from tf2aif.image.convert.backends import (
    onnx_model,
    openvino_ir,
    saved_model,
    tensorrt,
    tflite,
    vitis_ai,
)

__all__ = ["BUILTIN"]

BUILTIN = {
    "tf": saved_model.convert,
    "tflite": tflite.convert,
    "openvino": openvino_ir.convert,
    "onnx": onnx_model.convert,
    "tensorrt": tensorrt.convert,
    "vitis-ai": vitis_ai.convert,
}
