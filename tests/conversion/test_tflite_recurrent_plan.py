"""`tf2aif plan` of a real recurrent model with each TFLite option: its cells are built, on the
bases the option needs (the builder side: no Flex needed, the model is only inspected)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tf2aif.cli.main import main

from projects import write_project

pytestmark = pytest.mark.conversion


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A Keras LSTM over 12 token ids, as a .keras file and as a SavedModel."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(12,), dtype="int32", name="tokens")
    x = keras.layers.LSTM(8)(keras.layers.Embedding(50, 8)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="probs")(x))
    root = tmp_path_factory.mktemp("recurrent-plan")
    model.save(root / "lstm.keras")
    model.export(str(root / "saved"), verbose=False)
    return root


PLAN = """\
version: 1
name: lstm
model: {{path: {model}}}
processing: {{module: app/processing.py}}
targets:
  platforms: [cpu]
  runtimes: [tflite]
  precisions: [fp32, fp16]
options:
  tflite: {{{option}: true}}
"""


@pytest.mark.parametrize(
    ("model", "option", "base"),
    [
        ("saved", "select_tf_ops", "serve-tflite-flex"),
        ("lstm.keras", "unroll_recurrent", "serve-tflite"),
    ],
)
def test_plan_of_a_real_lstm_with_the_option_builds_its_tflite_cells(
    root, tmp_path, capsys, model, option, base
):
    manifest = PLAN.format(model=f"models/{model}", option=option)
    file = write_project(tmp_path, manifest, model=f"models/{model}", source=root / model)
    assert main(["plan", "--json", str(file)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert not [s for s in data["skipped"] if s["by_model"]]
    assert {b["folder"] for b in data["bases"]} >= {base}
    assert sorted(v for i in data["images"] for v in i["variants"]) == [
        "cpu/tflite/fp16",
        "cpu/tflite/fp32",
    ]
    assert main(["plan", str(file)]) == 0
    out = capsys.readouterr().out
    assert f"options {option}=true" in out
    assert ("serves on base serve-tflite-flex" in out) == (option == "select_tf_ops")
