"""Convert the digits CNN and MobileNetV2 with every CPU-checkable variant; print one table.

    PYTHONPATH=builder python benchmarks/conversion_table.py [--models digits,mobilenetv2]
                                                             [--json results.json]

Per variant: conversion time (source load + converter, without the fidelity check), artifact
model size, max |diff| vs native TF, top-1 agreement, and for digits the accuracy on the 300
held-out images (TF: 0.9633). Digits: fidelity on the 300 held-out images, calibration on 200
training images. MobileNetV2 (random weights, BN statistics from one training-mode pass on
random data so its logits are not constant): 64 U(-1, 1) inputs, calibration on 100 others;
its diffs are on logits, and top-1 agreement says little about a trained network.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "builder"))

from tf2aif.image.convert import ConvertSpec, PluginRef, Thresholds, run_conversion  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
import cpu_variants  # noqa: E402

# The cpu matrix, and TensorRT int8, whose calibration and ONNX export run without a GPU.
VARIANTS = (
    *cpu_variants.variants(),
    ("tensorrt", "tensorrt", "int8"),
)  # (runtime, backend, precision)

MOBILENET_SAMPLES = """
import numpy as np

def calibration():
    rng = np.random.default_rng(1)
    for _ in range(100):
        yield {"input": rng.uniform(-1, 1, (224, 224, 3)).astype(np.float32)}

def check():
    rng = np.random.default_rng(2)
    for _ in range(64):
        yield {"input": rng.uniform(-1, 1, (224, 224, 3)).astype(np.float32)}
"""


def digits_project(root: Path) -> tuple[ConvertSpec, float]:
    sys.path.insert(0, str(REPO / "examples" / "digits"))
    from train import train

    accuracy = train(root / "models" / "digits")
    shutil.copytree(REPO / "app", root / "app")
    shutil.copytree(REPO / "examples", root / "examples")
    spec = ConvertSpec(
        name="digits",
        runtime="",
        precision="",
        backend="",
        model="models/digits",
        calibration=PluginRef(module="app/calibration.py", function="samples", count=200),
        fidelity_samples=PluginRef(module="app/calibration.py", function="held_out"),
        thresholds=Thresholds(),
    )
    return spec, accuracy


def mobilenet_project(root: Path) -> ConvertSpec:
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    inputs = keras.Input((224, 224, 3), name="input")
    backbone = keras.applications.MobileNetV2(
        weights=None, input_shape=(224, 224, 3), classifier_activation=None
    )
    model = keras.Model(inputs, backbone(inputs), name="mobilenetv2")
    for layer in backbone.layers:  # BN moving statistics from one batch, not the init values
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model(
        np.random.default_rng(0).uniform(-1, 1, (32, 224, 224, 3)).astype("float32"), training=True
    )
    model.export(str(root / "models" / "mobilenetv2"), verbose=False)
    (root / "samples.py").write_text(MOBILENET_SAMPLES)
    return ConvertSpec(
        name="mobilenetv2",
        runtime="",
        precision="",
        backend="",
        model="models/mobilenetv2",
        calibration=PluginRef(module="samples.py", function="calibration"),
        fidelity_samples=PluginRef(module="samples.py", function="check"),
        thresholds=Thresholds(),
    )


def measure(model: str, base: ConvertSpec, root: Path, out_root: Path) -> list[dict]:
    from dataclasses import replace

    rows = []
    for runtime, backend, precision in VARIANTS:
        spec = replace(base, runtime=runtime, backend=backend, precision=precision)
        out = out_root / f"{model}-{runtime}-{precision}"
        started = time.perf_counter()
        info = run_conversion(spec, root=root, out=out)
        total = time.perf_counter() - started
        size = sum(p.stat().st_size for p in (out / "model").rglob("*") if p.is_file())
        metrics = info.fidelity["metrics"]
        rows.append(
            {
                "model": model,
                "variant": f"{runtime}-{precision}",
                "convert_s": info.options["conversion_seconds"],
                "total_s": round(total, 2),
                "size_kb": round(size / 1024),
                "max_abs_diff": metrics["max_abs_diff"],
                "top1_agreement": metrics.get("top1_agreement"),
                "accuracy": metrics.get("accuracy"),
                "samples": metrics["samples"],
                "checked_with": info.fidelity["checked_with"],
            }
        )
        print(f"  {model} {runtime}-{precision}: {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict]) -> str:
    head = "| model | variant | convert s | total s | model KB | max abs diff | top-1 agree | accuracy |"
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        accuracy = "" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
        top1 = "" if r["top1_agreement"] is None else f"{r['top1_agreement']:.3f}"
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['convert_s']:.2f} | {r['total_s']:.2f} | "
            f"{r['size_kb']} | {r['max_abs_diff']:.2g} | {top1} | {accuracy} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits,mobilenetv2")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="tf2aif-bench-") as scratch:
        root, out_root = Path(scratch) / "project", Path(scratch) / "artifacts"
        root.mkdir()
        for model in args.models.split(","):
            if model == "digits":
                spec, accuracy = digits_project(root)
                print(f"digits trained: held-out accuracy {accuracy:.4f}", file=sys.stderr)
            elif model == "mobilenetv2":
                spec = mobilenet_project(root)
            else:
                parser.error(f"unknown model {model!r}")
            rows += measure(model, spec, root, out_root)
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
