"""Fixtures: real digits artifacts for every runtime, TF reference outputs, digit PNGs."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tf2aif.image.artifact import ARTIFACT_FILE

from .artifacts import RUNTIMES, make_artifacts
from .serving import LIVE


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    """A failing test's report carries the log of every server the tests still hold (the traceback a
    500 or a hang left there)."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in list(LIVE):
            report.sections.append((f"server log {server.url} (last 20 kB)", server.logs(20_000)))


@pytest.fixture(scope="session")
def digits_artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """runtime -> artifact dir, all converted from one freshly trained digits SavedModel.

    TF2AIF_TEST_SERVER_ARTIFACTS=DIR keeps them in DIR and reuses them on the next run.
    """
    keep = os.environ.get("TF2AIF_TEST_SERVER_ARTIFACTS")
    if keep and all((Path(keep) / runtime / ARTIFACT_FILE).is_file() for runtime in RUNTIMES):
        return {runtime: Path(keep) / runtime for runtime in RUNTIMES}
    root = Path(keep) if keep else tmp_path_factory.mktemp("digits-artifacts")
    if keep:
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
    return make_artifacts(root)


@pytest.fixture(scope="session")
def held_out() -> tuple[np.ndarray, np.ndarray]:
    from .artifacts import digits_train

    _, _, images, labels = digits_train.load_digits_split()
    return images[:32], labels[:32]


@pytest.fixture(scope="session")
def tf_reference(digits_artifacts: dict[str, Path], held_out: tuple) -> np.ndarray:
    """Softmax outputs of the native TF SavedModel for the held-out images."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(digits_artifacts["tf"] / "model" / "saved_model"))
    images, _ = held_out
    return loaded.signatures["serving_default"](image=tf.constant(images))["output_0"].numpy()


def digit_png(image: np.ndarray) -> bytes:
    """An 8x8 digit (light ink, [0, 1]) as a 64x64 PNG with dark ink on white paper."""
    from PIL import Image

    pixels = (255 * (1.0 - image.reshape(8, 8))).round().astype(np.uint8)
    picture = Image.fromarray(pixels, mode="L").resize((64, 64), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
