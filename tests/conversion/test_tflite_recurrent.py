"""Recurrent models on TFLite, converted for real: unrolled to builtins, or with Select TF ops.

A small Keras LSTM (token ids -> 3 classes) is built in-process. `unroll_recurrent` rebuilds it
unrolled and runs on plain LiteRT here. `select_tf_ops` runs only where the Flex delegate is
(TensorFlow 2.18.1, `nox -s flex`); on the TensorFlow without it, the conversion refuses in one
line that names the option and the TensorFlow that has Flex.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tf2aif.errors import ConversionError
from tf2aif.image.artifact import read_artifact
from tf2aif.image.convert import ConvertSpec, PluginRef, Thresholds, run_conversion
from tf2aif.image.convert.backends.tflite import flex_ops
from tf2aif.image.flex import FLEX_TENSORFLOW, flex_available

pytestmark = pytest.mark.conversion

STEPS, VOCAB = 12, 50
SAMPLES = f"""\
import numpy as np


def samples():
    rng = np.random.default_rng(0)
    for _ in range(24):
        yield {{"tokens": rng.integers(0, {VOCAB}, size=(1, {STEPS})).astype("int32")}}
"""
NEEDS_FLEX = pytest.mark.skipif(
    not flex_available(),
    reason=f"needs TensorFlow {FLEX_TENSORFLOW} with the Flex delegate (nox -s flex)",
)


def _lstm(steps: int | None, *, bidirectional: bool = False):
    import keras

    keras.utils.set_random_seed(0)
    layer = keras.layers.LSTM(8)
    inputs = keras.Input(shape=(steps,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(VOCAB, 8)(inputs)
    x = (keras.layers.Bidirectional(layer) if bidirectional else layer)(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="probs")(x))


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A project folder: the LSTM as .keras (fixed and dynamic length) and as a SavedModel."""
    root = tmp_path_factory.mktemp("recurrent")
    (root / "samples.py").write_text(SAMPLES)
    _lstm(STEPS).save(root / "lstm.keras")
    _lstm(STEPS, bidirectional=True).save(root / "bilstm.keras")
    _lstm(None).save(root / "dynamic.keras")
    _lstm(STEPS).export(str(root / "saved"), verbose=False)
    return root


def spec(model: str, precision: str = "fp32", **options) -> ConvertSpec:
    return ConvertSpec(
        name="lstm",
        runtime="tflite",
        precision=precision,
        backend="tflite",
        model=model,
        calibration=PluginRef(module="samples.py", function="samples", count=24),
        thresholds=Thresholds(rtol=1e-3) if precision == "fp32" else Thresholds(rtol=0.05),
        options={"int8_io": False, **options},
    )


@pytest.mark.parametrize("model", ["lstm.keras", "bilstm.keras"])
def test_unroll_recurrent_gives_builtin_ops_that_pass_the_gate_on_litert(root, tmp_path, model):
    out = tmp_path / "out"
    info = run_conversion(spec(model, unroll_recurrent=True), root=root, out=out)
    assert info.options["unroll_recurrent"] is True
    assert "select_tf_ops" not in info.options
    assert flex_ops((out / "model" / "model.tflite").read_bytes()) == []
    metrics = info.fidelity["metrics"]
    assert metrics["max_rel_diff"] <= 1e-3 and metrics["top1_agreement"] == 1.0
    # the same model without the option is the failure the option fixes
    with pytest.raises(ConversionError, match="TensorListReserve"):
        run_conversion(spec(model), root=root, out=tmp_path / "plain")


def test_unroll_recurrent_int8_converts_to_integer_kernels(root, tmp_path):
    from tf2aif.image.convert.runners import tflite_interpreter

    out = tmp_path / "out"
    info = run_conversion(spec("lstm.keras", "int8", unroll_recurrent=True), root=root, out=out)
    assert info.options["unroll_recurrent"] is True
    interpreter = tflite_interpreter(out / "model" / "model.tflite")
    dtypes = {np.dtype(t["dtype"]) for t in interpreter.get_tensor_details()}
    assert np.dtype(np.int8) in dtypes  # the recurrent matmuls run on int8 kernels
    assert info.fidelity["metrics"]["max_abs_diff"] < 0.05


def test_unroll_recurrent_refuses_a_dynamic_sequence_length(root, tmp_path):
    with pytest.raises(ConversionError) as error:
        run_conversion(spec("dynamic.keras", unroll_recurrent=True), root=root, out=tmp_path)
    text = str(error.value)
    assert "options.tflite.unroll_recurrent" in text and "fixed sequence length" in text
    assert "(None, None, 8)" in text and "select_tf_ops" in text


def test_unroll_recurrent_refuses_a_saved_model_and_names_the_alternative(root, tmp_path):
    with pytest.raises(ConversionError) as error:
        run_conversion(spec("saved", unroll_recurrent=True), root=root, out=tmp_path)
    text = str(error.value)
    assert "options.tflite.unroll_recurrent" in text and ".keras" in text
    assert "options.tflite.select_tf_ops: true" in text


@pytest.mark.skipif(flex_available(), reason="this TensorFlow carries the Flex delegate")
def test_select_tf_ops_without_flex_names_the_tensorflow_that_has_it(root, tmp_path):
    with pytest.raises(ConversionError) as error:
        run_conversion(spec("saved", select_tf_ops=True), root=root, out=tmp_path)
    text = str(error.value)
    assert "options.tflite.select_tf_ops" in text and "\n" not in text.strip()
    assert f"TensorFlow {FLEX_TENSORFLOW}" in text and "convert-tflite-flex" in text


@NEEDS_FLEX
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_select_tf_ops_converts_checks_and_serves_with_flex(root, tmp_path, precision):
    out = tmp_path / "out"
    info = run_conversion(spec("saved", precision, select_tf_ops=True), root=root, out=out)
    assert info.options["select_tf_ops"] is True
    assert "TensorListReserve" in info.options["flex_ops"]
    if precision != "int8":
        assert info.fidelity["metrics"]["top1_agreement"] == 1.0
    backend = _server_backend(out)
    tokens = np.arange(STEPS, dtype=np.int32).reshape(1, STEPS) % VOCAB
    served = backend.infer({"tokens": np.repeat(tokens, 3, axis=0)})
    probs = next(iter(served.values()))
    assert probs.shape == (3, 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-2)
    assert backend.details()["interpreter"] == "tensorflow-flex"


def _server_backend(artifact: Path):
    from tf2aif.image.server.backends import BackendSettings, create_backend

    backend = create_backend(read_artifact(artifact), artifact, BackendSettings())
    backend.load()
    return backend


@pytest.mark.skipif(flex_available(), reason="this TensorFlow carries the Flex delegate")
def test_the_server_refuses_a_flex_artifact_where_there_is_no_flex(root, tmp_path):
    from dataclasses import replace

    from tf2aif.image.server.backends import BackendSettings, create_backend
    from tf2aif.image.server.errors import ServerError

    out = tmp_path / "out"
    run_conversion(spec("lstm.keras", unroll_recurrent=True), root=root, out=out)
    info = read_artifact(out)
    flex = replace(info, options={**info.options, "select_tf_ops": True})
    with pytest.raises(ServerError) as error:
        create_backend(flex, out, BackendSettings()).load()
    assert f"TensorFlow {FLEX_TENSORFLOW}" in str(error.value)
    assert "serve-tflite-flex" in str(error.value)
