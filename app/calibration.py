"""Calibration and fidelity samples for the demo digits model.

`samples()` yields model inputs for int8 calibration (training images); `held_out()` yields
(inputs, label) pairs the converted model is checked against (the 300 held-out images).
"""

from __future__ import annotations

from digits_data import load_digits_split


def samples():
    x_train, _, _, _ = load_digits_split()
    for image in x_train:
        yield {"image": image[None]}


def held_out():
    _, _, x_test, y_test = load_digits_split()
    for image, label in zip(x_test, y_test, strict=True):
        yield {"image": image[None]}, int(label)
