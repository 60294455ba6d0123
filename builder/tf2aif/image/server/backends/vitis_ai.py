"""Vitis AI (Alveo / Versal DPU): a VART runner over the compiled .xmodel.

Needs the Vitis AI runtime (`xir`, `vart`) and a DPU, which only the Vitis AI image on an FPGA
card has. The DPU takes int8 tensors of a fixed batch; values are scaled by 2**fix_point.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from tf2aif.image.server.backends.base import Arrays, Backend, match_names, require
from tf2aif.image.server.errors import ServerError

__all__ = ["VitisAIBackend"]


class VitisAIBackend(Backend):
    runtime = "vitis-ai"

    def load(self) -> None:
        xir = require("xir", self.runtime)
        vart = require("vart", self.runtime)
        graph = xir.Graph.deserialize(str(self.model_path))
        dpu = [
            sub
            for sub in graph.get_root_subgraph().toposort_child_subgraph()
            if sub.has_attr("device") and sub.get_attr("device").upper() == "DPU"
        ]
        if len(dpu) != 1:
            raise ServerError(f"{self.model_path}: expected one DPU subgraph, found {len(dpu)}")
        self._runner = vart.Runner.create_runner(dpu[0], "run")
        self._in = self._runner.get_input_tensors()
        self._out = self._runner.get_output_tensors()
        self._inputs = match_names(
            [s.name for s in self.info.inputs], [t.name for t in self._in], "inputs"
        )
        self._outputs = match_names(
            [s.name for s in self.info.outputs], [t.name for t in self._out], "outputs"
        )
        self._batch = int(self._in[0].dims[0])
        self._lock = threading.Lock()  # one runner, one job at a time

    def infer(self, inputs: Arrays) -> dict[str, np.ndarray]:
        rows = next(iter(inputs.values())).shape[0]
        parts = [self._run_chunk(inputs, start, rows) for start in range(0, rows, self._batch)]
        return {name: np.concatenate([p[name] for p in parts])[:rows] for name in self._outputs}

    def _run_chunk(self, inputs: Arrays, start: int, rows: int) -> dict[str, np.ndarray]:
        by_native = {native: name for name, native in self._inputs.items()}
        feeds = []
        for tensor in self._in:
            chunk = inputs[by_native[tensor.name]][start : start + self._batch]
            padded = np.zeros(tuple(tensor.dims), dtype=np.float32)
            padded[: len(chunk)] = chunk
            scale = 2.0 ** tensor.get_attr("fix_point")
            feeds.append(np.clip(np.round(padded * scale), -128, 127).astype(np.int8))
        results = [np.empty(tuple(t.dims), dtype=np.int8, order="C") for t in self._out]
        with self._lock:
            job = self._runner.execute_async(feeds, results)
            self._runner.wait(job)
        by_name = {
            t.name: r.astype(np.float32) / 2.0 ** t.get_attr("fix_point")
            for t, r in zip(self._out, results, strict=True)
        }
        return {name: by_name[native] for name, native in self._outputs.items()}

    def details(self) -> dict[str, Any]:
        return {"dpu_batch": self._batch}
