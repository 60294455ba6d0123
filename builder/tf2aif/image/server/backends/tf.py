"""Native TensorFlow: a SavedModel signature (the baseline every other runtime is compared with)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tf2aif.image.server.backends.base import Arrays, Backend, match_names, require
from tf2aif.image.server.errors import ServerError

__all__ = ["TFBackend"]


class TFBackend(Backend):
    runtime = "tf"

    def load(self) -> None:
        tf = require("tensorflow", self.runtime)
        if self.settings.threads:
            tf.config.threading.set_intra_op_parallelism_threads(self.settings.threads)
        self._tf = tf
        self._loaded = tf.saved_model.load(str(self.model_path))  # keep alive: owns the variables
        key = self.info.options.get("signature", "serving_default")
        if key not in self._loaded.signatures:
            available = ", ".join(self._loaded.signatures) or "none"
            raise ServerError(f"{self.model_path}: no signature {key!r}; it has: {available}")
        self._function = self._loaded.signatures[key]
        native_inputs = list(self._function.structured_input_signature[1])
        native_outputs = list(self._function.structured_outputs)
        self._inputs = match_names([t.name for t in self.info.inputs], native_inputs, "inputs")
        self._outputs = match_names([t.name for t in self.info.outputs], native_outputs, "outputs")

    def infer(self, inputs: Arrays) -> dict[str, np.ndarray]:
        tensors = {
            native: self._tf.convert_to_tensor(inputs[name])
            for name, native in self._inputs.items()
        }
        results = self._function(**tensors)
        return {name: results[native].numpy() for name, native in self._outputs.items()}

    def details(self) -> dict[str, Any]:
        return {"tensorflow": self._tf.__version__}
