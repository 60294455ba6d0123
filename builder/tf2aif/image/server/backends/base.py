"""The one interface every runtime backend implements, and helpers they share."""

from __future__ import annotations

import abc
import importlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from tf2aif.image.artifact import ArtifactInfo, TensorSpec
from tf2aif.image.server.errors import ServerError

__all__ = [
    "Arrays",
    "Backend",
    "BackendSettings",
    "bucket_for",
    "bucket_sizes",
    "cpu_count",
    "match_names",
    "require",
    "zeros_for",
]

log = logging.getLogger(__name__)

Arrays = Mapping[str, np.ndarray]


@dataclass(frozen=True, kw_only=True)
class BackendSettings:
    threads: int = 0  # intra-op threads; 0 = the runtime's default
    device: str = "auto"
    performance_hint: str = "LATENCY"
    max_batch_size: int = 32
    engine_cache: Path | None = None


class Backend(abc.ABC):
    """Loads one artifact's model and runs batches on it.

    `infer` may be called from several worker threads at once; a backend whose runtime object is
    not thread-safe keeps one per thread.
    """

    runtime: ClassVar[str]
    # Pad batches up to a few fixed sizes (1, 2, 4, ... max): runtimes that pay for every new
    # input shape (re-planning, re-allocation) then see only shapes prepared during warm-up.
    shape_buckets: ClassVar[bool] = False

    def __init__(self, info: ArtifactInfo, directory: Path, settings: BackendSettings) -> None:
        self.info = info
        self.directory = directory
        self.settings = settings
        self.model_path = directory / info.model_file

    @abc.abstractmethod
    def load(self) -> None:
        """Read and compile the model; raise ServerError with what to do when that fails."""

    @abc.abstractmethod
    def infer(self, inputs: Arrays) -> dict[str, np.ndarray]:
        """Run one batch: arrays by artifact input name in, arrays by artifact output name out."""

    def details(self) -> dict[str, Any]:
        """Runtime facts shown in the model metadata (versions, device, threads)."""
        return {}

    def check(self, inputs: Arrays) -> None:
        """Refuse (ApiError 400) a request's inputs this runtime cannot take intact. Runs per
        request before batching, so one bad request never fails the requests batched with it."""
        return None

    def run(self, inputs: Arrays) -> dict[str, np.ndarray]:
        """What the batcher calls: `infer`, on rows padded up to a bucket size if the runtime
        wants fixed shapes; the padding rows are cut off the outputs."""
        if not (self.shape_buckets and self.batchable):
            return self.infer(inputs)
        rows = next(iter(inputs.values())).shape[0]
        size = bucket_for(rows, self.settings.max_batch_size)
        if size == rows:
            return self.infer(inputs)
        padded = {name: _pad_rows(array, size) for name, array in inputs.items()}
        return {name: array[:rows] for name, array in self.infer(padded).items()}

    def warm_up(self) -> None:
        """Run every batch size the server will use (buckets, or 1 and the largest) on zeros."""
        largest = self.settings.max_batch_size if self.batchable else 1
        sizes = bucket_sizes(largest) if self.shape_buckets else sorted({1, largest})
        for size in sizes:
            self.infer(zeros_for(self.info.inputs, size))

    @property
    def batchable(self) -> bool:
        specs = (*self.info.inputs, *self.info.outputs)
        return all(spec.shape and spec.shape[0] == -1 for spec in specs)

    def close(self) -> None:
        return None


def require(package: str, runtime: str) -> ModuleType:
    """Import a runtime package, or say which one is missing and how to get it."""
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise ServerError(
            f"runtime {runtime!r} needs the Python package {package!r}, which cannot be imported "
            f"here ({exc}); use the {runtime} image or install it (pip install 'tf2aif[{runtime}]')"
        ) from exc


def zeros_for(specs: Sequence[TensorSpec], rows: int) -> dict[str, np.ndarray]:
    """Zero inputs (empty strings for BYTES): dim 0 = rows, other dynamic dims = 1."""
    from tf2aif.image.server.protocol import numpy_dtype

    arrays = {}
    for spec in specs:
        shape = [rows if i == 0 and d == -1 else max(d, 1) for i, d in enumerate(spec.shape)]
        arrays[spec.name] = _blank(shape, numpy_dtype(spec.datatype))
    return arrays


def _blank(shape: Sequence[int], dtype: np.dtype) -> np.ndarray:
    """Zeros, but b"" in an object (BYTES) array: a runtime takes no int 0 for a string."""
    if dtype == np.dtype(object):
        return np.full(shape, b"", dtype=object)
    return np.zeros(shape, dtype=dtype)


def match_names(wanted: Sequence[str], native: Sequence[str], what: str) -> dict[str, str]:
    """Map artifact tensor names to the runtime's: by name when all match, else by position."""
    if set(wanted) <= set(native):
        return {name: name for name in wanted}
    if len(wanted) == len(native):
        log.info(
            "%s names %s differ from the runtime's %s; matching by position", what, wanted, native
        )
        return dict(zip(wanted, native, strict=True))
    raise ServerError(
        f"the artifact declares {what} {list(wanted)} but the model has {list(native)}; "
        "the artifact does not match its model file"
    )


def cpu_count() -> int:
    """CPUs this process may run on (the container's, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def bucket_sizes(largest: int) -> list[int]:
    """1, 2, 4, ... below `largest`, then `largest`."""
    sizes, size = [], 1
    while size < largest:
        sizes.append(size)
        size *= 2
    return [*sizes, max(1, largest)]


def bucket_for(rows: int, largest: int) -> int:
    """The smallest bucket holding `rows`; a request above the largest batch runs as it is."""
    if rows >= largest:
        return rows
    return next(size for size in bucket_sizes(largest) if size >= rows)


def _pad_rows(array: np.ndarray, rows: int) -> np.ndarray:
    padding = _blank((rows - array.shape[0], *array.shape[1:]), array.dtype)
    return np.concatenate([array, padding])
