"""Calibration and fidelity samples for every zoo model, as the manifest's plug-in functions.

`calibration_<model>()` yields model inputs (the training images / features for the trained
models, generated inputs of the right range and dtype for the others); `check_<model>()` yields
the fidelity samples: held-out `(inputs, label)` pairs for the trained models, other generated
inputs (a different seed) for the rest. Each is written out so `tf2aif validate` finds it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from zoo_models import by_name, labelled_data

CALIBRATION_COUNT = 64
CHECK_COUNT = 32


def calibration(name: str) -> Iterator[dict]:
    model = by_name(name)
    rng = np.random.default_rng(100)
    for index in range(CALIBRATION_COUNT):
        yield model.sample(rng, index)


def check(name: str) -> Iterator:
    model = by_name(name)
    if model.trained:
        _, _, x_held, y_held = labelled_data(name)
        input_name = next(iter(model.sample(np.random.default_rng(0), 0)))
        for x, y in zip(x_held, y_held, strict=True):
            yield {input_name: x}, int(y)
        return
    rng = np.random.default_rng(200)
    for index in range(CHECK_COUNT):
        yield model.sample(rng, index)


def calibration_mobilenet_v2() -> Iterator[dict]:
    return calibration("mobilenet_v2")


def check_mobilenet_v2() -> Iterator:
    return check("mobilenet_v2")


def calibration_mobilenet_v3_small() -> Iterator[dict]:
    return calibration("mobilenet_v3_small")


def check_mobilenet_v3_small() -> Iterator:
    return check("mobilenet_v3_small")


def calibration_resnet50() -> Iterator[dict]:
    return calibration("resnet50")


def check_resnet50() -> Iterator:
    return check("resnet50")


def calibration_efficientnet_b0() -> Iterator[dict]:
    return calibration("efficientnet_b0")


def check_efficientnet_b0() -> Iterator:
    return check("efficientnet_b0")


def calibration_densenet121() -> Iterator[dict]:
    return calibration("densenet121")


def check_densenet121() -> Iterator:
    return check("densenet121")


def calibration_inception_v3() -> Iterator[dict]:
    return calibration("inception_v3")


def check_inception_v3() -> Iterator:
    return check("inception_v3")


def calibration_convnext_tiny() -> Iterator[dict]:
    return calibration("convnext_tiny")


def check_convnext_tiny() -> Iterator:
    return check("convnext_tiny")


def calibration_nasnet_mobile() -> Iterator[dict]:
    return calibration("nasnet_mobile")


def check_nasnet_mobile() -> Iterator:
    return check("nasnet_mobile")


def calibration_lstm_text() -> Iterator[dict]:
    return calibration("lstm_text")


def check_lstm_text() -> Iterator:
    return check("lstm_text")


def calibration_bilstm_text() -> Iterator[dict]:
    return calibration("bilstm_text")


def check_bilstm_text() -> Iterator:
    return check("bilstm_text")


def calibration_gru_audio() -> Iterator[dict]:
    return calibration("gru_audio")


def check_gru_audio() -> Iterator:
    return check("gru_audio")


def calibration_conv1d_audio() -> Iterator[dict]:
    return calibration("conv1d_audio")


def check_conv1d_audio() -> Iterator:
    return check("conv1d_audio")


def calibration_transformer() -> Iterator[dict]:
    return calibration("transformer")


def check_transformer() -> Iterator:
    return check("transformer")


def calibration_multi_io() -> Iterator[dict]:
    return calibration("multi_io")


def check_multi_io() -> Iterator:
    return check("multi_io")


def calibration_dynamic_hw() -> Iterator[dict]:
    return calibration("dynamic_hw")


def check_dynamic_hw() -> Iterator:
    return check("dynamic_hw")


def calibration_unet() -> Iterator[dict]:
    return calibration("unet")


def check_unet() -> Iterator:
    return check("unet")


def calibration_detector() -> Iterator[dict]:
    return calibration("detector")


def check_detector() -> Iterator:
    return check("detector")


def calibration_string_text() -> Iterator[dict]:
    return calibration("string_text")


def check_string_text() -> Iterator:
    return check("string_text")


def calibration_digits_cnn() -> Iterator[dict]:
    return calibration("digits_cnn")


def check_digits_cnn() -> Iterator:
    return check("digits_cnn")


def calibration_tabular_mlp() -> Iterator[dict]:
    return calibration("tabular_mlp")


def check_tabular_mlp() -> Iterator:
    return check("tabular_mlp")
