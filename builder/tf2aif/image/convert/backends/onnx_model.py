"""`onnx` (served by onnxruntime): tf2onnx on the SavedModel -> model.onnx.

fp16 converts weights and compute to float16 but keeps float32 inputs/outputs; int8 is static QDQ
quantization (per-channel, int8 weights and activations) calibrated on the calibration samples,
with the nodes in front of the first MatMul/Conv kept in float unless `int8_float_front` is
false (the artifact records how many as `int8_float_nodes`).

Fallback candidates (see fallback): int8 `float-io` keeps the front float (whatever
`int8_float_front` says) and also the first and the last
MatMul/Gemm/Conv and everything after the last one float (`nodes_to_exclude`); `float-sensitive`
then also the compute nodes whose own int8 error is largest: the float-io model and the fp32
model run the calibration samples with every compute node's output exposed, and a node's own
error is how much its output's relative error exceeds the largest among the compute nodes
before it (the worst tenth, at least one). fp16 `float-sensitive` keeps the precision-sensitive
op types (SENSITIVE_FP16_OPS) in fp32 (`op_block_list`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tf2aif.errors import ConversionError
from tf2aif.image.convert.backends._common import require_precision
from tf2aif.image.convert.job import ConvertJob, ConvertResult
from tf2aif.image.convert.source import DEFAULT_SIGNATURE

__all__ = [
    "DEFAULT_OPSET",
    "SENSITIVE_FP16_OPS",
    "convert",
    "export_onnx",
    "float_ends",
    "float_front",
    "opset_of",
    "sample_reader",
    "sensitive_nodes",
]

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17  # tf2onnx 1.17 with TF 2.21 handles 17 and 18; 19+ fail


def convert(job: ConvertJob) -> ConvertResult:
    require_precision(job, "onnx", ("fp32", "fp16", "int8"))
    opset = opset_of(job)
    target = job.model_dir / "model.onnx"
    tools = ("tf2onnx", "onnx")
    options: dict[str, Any] = {"opset": opset}
    if job.spec.precision == "fp32":
        export_onnx(job.saved_model, target, opset=opset)
    else:
        fp32 = job.workdir / "fp32.onnx"
        if not fp32.is_file():  # exported once, for every fallback candidate
            export_onnx(job.saved_model, fp32, opset=opset)
        if job.spec.precision == "fp16":
            float_layers, layers = _to_float16(fp32, target, candidate=job.candidate)
        else:
            excluded, float_layers, layers = _quantize_static(fp32, target, job)
            options["int8_float_nodes"] = len(excluded)
        tools += ("onnxruntime",)
    return ConvertResult(
        model_file="model/model.onnx",
        options=options,
        tools=tools,
        check_with="onnxruntime",
        float_layers=float_layers if job.candidate != "full" else (),
        layers=layers if job.candidate != "full" else None,
    )


def opset_of(job: ConvertJob) -> int:
    return int(job.spec.options.get("opset", DEFAULT_OPSET))


def export_onnx(saved_model: Path, target: Path, *, opset: int) -> None:
    """tf2onnx in-process (the same loader its CLI's --saved-model uses), names kept.

    tf2onnx only logs the TensorFlow ops it has no handler for and writes the graph anyway, with
    the TF op left in it, which onnxruntime then rejects as an invalid graph. Here such ops fail
    the conversion, named, and nothing is written. `Erfc` (Keras 3's exact `gelu`) has no tf2onnx
    handler, so one is supplied: erfc(x) = 1 - erf(x).
    """
    import onnx
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
    graph_def = _inline_xla_functions(graph_def, inputs, outputs)
    with _unsupported_ops() as unsupported:
        model, _ = tf2onnx.convert.from_graph_def(
            graph_def,
            input_names=inputs,
            output_names=outputs,
            opset=opset,
            custom_op_handlers=EXTRA_HANDLERS,
            tensors_to_rename=rename,
        )
    if unsupported:
        ops = ", ".join(f"{op} (node {node})" for node, op in unsupported[:3])
        raise ConversionError(
            f"convert failed in tf2onnx on op {unsupported[0][1]}: tf2onnx {tf2onnx.__version__} "
            f"has no ONNX conversion for {ops} at opset {opset}; serve this model with another "
            "runtime, or replace the op in the model"
        )
    onnx.save(model, str(target))


# attributes that keep a function out of grappler's inliner: what `jit_compile=True` sets
XLA_ATTRS = ("_XlaMustCompile", "_noinline")


def _inline_xla_functions(graph_def: Any, inputs: list[str], outputs: list[str]) -> Any:
    """The graph with its XLA-compiled functions inlined (in place, then grappler).

    Keras 3 builds a grouped Conv2D (ConvNeXt's depthwise convolution) as a `jit_compile`
    function; tf2onnx cannot convert the call, but the body is ordinary TF ops (a Conv2D):
    jit_compile only asks XLA to compile it, so inlining keeps what it computes (the zoo's
    ConvNeXt: max abs diff 2.7e-7 against TensorFlow).
    """
    import tensorflow as tf
    from tf2onnx import tf_loader

    marked = [f for f in graph_def.library.function if any(a in f.attr for a in XLA_ATTRS)]
    if not marked:
        return graph_def
    for function in marked:
        for attr in XLA_ATTRS:
            function.attr.pop(attr, None)
    for node in graph_def.node:
        node.attr.pop("_XlaMustCompile", None)
    log.info("inlining %d XLA-compiled function(s) for tf2onnx", len(marked))
    with tf.Graph().as_default():  # grappler runs on a graph, not eagerly
        return tf_loader.tf_optimize(inputs, outputs, graph_def)


@contextlib.contextmanager
def _unsupported_ops() -> Iterator[list[tuple[str, str]]]:
    """Collect the (node, op) pairs tf2onnx logs as 'Tensorflow op [node: Op] is not supported'."""
    found: list[tuple[str, str]] = []

    class Collector(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.msg == "Tensorflow op [%s: %s] is not supported" and record.args:
                found.append((str(record.args[0]), str(record.args[1])))

    handler = Collector(level=logging.ERROR)
    logger = logging.getLogger("tf2onnx")
    logger.addHandler(handler)
    try:
        yield found
    finally:
        logger.removeHandler(handler)


def _erfc(ctx: Any, node: Any, name: str, args: Any) -> None:
    """Rewrite the TF node Erfc(x) in place as Sub(1, Erf(x)) (ONNX has Erf since opset 9)."""
    from tf2onnx import utils

    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
    erf = ctx.make_node("Erf", [node.input[0]], op_name_scope=node.name)
    one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, dtype=dtype))
    node.type = "Sub"
    ctx.replace_inputs(node, [one.output[0], erf.output[0]])


EXTRA_HANDLERS = {"Erfc": (_erfc, [])}


# fp16 rounding in these is amplified (exponentials, reciprocals, sums over many elements)
SENSITIVE_FP16_OPS = (
    "Sigmoid",
    "HardSigmoid",
    "Softmax",
    "LogSoftmax",
    "Exp",
    "Log",
    "Pow",
    "Sqrt",
    "Reciprocal",
    "Div",
    "Erf",
    "ReduceMean",
    "ReduceSum",
    "ReduceL2",
    "LayerNormalization",
    "BatchNormalization",
    "InstanceNormalization",
)


def _to_float16(source: Path, target: Path, *, candidate: str) -> tuple[tuple[str, ...], int]:
    """fp16 with fp32 inputs/outputs; float-sensitive keeps SENSITIVE_FP16_OPS in fp32.
    Returns (the nodes kept fp32, the node count)."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load(str(source))
    blocked = list(DEFAULT_OP_BLOCK_LIST)
    if candidate == "float-sensitive":
        blocked += SENSITIVE_FP16_OPS
    kept = tuple(node.name for node in model.graph.node if node.op_type in blocked)
    layers = len(model.graph.node)
    model = convert_float_to_float16(model, keep_io_types=True, op_block_list=blocked)
    onnx.save(model, str(target))
    return kept, layers


def _quantize_static(
    source: Path, target: Path, job: ConvertJob
) -> tuple[list[str], tuple[str, ...], int]:
    """QDQ int8; returns (every node excluded, the compute nodes kept float, compute nodes)."""
    import onnx

    prepared = job.workdir / "prepared.onnx"
    if not prepared.is_file():
        from onnxruntime.quantization.shape_inference import quant_pre_process

        # symbolic shape inference needs sympy, which the converter images do not ship
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    front = job.spec.options.get("int8_float_front", True) or job.candidate != "full"
    excluded = float_front(prepared) if front else []
    compute = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type in HEAVY_OPS]
    if job.candidate in ("float-io", "float-sensitive"):
        excluded += [n for n in float_ends(prepared) if n not in excluded]
    if job.candidate == "float-sensitive":
        _quantize(prepared, target, job, excluded)
        worst = sensitive_nodes(prepared, target, job.calibration().inputs, compute, excluded)
        excluded += [n for n in worst if n not in excluded]
    _quantize(prepared, target, job, excluded)
    return excluded, tuple(n for n in compute if n in excluded), len(compute)


def _quantize(prepared: Path, target: Path, job: ConvertJob, excluded: list[str]) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    quantize_static(
        str(prepared),
        str(target),
        sample_reader(job.calibration().inputs),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=excluded,
    )


def float_ends(path: Path) -> list[str]:
    """The first and last compute node, and every node after the last one (softmax, ...)."""
    import onnx

    nodes = list(onnx.load(str(path)).graph.node)
    compute = [i for i, node in enumerate(nodes) if node.op_type in HEAVY_OPS]
    if not compute:
        return []
    return [nodes[compute[0]].name] + [node.name for node in nodes[compute[-1] :]]


SENSITIVE_SHARE = 0.1  # of the compute nodes, kept float by float-sensitive (at least one)


def sensitive_nodes(
    reference: Path,
    quantized: Path,
    samples: tuple[dict[str, np.ndarray], ...],
    compute: list[str],
    excluded: list[str],
) -> list[str]:
    """The still-quantized compute nodes whose own int8 error is largest (see module docstring)."""
    import onnx

    model = onnx.load(str(reference))
    outputs = {n.name: n.output[0] for n in model.graph.node if n.name in compute}
    float_acts = _activations(reference, list(outputs.values()), samples)
    int8_acts = _activations(quantized, list(outputs.values()), samples)
    errors = []
    for name in compute:
        ref, got = float_acts[outputs[name]], int8_acts[outputs[name]]
        scale = float(np.abs(ref).max())
        errors.append(float(np.abs(got - ref).max()) / scale if scale > 0 else 0.0)
    own = [err - max(errors[:i], default=0.0) for i, err in enumerate(errors)]
    ranked = sorted(
        (i for i, name in enumerate(compute) if name not in excluded), key=lambda i: -own[i]
    )
    return [compute[i] for i in ranked[: max(1, round(SENSITIVE_SHARE * len(compute)))]]


def _activations(
    path: Path, tensors: list[str], samples: tuple[dict[str, np.ndarray], ...]
) -> dict[str, np.ndarray]:
    """The named tensors over every sample (stacked), from the model with them exposed."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    known = {output.name for output in model.graph.output}
    for name in tensors:
        if name not in known:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    runs = [dict(zip(names, session.run(None, dict(sample)), strict=True)) for sample in samples]
    return {name: np.stack([np.asarray(run[name], np.float64) for run in runs]) for name in tensors}


HEAVY_OPS = frozenset({"MatMul", "Gemm", "Conv", "ConvTranspose"})


def float_front(path: Path) -> list[str]:
    """Nodes between the graph inputs and the first MatMul/Gemm/Conv, kept in float by int8.

    Raw inputs often span ranges one int8 scale cannot hold (tabular features from 0.05 to
    4000): quantizing them before the model's own normalisation erases the small features. On
    the zoo's breast-cancer MLP this took int8 accuracy from 0.667 back to 0.956 (fp32: 0.974).
    """
    import onnx

    model = onnx.load(str(path))
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    excluded: list[str] = []
    frontier = [tensor.name for tensor in model.graph.input]
    while frontier:
        for node in consumers.get(frontier.pop(), []):
            if node.op_type in HEAVY_OPS or node.name in excluded:
                continue
            excluded.append(node.name)
            frontier.extend(node.output)
    return excluded


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
