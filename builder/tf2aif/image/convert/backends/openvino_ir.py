"""`openvino`: `openvino.convert_model` on the SavedModel, saved as IR (model.xml + model.bin).

fp32 keeps fp32 weights; fp16 compresses weights to fp16; int8 is NNCF post-training
quantization over the calibration samples. `options["inference_precision_hint"]` pins the CPU
plugin's compute precision, which otherwise follows the CPU (bf16 wherever AVX512-BF16/AMX exist,
even for an fp32 model): f32 for fp32, for the layers int8 leaves in float, and for fp16 (whose
weights are fp16; see INFERENCE_PRECISION). `spec.options` may set another hint, and
`compute_precision` records what the plugin chose on the converting machine.

The int8 fallback candidate `float-io` (see fallback) leaves the first and the last
MatMul/Convolution out of NNCF's quantization (`ignored_scope`), so their inputs stay float.
`float-sensitive` also leaves out every depthwise (grouped) convolution: a handful of weights per
channel and activations whose ranges differ channel by channel quantize worst (on the zoo's
trained EfficientNetB0, NNCF's full int8 and float-io answered at chance, 10%; with the grouped
convolutions float, 91% against 89% for fp32).
The fp16 candidate `float-sensitive` compresses the weights itself and keeps in f32 every
constant an elementwise op consumes (scales, shifts, biases: folded normalisation, input
rescaling): rounding one of those is the same error on every element of a channel, which no dot
product averages out. OpenVINO's own `disable_fp16_compression`/`precise` rt_info marks were not
honoured by `save_model` here. (On the zoo's EfficientNetB0 it lowers the error on most samples
but not on near-tied softmax outputs; docs/conversion.md has the figures.)
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from tf2aif.image.convert.backends._common import require_precision
from tf2aif.image.convert.job import ConvertJob, ConvertResult
from tf2aif.image.openvino_ext import PACKAGES, as_openvino_inputs, extensions_used

__all__ = ["INFERENCE_PRECISION", "convert", "telemetry_declined"]

# fp16 computes in f32 over fp16-compressed weights: the CPU plugin runs an f16 hint as bf16
# wherever AVX512-BF16/AMX exist (MobileNetV2 top-1 agreement 0.78 here) and as f32 where
# neither exists, so "f16" would mean a different precision on each CPU. A user who wants bf16
# or f16 compute sets options.inference_precision_hint; `compute_precision` records what the
# plugin chose on the converting machine.
INFERENCE_PRECISION = {"fp32": "f32", "fp16": "f32", "int8": "f32"}


def convert(job: ConvertJob) -> ConvertResult:
    require_precision(job, "openvino", ("fp32", "fp16", "int8"))
    with telemetry_declined():
        import openvino as ov

        _load_tokenizers()
        model = ov.convert_model(str(job.saved_model))
        extensions = extensions_used(model)
        tools = ("openvino", *(PACKAGES[e] for e in extensions))
        float_layers: tuple[str, ...] = ()
        layers = None
        if job.spec.precision == "int8":
            model, float_layers, layers = _quantize(model, job)
            tools = (*tools, "nncf")
        compress = job.spec.precision == "fp16"
        weights = "f16" if compress else "f32"
        if compress and job.candidate == "float-sensitive":
            float_layers, layers = _compress_except_elementwise(model)
            compress = False  # done above; the f32 constants must stay f32
            weights = "f16, elementwise constants f32"
        ov.save_model(model, job.model_dir / "model.xml", compress_to_fp16=compress)
        hint = job.spec.options.get(
            "inference_precision_hint", INFERENCE_PRECISION[job.spec.precision]
        )
        compiled = ov.Core().compile_model(
            str(job.model_dir / "model.xml"), "CPU", {"INFERENCE_PRECISION_HINT": hint}
        )
        compute = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    return ConvertResult(
        model_file="model/model.xml",
        options={
            "device": "CPU",
            "weights": "model/model.bin",
            "weights_precision": weights,
            "inference_precision_hint": hint,
            "compute_precision": compute,  # f32, bf16 or f16
            **({"extensions": list(extensions)} if extensions else {}),
        },
        tools=tools,
        check_with="openvino",
        float_layers=float_layers,
        layers=layers,
    )


def _load_tokenizers() -> None:
    """The tokenizers extension converts string ops (TextVectorization, tf.strings); a model
    without them converts the same with or without it, so it is loaded whenever installed."""
    with contextlib.suppress(ImportError):
        import openvino_tokenizers  # noqa: F401


@contextlib.contextmanager
def telemetry_declined() -> Iterator[None]:
    """Decline OpenVINO's and NNCF's usage telemetry, which is on unless the user opted out.

    Both decline it when CI=true (NNCF decides when it is imported). A build should not send
    events about the models it converts, and sending them cost about 1 s per conversion here.
    """
    saved = os.environ.get("CI")
    os.environ["CI"] = "true"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["CI"]
        else:
            os.environ["CI"] = saved


ELEMENTWISE_TYPES = frozenset(
    {"Multiply", "Add", "Subtract", "Divide", "Power", "Sqrt", "SquaredDifference"}
)


def _compress_except_elementwise(model) -> tuple[tuple[str, ...], int]:
    """fp16 weights, but f32 constants where an elementwise op consumes them (in place).
    Returns (the ops whose constants stay f32, the ops with float constants)."""
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops

    kept: list[str] = []
    weighted = 0
    for node in model.get_ordered_ops():
        if node.get_type_name() != "Constant" or node.get_element_type() != ov.Type.f32:
            continue
        consumers = [target.get_node() for target in node.output(0).get_target_inputs()]
        weighted += 1
        elementwise = [c for c in consumers if c.get_type_name() in ELEMENTWISE_TYPES]
        if elementwise:
            kept += [c.get_friendly_name() for c in elementwise]
            continue
        half = ops.constant(node.get_data().astype(np.float16))
        node.output(0).replace(ops.convert(half, "f32").output(0))
    return tuple(dict.fromkeys(kept)), weighted


COMPUTE_TYPES = frozenset({"MatMul", "Convolution", "GroupConvolution", "ConvolutionBackpropData"})


def _quantize(model, job: ConvertJob) -> tuple[Any, tuple[str, ...], int | None]:
    """NNCF int8; returns (model, the compute ops kept float, compute ops) for a candidate."""
    import nncf

    nncf.set_log_level(logging.WARNING)
    samples = job.calibration()
    dataset = nncf.Dataset([as_openvino_inputs(inputs) for inputs in samples.inputs])
    # NNCF's full BiasCorrection, not its fast one: on the zoo's trained InceptionV3 the fast one
    # lost 2.7 points of accuracy in int8 and the full one none (95.0% = fp32), for 1.6x the time.
    # The full one cannot run a model with a string input (it converts every input to f32,
    # which the CPU plugin refuses for strings): those take the fast one.
    text = any(port.get_element_type().get_type_name() == "string" for port in model.inputs)
    settings = {"subset_size": len(samples), "fast_bias_correction": text}
    if job.candidate == "full":
        return nncf.quantize(model, dataset, **settings), (), None
    compute = [
        op.get_friendly_name()
        for op in model.get_ordered_ops()
        if op.get_type_name() in COMPUTE_TYPES
    ]
    kept = compute[:1] + compute[-1:]
    if job.candidate == "float-sensitive":
        kept += [
            op.get_friendly_name()
            for op in model.get_ordered_ops()
            if op.get_type_name() == "GroupConvolution"
        ]
    kept = tuple(dict.fromkeys(kept))
    ignored = nncf.IgnoredScope(names=list(kept), validate=False)
    quantized = nncf.quantize(model, dataset, ignored_scope=ignored, **settings)
    return quantized, kept, len(compute)
