"""The digits data the zoo's deep CNNs (MobileNetV3Small, EfficientNetB0) are trained and gated on.

Those two models are trained (their int8 accuracy drop is gated), so their held-out set must be
the real digits at the CNN's input size and range, split the same way as the digits CNN.
Building the models themselves trains them for a minute or more: benchmarks/zoo.py does that.
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

ZOO = Path(__file__).resolve().parents[2] / "examples" / "zoo"
DEEP = {"efficientnet_b0": 32, "mobilenet_v3_small": 64, "resnet50": 32, "inception_v3": 75}


@cache
def _zoo():
    sys.path.insert(0, str(ZOO))
    try:
        import samples
        import zoo_models
    finally:
        sys.path.remove(str(ZOO))
    return zoo_models, samples


@cache
def _data(name: str):
    return _zoo()[0].labelled_data(name)


@pytest.mark.parametrize("name", sorted(DEEP))
def test_deep_cnns_are_trained_on_digits_at_their_input_size(name):
    zoo_models, samples = _zoo()
    model = zoo_models.by_name(name)
    size = DEEP[name]
    x_train, y_train, x_held, y_held = _data(name)
    assert model.trained
    assert x_train.shape == (1497, size, size, 3) and x_held.shape == (300, size, size, 3)
    assert x_train.dtype == np.float32 and x_train.min() >= 0.0 and x_train.max() == 255.0
    assert set(np.unique(y_held)) == set(range(10))
    # same split and labels as the digits CNN, so the figures compare
    _, digits_train, _, digits_held = _data("digits_cnn")
    assert np.array_equal(y_train, digits_train) and np.array_equal(y_held, digits_held)
    # the fidelity samples are the held-out images with their labels; calibration the training ones
    checks = list(samples.check(name))
    assert len(checks) == 300
    assert np.array_equal(checks[7][0]["image"], x_held[7]) and checks[7][1] == y_held[7]
    first = next(samples.calibration(name))["image"]
    assert np.array_equal(first, x_train[0])


@pytest.mark.fuzz
@given(name=st.sampled_from(sorted(DEEP)), index=st.integers(0, 1796), split=st.booleans())
def test_every_digit_pixel_becomes_a_uniform_grey_block(name, index, split):
    x_train, _, x_held, _ = _data(name)
    _, _, digits_held, _ = _data("digits_cnn")
    images = x_held if split else x_train
    image = images[index % len(images)]
    block = DEEP[name] // 8
    grey = image[..., 0]
    assert np.array_equal(image[..., 1], grey) and np.array_equal(image[..., 2], grey)
    start = (DEEP[name] - 8 * block) // 2  # a black border where the size is no multiple of 8
    digit = grey[start : start + 8 * block, start : start + 8 * block]
    assert grey.sum() == digit.sum()  # nothing but zeros outside the digit
    grey = digit
    pixels = grey[::block, ::block]  # one value per 8x8 digit pixel
    assert np.array_equal(np.kron(pixels, np.ones((block, block))), grey)
    assert np.all((pixels >= 0) & (pixels <= 255))
    if split:  # the same digit as the digits CNN's held-out image, scaled 0..16 -> 0..255
        expected = digits_held[index % len(images)][..., 0] * 255.0
        np.testing.assert_allclose(pixels, expected, rtol=1e-6)
