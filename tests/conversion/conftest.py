"""Fixtures for the conversion tests: the digits CNN trained once, a project folder around it."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _train_module():
    spec = importlib.util.spec_from_file_location("digits_train", REPO / "examples/digits/train.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def digits_train():
    return _train_module()


@pytest.fixture(scope="session")
def project(tmp_path_factory, digits_train) -> Path:
    """A project folder like the demo's: models/digits (trained), app/, examples/digits/."""
    root = tmp_path_factory.mktemp("project")
    accuracy = digits_train.train(root / "models" / "digits")
    assert abs(accuracy - 0.9633) < 0.02, accuracy
    shutil.copytree(REPO / "app", root / "app", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "examples").mkdir()
    shutil.copytree(
        REPO / "examples" / "digits",
        root / "examples" / "digits",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return root


@pytest.fixture(scope="module")
def lstm_model(tmp_path_factory) -> Path:
    """A small Keras LSTM text classifier, exported as a SavedModel."""
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(shape=(12,), dtype="int32"),
            keras.layers.Embedding(50, 8),
            keras.layers.LSTM(8),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    out = tmp_path_factory.mktemp("lstm") / "saved"
    model.export(str(out), verbose=False)
    return out
