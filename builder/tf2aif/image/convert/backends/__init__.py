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

__all__ = ["BUILTIN", "FALLBACKS"]

BUILTIN = {
    "tf": saved_model.convert,
    "tflite": tflite.convert,
    "openvino": openvino_ir.convert,
    "onnx": onnx_model.convert,
    "tensorrt": tensorrt.convert,
    "vitis-ai": vitis_ai.convert,
}

# backend -> precision -> the fallback candidates it can build beyond "full" (see fallback.ORDER);
# tflite fp16 stores fp16 weights only and has no way to keep some of them float
FALLBACKS = {
    "tflite": {"int8": ("float-io", "float-sensitive")},
    "onnx": {"int8": ("float-io", "float-sensitive"), "fp16": ("float-sensitive",)},
    "openvino": {"int8": ("float-io", "float-sensitive"), "fp16": ("float-sensitive",)},
}
