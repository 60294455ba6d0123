"""A recurrent model on TFLite with `options.tflite.select_tf_ops`, built and served for real.

A small Keras LSTM (token ids -> 3 classes) is baked on the local stand-in (amd64): the
conversion runs on base-convert-tflite-flex (TensorFlow 2.18.1, whose interpreter applies the
Flex delegate), the image serves on base-serve-tflite-flex and answers like native TensorFlow.
Cold, the two bases install TensorFlow from PyPI (about 3 minutes); warm runs are cache hits.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest

from .conftest import REGISTRY, bake_first_image, export_over_stand_in, serving_container
from projects import write_project

pytestmark = pytest.mark.docker

STEPS = 12
MANIFEST = f"""\
version: 1
name: rnn
model: {{path: models/m}}
processing: {{module: app/processing.py}}
calibration: {{module: app/calibration.py, function: samples, count: 16}}
targets:
  platforms: [cpu]
  runtimes: [tflite]
  precisions: [fp32]
options:
  tflite: {{select_tf_ops: true}}
fidelity: {{rtol: 0.001}}
registry: {REGISTRY}/tf2aif-it/rnn-flex-{uuid.uuid4().hex[:8]}
"""
CALIBRATION = f"""\
import numpy as np


def samples():
    rng = np.random.default_rng(0)
    for _ in range(16):
        yield {{"tokens": rng.integers(0, 50, size=(1, {STEPS})).astype("int32")}}
"""
PROCESSING = """\
def preprocess(payload, content_type):
    return {"tokens": payload}


def postprocess(outputs):
    return outputs
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    import keras

    root = tmp_path_factory.mktemp("rnn-flex")
    write_project(root, MANIFEST)
    (root / "app" / "calibration.py").write_text(CALIBRATION)
    (root / "app" / "processing.py").write_text(PROCESSING)
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(STEPS,), dtype="int32", name="tokens")
    x = keras.layers.LSTM(8)(keras.layers.Embedding(50, 8)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="probs")(x))
    return export_over_stand_in(root, model)


@pytest.fixture(scope="module")
def built(project, stand_in_map) -> dict:
    image = bake_first_image(project, stand_in_map)
    bake = json.loads((project / ".tf2aif" / "docker-bake.json").read_text())
    assert bake["target"]["convert-tflite-fp32"]["contexts"]["base"] == (
        "target:base-convert-tflite-flex"
    )
    return image


def test_the_flex_image_serves_the_lstm_like_native_tf(built, project):
    import tensorflow as tf

    assert built["labels"]["io.tf2aif.tflite.flex"] == "tensorflow-2.18.1"
    assert built["fidelity"]["passed"] is True
    with serving_container(built["tags"][0]) as (url, container):
        tokens = (np.arange(2 * STEPS, dtype=np.int32).reshape(2, STEPS) * 7) % 50
        body = {"inputs": [{"name": "tokens", "shape": [2, STEPS], "datatype": "INT32"}]}
        body["inputs"][0]["data"] = tokens.ravel().tolist()
        request = urllib.request.Request(
            f"{url}/v2/models/rnn/infer",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            output = json.loads(response.read())["outputs"][0]
        with urllib.request.urlopen(f"{url}/v2/models/rnn", timeout=10) as response:
            runtime = json.loads(response.read())["parameters"]["runtime"]
        assert runtime["interpreter"] == "tensorflow-flex"
        served = np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])
        signature = tf.saved_model.load(str(project / "models" / "m")).signatures["serving_default"]
        native = next(iter(signature(tokens=tf.constant(tokens)).values())).numpy()
        assert np.max(np.abs(served - native)) <= 1e-5
        assert "Created TensorFlow Lite delegate for select TF ops" in container.logs().decode()
