"""`vitis-ai` (alveo): Vitis AI's TF2 flow, quantize then compile for the Alveo DPU.

1. `vai_q_tensorflow2`: the VitisQuantizer python API quantizes the Keras model to int8 with the
   calibration samples and saves `quantized.h5`;
2. `vai_c_tensorflow2 -m quantized.h5 -a <arch.json> -o <model dir> -n model` compiles it to
   `model.xmodel` for the card's DPU (U50/U50LV/U280: DPUCAHX8H).

Both tools exist only in the Vitis AI TensorFlow 2 image (TF 2.12, tf.keras 2.x), which also
means the source must load with `tf.keras.models.load_model` (a .h5/.keras or tf.keras
SavedModel; a Keras 3 `model.export` SavedModel does not). Without those tools this backend
raises ConversionError; it cannot run, nor be checked for fidelity, outside that image.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tf2aif.errors import ConversionError
from tf2aif.image.convert.backends._common import require_precision
from tf2aif.image.convert.job import ConvertJob, ConvertResult

__all__ = ["ARCH_ROOT", "COMPILER", "arch_json", "compile_argv", "convert"]

log = logging.getLogger(__name__)

COMPILER = "vai_c_tensorflow2"
ARCH_ROOT = Path("/opt/vitis_ai/compiler/arch")
CARD_DPU = {"U50": "DPUCAHX8H", "U50LV": "DPUCAHX8H", "U55C": "DPUCAHX8H", "U280": "DPUCAHX8H"}
IMAGE_HINT = (
    "run this conversion in the Vitis AI TensorFlow 2 image (xilinx/vitis-ai-tensorflow2-*)"
)


def convert(job: ConvertJob) -> ConvertResult:
    require_precision(job, "vitis-ai", ("int8",))
    quantizer_class = _vitis_quantizer(job)
    if shutil.which(COMPILER) is None:
        raise ConversionError(f"{COMPILER} not found; {IMAGE_HINT}", variant=job.variant)
    quantized = _quantize(quantizer_class, job)
    argv = compile_argv(quantized, arch_json(job.spec.options), job.model_dir)
    log.info("running %s", " ".join(argv))
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ConversionError(
            f"{COMPILER} failed (exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}",
            variant=job.variant,
        )
    return ConvertResult(
        model_file="model/model.xmodel",
        options={"arch": str(arch_json(job.spec.options))},
        tools=("tensorflow", "tensorflow-model-optimization"),
        check_with=None,
        check_note="not checked: the xmodel runs only on an Alveo DPU",
    )


def arch_json(options: Mapping[str, Any]) -> Path:
    """`options["arch_json"]` if given, else `<ARCH_ROOT>/<dpu_arch>/<card>/arch.json`."""
    if options.get("arch_json"):
        return Path(options["arch_json"])
    card = str(options.get("card", "U50")).upper()
    if card not in CARD_DPU:
        raise ConversionError(
            f"unknown Alveo card {card!r}; known: {', '.join(CARD_DPU)} (or set options.arch_json)"
        )
    return ARCH_ROOT / str(options.get("dpu_arch") or CARD_DPU[card]) / card / "arch.json"


def compile_argv(quantized: Path, arch: Path, out_dir: Path) -> list[str]:
    return [COMPILER, "-m", str(quantized), "-a", str(arch), "-o", str(out_dir), "-n", "model"]


def _vitis_quantizer(job: ConvertJob) -> Any:
    try:
        from tensorflow_model_optimization.quantization.keras import vitis_quantize
    except ImportError:
        raise ConversionError(
            f"the Vitis AI quantizer (vai_q_tensorflow2: tensorflow_model_optimization "
            f"with vitis_quantize) is not installed; {IMAGE_HINT}",
            variant=job.variant,
        ) from None
    return vitis_quantize.VitisQuantizer


def _quantize(quantizer_class: Any, job: ConvertJob) -> Path:
    import tensorflow as tf

    source = job.keras_model or job.saved_model
    model = tf.keras.models.load_model(str(source))
    samples = job.calibration().inputs
    name = next(iter(samples[0]))
    dataset = np.concatenate([sample[name] for sample in samples])
    quantized = quantizer_class(model).quantize_model(
        calib_dataset=dataset, calib_batch_size=min(32, len(dataset))
    )
    target = job.workdir / "quantized.h5"
    quantized.save(str(target))
    return target
