"""Calibration and fidelity samples for every zoo model, as the manifest's plug-in functions.

`calibration_<model>()` yields model inputs (the training images / features for the trained
models, generated inputs of the right range and dtype for the others); `check_<model>()` yields
the fidelity samples: held-out `(inputs, label)` pairs for the trained models, other generated
inputs (a different seed) for the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
from zoo_models import MODELS, ZooModel, labelled_data

CALIBRATION_COUNT = 64
CHECK_COUNT = 32


def _calibration(model: ZooModel) -> Callable[[], Iterator[dict]]:
    def calibration() -> Iterator[dict]:
        rng = np.random.default_rng(100)
        for index in range(CALIBRATION_COUNT):
            yield model.sample(rng, index)

    return calibration


def _check(model: ZooModel) -> Callable[[], Iterator]:
    def check() -> Iterator:
        if model.trained:
            _, _, x_held, y_held = labelled_data(model.name)
            name = next(iter(model.sample(np.random.default_rng(0), 0)))
            for x, y in zip(x_held, y_held, strict=True):
                yield {name: x}, int(y)
            return
        rng = np.random.default_rng(200)
        for index in range(CHECK_COUNT):
            yield model.sample(rng, index)

    return check


for _model in MODELS:
    globals()[f"calibration_{_model.name}"] = _calibration(_model)
    globals()[f"check_{_model.name}"] = _check(_model)
