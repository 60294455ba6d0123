"""A text model (Keras TextVectorization inside) on OpenVINO, built and served for real.

The model takes raw sentences. Its string ops convert only with OpenVINO's tokenizers extension:
the conversion stage runs on base-convert-tf (openvino 2026.4.1 with openvino-tokenizers), and
the image serves on base-serve-openvino (openvino 2025.3.0 with its tokenizers), which loads the
extension because the artifact lists it. The image must answer like native TensorFlow, and refuse
a string it cannot pass intact (one ending in NUL) with a 400 while it keeps serving.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest

from .conftest import REGISTRY, bake_first_image, export_over_stand_in, serving_container, tf2aif
from projects import write_project

pytestmark = pytest.mark.docker

WORDS = [f"w{i}" for i in range(50)]
MANIFEST = f"""\
version: 1
name: text
model: {{path: models/m}}
targets:
  platforms: [cpu]
  runtimes: [openvino]
  precisions: [fp32]
fidelity: {{rtol: 0.001}}
registry: {REGISTRY}/tf2aif-it/text-openvino-{uuid.uuid4().hex[:8]}
"""
SENTENCES = ["w1 w2 W3", "", "w49, w7 unknown É 🙂", "w0  w0   w0"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    import keras

    root = tmp_path_factory.mktemp("text-openvino")
    write_project(root, MANIFEST)
    keras.utils.set_random_seed(0)
    text = keras.Input((), dtype="string", name="text")
    vectorize = keras.layers.TextVectorization(
        max_tokens=len(WORDS) + 2, output_sequence_length=8, vocabulary=WORDS
    )
    x = keras.layers.GlobalAveragePooling1D()(
        keras.layers.Embedding(len(WORDS) + 2, 8)(vectorize(text))
    )
    model = keras.Model(text, keras.layers.Dense(3, activation="softmax", name="probs")(x))
    return export_over_stand_in(root, model)


@pytest.fixture(scope="module")
def built(project, stand_in_map) -> dict:
    proc, _ = tf2aif("plan", str(project / "tf2aif.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "openvino-tokenizers" in " ".join(proc.stdout.split())  # the plan says so
    return bake_first_image(project, stand_in_map)


def _infer(url: str, texts: list[str]) -> tuple[int, dict]:
    body = {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}
    request = urllib.request.Request(
        f"{url}/v2/models/text/infer",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_openvino_image_serves_raw_sentences_like_native_tf(built, project):
    import tensorflow as tf

    assert built["fidelity"]["passed"] is True
    with serving_container(built["tags"][0]) as (url, _):
        status, answer = _infer(url, SENTENCES)
        assert status == 200, answer
        output = answer["outputs"][0]
        served = np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])
        signature = tf.saved_model.load(str(project / "models" / "m")).signatures["serving_default"]
        native = next(iter(signature(text=tf.constant(SENTENCES)).values())).numpy()
        assert np.max(np.abs(served - native)) <= 1e-5
        status, answer = _infer(url, ["w1\u0000"])
        assert status == 400 and "NUL" in answer["error"]
        assert _infer(url, ["w1"])[0] == 200  # still serving
        with urllib.request.urlopen(f"{url}/v2/models/text", timeout=10) as response:
            assert json.loads(response.read())["platform"] == "openvino"
