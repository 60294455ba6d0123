"""`tensorrt` (gpu, agx): an fp32 ONNX graph plus, for int8, a TensorRT calibration cache.

The engine itself depends on the GPU and TensorRT version, so the server builds it on the device
at first start (fp16/int8 builder flags from `options["precision"]`). For int8 this backend runs
entropy calibration (KL divergence, as TensorRT's EntropyCalibration2) over the calibration
samples with onnxruntime, and writes the per-tensor scales in TensorRT's cache text format:

    TRT-<version>-EntropyCalibration2
    <tensor name>: <big-endian float32 scale, 8 hex digits>

scale = max(|min|, |max|) / 127 of the calibrated range, for the graph inputs and every node
output, named as TensorRT's ONNX parser names them (the ONNX tensor names).
"""

from __future__ import annotations

import contextlib
import io
import struct
from collections.abc import Mapping
from pathlib import Path

from tf2aif.image.convert.backends._common import require_precision
from tf2aif.image.convert.backends.onnx_model import export_onnx, opset_of, sample_reader
from tf2aif.image.convert.job import ConvertJob, ConvertResult

__all__ = ["DEFAULT_TENSORRT_VERSION", "cache_header", "calibration_cache_text", "convert"]

DEFAULT_TENSORRT_VERSION = "8.6.1"
CACHE_FILE = "calibration.cache"
CHUNK = 16  # calibration samples per collection pass


def convert(job: ConvertJob) -> ConvertResult:
    require_precision(job, "tensorrt", ("fp32", "fp16", "int8"))
    opset = opset_of(job)
    onnx_path = job.model_dir / "model.onnx"
    export_onnx(job.saved_model, onnx_path, opset=opset)
    version = str(job.spec.options.get("tensorrt_version", DEFAULT_TENSORRT_VERSION))
    options = {"opset": opset, "precision": job.spec.precision, "tensorrt_version": version}
    tools: tuple[str, ...] = ("tf2onnx", "onnx")
    if job.spec.precision == "int8":
        ranges = entropy_ranges(onnx_path, job)
        text = calibration_cache_text(ranges, version=version)
        (job.model_dir / CACHE_FILE).write_text(text)
        options["calibration_cache"] = f"model/{CACHE_FILE}"
        tools += ("onnxruntime",)
    return ConvertResult(
        model_file="model/model.onnx",
        options=options,
        tools=tools,
        check_with="onnxruntime",
        check_note=(
            "the fp32 ONNX graph checked with onnxruntime on CPU; the TensorRT engine "
            f"({job.spec.precision}) is built and run on the device"
        ),
    )


def entropy_ranges(onnx_path: Path, job: ConvertJob) -> dict[str, tuple[float, float]]:
    """Calibrated (min, max) of the graph inputs and every node output."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator

    calibrator = create_calibrator(
        str(onnx_path),
        None,
        augmented_model_path=str(job.workdir / "augmented.onnx"),
        calibrate_method=CalibrationMethod.Entropy,
    )
    samples = job.calibration().inputs
    with contextlib.redirect_stdout(io.StringIO()):  # the calibrator prints progress
        # in chunks: the calibrator keeps every tensor of every sample until it folds them
        # into its histograms, which for an image model is gigabytes for 100 samples
        for start in range(0, len(samples), CHUNK):
            calibrator.collect_data(sample_reader(samples[start : start + CHUNK]))
        data = calibrator.compute_data()
    return {name: tuple(float(v) for v in item.range_value) for name, item in data.data.items()}


def cache_header(version: str) -> str:
    """`TRT-8601-EntropyCalibration2` for 8.6.1; TensorRT 10 counts minor/patch in hundreds."""
    parts = [int(p) for p in (version.split(".") + ["0", "0"])[:3]]
    major, minor, patch = parts
    number = (
        major * 10000 + minor * 100 + patch if major >= 10 else major * 1000 + minor * 100 + patch
    )
    return f"TRT-{number}-EntropyCalibration2"


def calibration_cache_text(ranges: Mapping[str, tuple[float, float]], *, version: str) -> str:
    lines = [cache_header(version)]
    for name in sorted(ranges):
        low, high = ranges[name]
        scale = max(abs(low), abs(high)) / 127.0
        lines.append(f"{name}: {struct.pack('>f', scale).hex()}")
    return "\n".join(lines) + "\n"
