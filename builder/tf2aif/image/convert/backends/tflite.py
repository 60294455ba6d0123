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

int8 fallback candidates (see fallback) keep some ops float with TFLite's QuantizationDebugger
(`denylisted_nodes`): `float-io` the ops up to the first compute op (FULLY_CONNECTED, CONV_2D,
...) and from the last one on; `float-sensitive` also every op whose own int8 error, as the
debugger measures it per layer, is above 0.7 quantization steps (RMSE / scale; uniform rounding
alone gives 0.29), at least the worst one. fp16 offers no candidate: TFLite stores fp16 weights
and has no way to keep some of them float.
"""

from __future__ import annotations

import csv
import io
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

__all__ = ["convert", "flex_ops", "float_layer_names"]

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
    float_layers: tuple[str, ...] = ()
    layers = None
    with warnings.catch_warnings():  # int8 calibration runs TF's own (deprecated) interpreter
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        if job.spec.precision == "int8" and job.candidate != "full":
            content, float_layers, layers = _int8_with_float_layers(converter, job)
            path.write_bytes(content)
        else:
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
        model_file="model/model.tflite",
        options=options,
        tools=("tensorflow",),
        check_with="tflite",
        float_layers=float_layers,
        layers=layers,
    )


COMPUTE_OPS = frozenset(
    {"FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "CONV_3D", "BATCH_MATMUL"}
)
SENSITIVE_STEPS = 0.7  # RMSE over the quantization scale, as TFLite's debugging guide ranks layers


def _int8_with_float_layers(converter: Any, job: ConvertJob) -> tuple[bytes, tuple[str, ...], int]:
    """Run the QuantizationDebugger once to rank layers, then build with some of them float."""
    import tensorflow as tf

    samples = job.calibration()
    names = [spec.name for spec in job.inputs]

    def debug_dataset() -> Iterator[list[Any]]:  # the debugger feeds inputs in signature order
        for sample in samples.inputs:
            yield [sample[name] for name in names]

    # denylisted ops need float kernels next to the int8 ones (and Flex stays where it was)
    flex = tf.lite.OpsSet.SELECT_TF_OPS in converter.target_spec.supported_ops
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
        tf.lite.OpsSet.TFLITE_BUILTINS,
        *([tf.lite.OpsSet.SELECT_TF_OPS] if flex else []),
    ]
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=debug_dataset
    )
    debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    rows = list(csv.DictReader(io.StringIO(dump.getvalue())))
    chosen = float_layer_names(rows, sensitive=job.candidate == "float-sensitive")
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(chosen))
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=debug_dataset, debug_options=options
    )
    # a fused op's tensor is named after every op in it ("dense/MatMul;dense/Relu"): the first
    shown = tuple(dict.fromkeys(name.split(";")[0] for name in chosen))
    return debugger.get_nondebug_quantized_model(), shown, len(rows)


def float_layer_names(rows: list[dict[str, str]], *, sensitive: bool) -> tuple[str, ...]:
    """Output tensor names of the ops to keep float, in model order (rows: the debugger's dump).

    float-io: every op up to the first compute op and from the last one on; with `sensitive`,
    also the ops whose own error is above SENSITIVE_STEPS (at least the worst one). One op at
    least stays int8 (the last compute op kept float goes first).
    """
    compute = [i for i, row in enumerate(rows) if row["op_name"] in COMPUTE_OPS]
    keep = set()
    if compute:
        keep |= set(range(compute[0] + 1)) | set(range(compute[-1], len(rows)))
    if sensitive:
        steps = [_steps(row) for row in rows]
        keep |= {i for i, value in enumerate(steps) if value > SENSITIVE_STEPS}
        free = [i for i in range(len(rows)) if i not in keep]
        if free:
            keep.add(max(free, key=lambda i: steps[i]))
    while len(keep) >= len(rows) > 1:  # some op stays int8, else this is the fp32 model
        keep.discard(max((i for i in keep if i in compute), default=max(keep)))
    return tuple(dict.fromkeys(rows[i]["tensor_name"] for i in sorted(keep)))


def _steps(row: dict[str, str]) -> float:
    scale = float(row.get("scale") or 0.0)
    mse = float(row.get("mean_squared_error") or 0.0)
    return (mse**0.5) / scale if scale > 0 else 0.0


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
