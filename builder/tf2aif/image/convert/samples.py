"""Samples from the user's calibration / fidelity functions, checked and normalised.

A sample function yields model inputs: a dict by input name, or a bare array when the model has
one input; each array is one sample (unbatched) or a batch of one. Fidelity functions may also
yield `(inputs, label)`. Every sample becomes a dict of batch-1 arrays in the model's dtypes, so
the TFLite, NNCF and onnxruntime quantizers and the fidelity gate all see the same data.
"""

from __future__ import annotations

import itertools
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tf2aif.errors import PluginError, did_you_mean
from tf2aif.image.artifact import TensorSpec
from tf2aif.image.convert.spec import PluginRef
from tf2aif.image.plugins import load_function

__all__ = [
    "NUMPY_DTYPES",
    "Samples",
    "load_samples",
    "synthetic_samples",
]

SYNTHETIC_COUNT = 32
SYNTHETIC_DYNAMIC_DIM = 32  # size given to dynamic non-batch dims of synthetic inputs

NUMPY_DTYPES = {
    "FP32": np.float32,
    "FP16": np.float16,
    "FP64": np.float64,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "BOOL": np.bool_,
    "BYTES": np.object_,  # strings: str or bytes objects, as TensorFlow and onnxruntime take them
}

Inputs = dict[str, np.ndarray]


@dataclass(frozen=True, kw_only=True)
class Samples:
    inputs: tuple[Inputs, ...]
    labels: tuple[int, ...] | None  # one per sample, or None when unlabelled
    source: str  # "app/calibration.py:samples", or "synthetic"

    def __len__(self) -> int:
        return len(self.inputs)


def load_samples(
    ref: PluginRef,
    *,
    root: Path,
    inputs: tuple[TensorSpec, ...],
    allow_labels: bool,
) -> Samples:
    """Call `ref` and return at most `ref.count` normalised samples (all it yields when None).

    The plan resolves `count` from the manifest (the schema's default when unset), so a spec it
    wrote always carries one.
    """
    where = f"{ref.module}:{ref.function}"
    func = load_function(root / ref.module, ref.function)
    limit = ref.count
    try:
        produced = func()
        if not isinstance(produced, Iterable) or isinstance(produced, (str, bytes, Mapping)):
            raise _SampleError(f"must return or yield samples, returned {type(produced).__name__}")
        items = list(itertools.islice(produced, limit))
    except _SampleError as exc:
        raise PluginError(f"{where}: {exc}") from None
    except Exception as exc:
        last = traceback.extract_tb(exc.__traceback__)[-1]
        raise PluginError(
            f"{where}: raised {type(exc).__name__}: {exc} (at {last.filename}:{last.lineno})"
        ) from exc
    if not items:
        raise PluginError(f"{where}: yielded no samples")
    try:
        pairs = [_split_label(item, allow_labels) for item in items]
        normalised = tuple(_normalise(sample, inputs, i) for i, (sample, _) in enumerate(pairs))
    except _SampleError as exc:
        raise PluginError(f"{where}: {exc}") from None
    labels = [label for _, label in pairs]
    has_labels = all(label is not None for label in labels)
    if any(label is not None for label in labels) and not has_labels:
        raise PluginError(f"{where}: some samples carry a label and some do not")
    return Samples(inputs=normalised, labels=tuple(labels) if has_labels else None, source=where)


def synthetic_samples(inputs: tuple[TensorSpec, ...], *, seed: int = 0) -> Samples:
    """Uniform [0, 1) inputs for a fidelity check when the manifest names no samples."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(SYNTHETIC_COUNT):
        sample = {}
        for spec in inputs:
            shape = [1] + [d if d >= 0 else SYNTHETIC_DYNAMIC_DIM for d in spec.shape[1:]]
            if spec.datatype == "BYTES":  # a few words of random digits
                words = rng.integers(0, 1000, [*shape, 4]).astype(str)
                sample[spec.name] = np.vectorize(" ".join, signature="(n)->()")(words).astype(
                    object
                )
            else:
                sample[spec.name] = rng.random(shape).astype(NUMPY_DTYPES[spec.datatype])
        samples.append(sample)
    return Samples(inputs=tuple(samples), labels=None, source="synthetic")


class _SampleError(Exception):
    pass


def _split_label(item: Any, allow_labels: bool) -> tuple[Any, int | None]:
    if isinstance(item, tuple) and len(item) == 2 and _is_label(item[1]):
        if not allow_labels:
            raise _SampleError("calibration samples must be inputs only, got (inputs, label)")
        return item[0], int(item[1])
    return item, None


def _is_label(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) or (
        isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iu"
    )


def _normalise(sample: Any, specs: tuple[TensorSpec, ...], index: int) -> Inputs:
    names = [spec.name for spec in specs]
    if isinstance(sample, Mapping):
        given = {str(k): v for k, v in sample.items()}
    elif len(specs) == 1:
        given = {names[0]: sample}
    else:
        raise _SampleError(
            f"sample {index}: the model has {len(specs)} inputs ({', '.join(names)}); "
            f"yield a dict by input name, got {type(sample).__name__}"
        )
    unknown = sorted(set(given) - set(names))
    if unknown:
        hint = did_you_mean(unknown[0], names)
        raise _SampleError(
            f"sample {index}: unknown input {unknown[0]!r}{hint}; "
            f"the model's inputs are: {', '.join(names)}"
        )
    missing = [name for name in names if name not in given]
    if missing:
        raise _SampleError(f"sample {index}: missing input(s) {', '.join(missing)}")
    return {spec.name: _to_batch_of_one(given[spec.name], spec, index) for spec in specs}


def _to_batch_of_one(value: Any, spec: TensorSpec, index: int) -> np.ndarray:
    try:
        array = np.asarray(value)
    except Exception as exc:
        raise _SampleError(
            f"sample {index}: input {spec.name!r} is not array-like: {exc}"
        ) from None
    want = NUMPY_DTYPES[spec.datatype]
    if not _castable(array.dtype, np.dtype(want)):
        raise _SampleError(
            f"sample {index}: input {spec.name!r} has dtype {array.dtype}, "
            f"the model takes {np.dtype(want).name}"
        )
    expected = list(spec.shape)
    if array.ndim == len(expected) - 1:
        array = array[None]
    if array.ndim != len(expected) or array.shape[0] != 1 or not _dims_match(array.shape, expected):
        unbatched = ["?" if d < 0 else d for d in expected[1:]]
        raise _SampleError(
            f"sample {index}: input {spec.name!r} has shape {list(array.shape)}; expected "
            f"{unbatched} or [1, {', '.join(map(str, unbatched))}] (one sample)"
        )
    return np.ascontiguousarray(array, dtype=want)


def _castable(have: np.dtype, want: np.dtype) -> bool:
    if want.kind == "O":  # strings: numpy str/bytes arrays or object arrays of them
        return have.kind in "USO"
    if want.kind == "f":
        return have.kind in "fiub"
    if want.kind in "iu":
        return have.kind in "iub"
    return have.kind == want.kind


def _dims_match(shape: tuple[int, ...], expected: list[int]) -> bool:
    return all(want < 0 or have == want for have, want in zip(shape[1:], expected[1:], strict=True))
