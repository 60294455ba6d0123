"""`tflite`: TFLiteConverter from the SavedModel; fp32, fp16 weights, or full-integer int8.

int8 uses the calibration samples as representative dataset and int8 kernels only. Its inputs and
outputs stay float unless `options["int8_io"]` is true; then the model takes and returns int8
and `io_quantization` records the scale/zero point the server quantizes and dequantizes with.

Recurrent layers (a While loop over TensorLists with a dynamic element shape) have no builtin
lowering; two options make them convert:
- `select_tf_ops`: keep the ops TFLite has no kernel for as TensorFlow ops (Flex) and the tensor
  lists unlowered; the model then runs only where the Flex delegate is (tf2aif.image.flex), which
  calibration and the fidelity check need too, so the conversion refuses to run without it;
- `unroll_recurrent` (a .keras source): rebuild the model with `unroll=True` in every recurrent
  layer (a fixed sequence length is required), which leaves builtin ops only.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tf2aif.errors import ConversionError
from tf2aif.image.convert.backends._common import require_precision
from tf2aif.image.convert.job import ConvertJob, ConvertResult
from tf2aif.image.convert.runners import tflite_interpreter
from tf2aif.image.convert.source import DEFAULT_SIGNATURE
from tf2aif.image.convert.unroll import unrolled_saved_model
from tf2aif.image.flex import flex_available, no_flex_reason

__all__ = ["convert", "flex_ops"]

OIP_INT_TYPES = {"int8": "INT8", "uint8": "UINT8", "int16": "INT16"}


def convert(job: ConvertJob) -> ConvertResult:
    import tensorflow as tf

    require_precision(job, "tflite", ("fp32", "fp16", "int8"))
    select_tf_ops = bool(job.spec.options.get("select_tf_ops", False))
    unroll = bool(job.spec.options.get("unroll_recurrent", False))
    if select_tf_ops and not flex_available():
        raise ConversionError(
            f"options.tflite.select_tf_ops: {no_flex_reason()}", variant=job.variant
        )
    saved_model = job.saved_model
    if unroll:
        saved_model = unrolled_saved_model(job)
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model), signature_keys=[DEFAULT_SIGNATURE]
    )
    builtins = tf.lite.OpsSet.TFLITE_BUILTINS
    int8_io = job.spec.precision == "int8" and bool(job.spec.options.get("int8_io", False))
    if job.spec.precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif job.spec.precision == "int8":
        samples = job.calibration()

        def representative() -> Iterator[dict[str, Any]]:
            yield from samples.inputs

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        builtins = tf.lite.OpsSet.TFLITE_BUILTINS_INT8
        converter.target_spec.supported_ops = [builtins]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    if select_tf_ops:
        converter.target_spec.supported_ops = [builtins, tf.lite.OpsSet.SELECT_TF_OPS]
        converter._experimental_lower_tensor_list_ops = False  # noqa: SLF001 - the documented switch
    path = job.model_dir / "model.tflite"
    with warnings.catch_warnings():  # int8 calibration runs TF's own (deprecated) interpreter
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        path.write_bytes(converter.convert())
    options: dict[str, Any] = {"signature": DEFAULT_SIGNATURE, "int8_io": int8_io}
    if select_tf_ops:
        options["select_tf_ops"] = True
        options["flex_ops"] = flex_ops(path.read_bytes())
    if unroll:
        options["unroll_recurrent"] = True
    if int8_io:
        options["io_quantization"] = io_quantization(path)
    return ConvertResult(
        model_file="model/model.tflite", options=options, tools=("tensorflow",), check_with="tflite"
    )


def io_quantization(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Scale and zero point of every integer input/output, by signature name."""
    runner = tflite_interpreter(path).get_signature_runner(DEFAULT_SIGNATURE)
    return {
        "inputs": _integer_tensors(runner.get_input_details()),
        "outputs": _integer_tensors(runner.get_output_details()),
    }


def _integer_tensors(details: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    params = {}
    for name, detail in sorted(details.items()):
        dtype = detail["dtype"].__name__
        if dtype in OIP_INT_TYPES:
            scale, zero_point = detail["quantization"]
            params[name] = {
                "datatype": OIP_INT_TYPES[dtype],
                "scale": float(scale),
                "zero_point": int(zero_point),
            }
    return params


def flex_ops(model: bytes) -> list[str]:
    """The TensorFlow ops a .tflite model runs through Flex (its `Flex*` custom op codes)."""
    from tensorflow.lite.python import schema_py_generated as schema

    root = schema.Model.GetRootAsModel(model, 0)
    codes = (root.OperatorCodes(i).CustomCode() for i in range(root.OperatorCodesLength()))
    return sorted({c.decode()[4:] for c in codes if c and c.startswith(b"Flex")})
