"""Run a converted artifact in-process, one small function per runtime, for the fidelity gate.

A runner maps one batch of inputs `{name: array}` to outputs `{name: array}` under the artifact's
tensor names. This is not the server: no batching, threads or HTTP, just the runtime's own API.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tf2aif.errors import ConversionError
from tf2aif.image.artifact import ArtifactInfo

__all__ = ["RUNNERS", "Runner", "runner_for", "signature_runner", "tflite_interpreter"]

Runner = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]

THREADS = 2


def signature_runner(function: Callable[..., Any]) -> Runner:
    """A runner over a loaded TF signature function (the native reference)."""
    import tensorflow as tf

    def run(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = function(**{name: tf.constant(value) for name, value in inputs.items()})
        return {name: tensor.numpy() for name, tensor in outputs.items()}

    return run


def tf_runner(path: Path, info: ArtifactInfo) -> Runner:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    function = loaded.signatures[info.options.get("signature", "serving_default")]
    run = signature_runner(function)
    run.loaded = loaded  # type: ignore[attr-defined]  # keeps the variables alive
    return run


def tflite_interpreter(path: Path, *, flex: bool = False) -> Any:
    """LiteRT's interpreter; TensorFlow's deprecated copy where ai-edge-litert is missing, or
    where the model holds Select TF ops (`flex`): only that one applies the Flex delegate."""
    if flex:
        from tf2aif.image.flex import flex_interpreter_class, no_flex_reason

        interpreter_class = flex_interpreter_class()
        if interpreter_class is None:
            raise ConversionError(no_flex_reason())
        return interpreter_class(model_path=str(path), num_threads=THREADS)
    try:
        from ai_edge_litert.interpreter import Interpreter
    except (
        ImportError
    ):  # the module path: `from tensorflow.lite import` fails on 2.18's lazy module
        from tensorflow.lite.python.interpreter import Interpreter

    return Interpreter(model_path=str(path), num_threads=THREADS)


def tflite_runner(path: Path, info: ArtifactInfo) -> Runner:
    interpreter = tflite_interpreter(path, flex=bool(info.options.get("select_tf_ops")))
    runner = interpreter.get_signature_runner(info.options.get("signature", "serving_default"))
    quantization = info.options.get("io_quantization", {})
    in_q, out_q = quantization.get("inputs", {}), quantization.get("outputs", {})

    def run(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {name: _quantize(value, in_q.get(name)) for name, value in inputs.items()}
        outputs = runner(**feed)
        return {name: _dequantize(value, out_q.get(name)) for name, value in outputs.items()}

    run.interpreter = interpreter  # type: ignore[attr-defined]
    return run


def openvino_runner(path: Path, info: ArtifactInfo) -> Runner:
    import openvino as ov

    from tf2aif.image.openvino_ext import as_openvino_inputs, load_extensions

    load_extensions(info.options.get("extensions", ()))
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": THREADS}
    if info.options.get("inference_precision_hint"):
        config["INFERENCE_PRECISION_HINT"] = info.options["inference_precision_hint"]
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    request = compiled.create_infer_request()
    names = {port: port.get_any_name() for port in compiled.outputs}

    def run(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = request.infer(as_openvino_inputs(inputs))
        return {names[port]: np.array(results[port]) for port in compiled.outputs}

    return run


def onnxruntime_runner(path: Path, info: ArtifactInfo) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]

    def run(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, dict(inputs)), strict=True))

    return run


RUNNERS: dict[str, Callable[[Path, ArtifactInfo], Runner]] = {
    "tf": tf_runner,
    "tflite": tflite_runner,
    "openvino": openvino_runner,
    "onnxruntime": onnxruntime_runner,
}


def runner_for(runtime: str, artifact_dir: Path, info: ArtifactInfo) -> Runner:
    """The runner of `runtime` over the artifact, checked to speak the artifact's tensor names."""
    if runtime not in RUNNERS:
        raise ConversionError(f"no in-process runner for runtime {runtime!r}")
    run = RUNNERS[runtime](artifact_dir / info.model_file, info)

    def checked(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = run(inputs)
        expected = {spec.name for spec in info.outputs}
        if set(outputs) != expected:
            raise ConversionError(
                f"{runtime} artifact outputs {sorted(outputs)}, the signature has {sorted(expected)}"
            )
        return outputs

    checked.inner = run  # type: ignore[attr-defined]
    return checked


def _quantize(value: np.ndarray, params: Mapping[str, Any] | None) -> np.ndarray:
    if not params:
        return value
    info = np.iinfo(_INT_DTYPES[params["datatype"]])
    scaled = np.round(value / params["scale"]) + params["zero_point"]
    return np.clip(scaled, info.min, info.max).astype(_INT_DTYPES[params["datatype"]])


def _dequantize(value: np.ndarray, params: Mapping[str, Any] | None) -> np.ndarray:
    if not params:
        return value
    return ((value.astype(np.float32) - params["zero_point"]) * params["scale"]).astype(np.float32)


_INT_DTYPES = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16}
