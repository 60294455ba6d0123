"""`onnx` (served by onnxruntime): tf2onnx on the SavedModel -> model.onnx.

fp16 converts weights and compute to float16 but keeps float32 inputs/outputs; int8 is static QDQ
quantization (per-channel, int8 weights and activations) calibrated on the calibration samples.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from tf2aif.image.convert.backends._common import require_precision
from tf2aif.image.convert.job import ConvertJob, ConvertResult
from tf2aif.image.convert.source import DEFAULT_SIGNATURE

__all__ = ["DEFAULT_OPSET", "convert", "export_onnx", "opset_of", "sample_reader"]

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17  # tf2onnx 1.17 with TF 2.21 handles 17 and 18; 19+ fail


def convert(job: ConvertJob) -> ConvertResult:
    require_precision(job, "onnx", ("fp32", "fp16", "int8"))
    opset = opset_of(job)
    target = job.model_dir / "model.onnx"
    tools = ("tf2onnx", "onnx")
    if job.spec.precision == "fp32":
        export_onnx(job.saved_model, target, opset=opset)
    else:
        fp32 = job.workdir / "fp32.onnx"
        export_onnx(job.saved_model, fp32, opset=opset)
        if job.spec.precision == "fp16":
            _to_float16(fp32, target)
        else:
            _quantize_static(fp32, target, job)
        tools += ("onnxruntime",)
    return ConvertResult(
        model_file="model/model.onnx",
        options={"opset": opset},
        tools=tools,
        check_with="onnxruntime",
    )


def opset_of(job: ConvertJob) -> int:
    return int(job.spec.options.get("opset", DEFAULT_OPSET))


def export_onnx(saved_model: Path, target: Path, *, opset: int) -> None:
    """tf2onnx in-process (the same loader its CLI's --saved-model uses), names kept."""
    import tensorflow as tf
    import tf2onnx
    from tf2onnx import tf_loader

    tf.get_logger().setLevel(logging.ERROR)  # tf2onnx's loader trips TF1 deprecation warnings
    graph_def, inputs, outputs, _, rename = tf_loader.from_saved_model(
        str(saved_model),
        None,
        None,
        tag="serve",
        signatures=[DEFAULT_SIGNATURE],
        return_initialized_tables=True,
        return_tensors_to_rename=True,
    )
    tf2onnx.convert.from_graph_def(
        graph_def,
        input_names=inputs,
        output_names=outputs,
        opset=opset,
        tensors_to_rename=rename,
        output_path=str(target),
    )


def _to_float16(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    onnx.save(model, str(target))


def _quantize_static(source: Path, target: Path, job: ConvertJob) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = job.workdir / "prepared.onnx"
    # symbolic shape inference needs sympy, which the converter images do not ship
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared),
        str(target),
        sample_reader(job.calibration().inputs),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
    )


def sample_reader(samples: tuple[dict[str, np.ndarray], ...]):
    """An onnxruntime CalibrationDataReader over the calibration samples."""
    from onnxruntime.quantization import CalibrationDataReader

    class SampleReader(CalibrationDataReader):
        def __init__(self) -> None:
            self._iter: Iterator[dict[str, np.ndarray]] = iter(samples)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._iter, None)

        def rewind(self) -> None:
            self._iter = iter(samples)

    return SampleReader()
