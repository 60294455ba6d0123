"""Write a MobileNetV2 benchmark workspace: SavedModel, sample plug-in and tf2aif.yaml.

    python tests/bench/models/mobilenetv2.py OUT_DIR

MobileNetV2(weights=None, 224x224x3, logits out). At random init every output is the same
constant, so the BatchNorm moving statistics are set from one training-mode pass over 32 random
images (momentum 0): outputs then differ between inputs and fidelity checks mean something.
No download: weights are random, so accuracy is not the point, only speed and agreement.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

MANIFEST = """\
# MobileNetV2 (random weights, BN statistics from one pass over random data): speed benchmark.
version: 1
name: mobilenetv2
model:
  path: models/mobilenetv2
  signature: serving_default
calibration:
  module: app/samples.py
  function: samples
  count: 100
targets:
  platforms: [cpu]
  runtimes: [tf, tflite, openvino, onnxruntime]
  precisions: [fp32, fp16, int8]
  exclude:
    - {runtime: tf, precision: fp16}
    - {runtime: tf, precision: int8}
    - {runtime: onnxruntime, precision: fp16}
fidelity:
  samples: {module: app/samples.py, function: held_out}
  atol: 1.0
  min_top1_agreement: 0.2
"""

SAMPLES = '''\
"""Inputs for MobileNetV2: U(-1, 1) images (its preprocessing range), fixed seeds."""

import numpy as np


def samples():
    rng = np.random.default_rng(1)
    for _ in range(100):
        yield {"input": rng.uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)}


def held_out():
    rng = np.random.default_rng(2)
    for _ in range(32):
        yield {"input": rng.uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)}
'''


def build(out: Path) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inputs = keras.Input((224, 224, 3), name="input")
    base = keras.applications.MobileNetV2(
        weights=None, input_shape=(224, 224, 3), classifier_activation=None
    )
    model = keras.Model(inputs, base(inputs), name="mobilenetv2")
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model(tf.constant(np.random.default_rng(0).uniform(-1, 1, (32, 224, 224, 3)), tf.float32),
          training=True)  # fmt: skip
    (out / "models").mkdir(parents=True, exist_ok=True)
    model.export(str(out / "models" / "mobilenetv2"), verbose=False)
    # the sample module sits in its own folder: that folder is copied into every artifact
    (out / "app").mkdir(exist_ok=True)
    (out / "app" / "samples.py").write_text(SAMPLES)
    (out / "tf2aif.yaml").write_text(MANIFEST)


if __name__ == "__main__":
    build(Path(sys.argv[1] if len(sys.argv) > 1 else "results/variants/mobilenetv2"))
