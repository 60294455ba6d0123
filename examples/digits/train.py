"""Train the demo model: a small CNN on scikit-learn's bundled 8x8 digits (no downloads).

    python examples/digits/train.py [OUT_DIR]      # default: models/digits next to tf2aif.yaml

Writes a SavedModel (Keras 3 `model.export`) with one input `image` (float32, N x 8 x 8 x 1,
pixels scaled to [0, 1]) and a softmax output over 10 classes.
Deterministic: fixed seeds, fixed split.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "app"))
from digits_data import HELD_OUT, SEED, load_digits_split  # noqa: E402

__all__ = ["HELD_OUT", "SEED", "build_model", "load_digits_split", "train"]


def build_model():
    import keras

    inputs = keras.Input(shape=(8, 8, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="digits")


def train(out_dir: Path, epochs: int = 8) -> float:
    """Train, export the SavedModel to out_dir, return held-out accuracy."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(SEED)
    x_train, y_train, x_test, y_test = load_digits_split()
    model = build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    accuracy = float(model.evaluate(x_test, y_test, verbose=0)[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    model.export(str(out_dir), verbose=False)
    return accuracy


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path(__file__).resolve().parents[2] / "models" / "digits"
    accuracy = train(out)
    print(f"digits CNN written to {out} (held-out accuracy {accuracy:.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
