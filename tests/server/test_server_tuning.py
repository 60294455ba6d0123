"""The adaptive batch cap: the cost per row decides, measured on the backend at start-up."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from tf2aif.image.server.batching import Batcher
from tf2aif.image.server.metrics import ServerMetrics
from tf2aif.image.server.tuning import BatchProfile, choose_cap, profile_batch_sizes

SIZES = [1, 2, 4, 8, 16]


def test_a_fixed_cost_per_call_is_worth_batching_up_to_the_limit():
    assert choose_cap({size: 0.002 for size in SIZES}) == 16


def test_a_cost_per_row_is_never_worth_batching():
    assert choose_cap({size: 0.002 * size for size in SIZES}) == 1


def test_the_cap_is_where_the_cost_per_row_stops_falling_by_ten_percent():
    # 1 ms per call + 0.1 ms per row: per row 1.1, 0.6, 0.35, 0.225, 0.1625 ms, each step at
    # least 10% cheaper. With 1.2 ms per row: 2.2, 1.7, 1.45, 1.325 - the step from 4 to 8
    # saves only 8.6%, so 4 is the cap; asking for 20% per step stops at 2.
    assert choose_cap({s: 0.001 + 0.0001 * s for s in SIZES}) == 16
    assert choose_cap({s: 0.001 + 0.0012 * s for s in SIZES}) == 4
    assert choose_cap({s: 0.001 + 0.0012 * s for s in SIZES}, min_gain=0.2) == 2


def test_the_search_stops_at_the_first_size_that_does_not_pay():
    def call_for(size: int):
        return lambda: time.sleep(0.002 * size)  # slow per row: no gain from batching

    profile = profile_batch_sizes(call_for, SIZES)
    assert profile.cap == 1
    assert sorted(profile.seconds) == [1, 2]  # 4, 8 and 16 were never run
    assert profile.seconds[2] >= 0.004


def test_a_fixed_cost_backend_is_measured_at_every_size():
    profile = profile_batch_sizes(lambda size: lambda: time.sleep(0.002), SIZES)
    assert profile.cap == 16 and sorted(profile.seconds) == SIZES
    per_row = profile.per_row_us()
    assert list(per_row) == ["1", "2", "4", "8", "16"]
    assert per_row["1"] > 10 * per_row["16"]
    assert profile.describe().endswith("-> batches of at most 16")


class RowModel:
    """Sleeps `fixed + per_row * rows`: a stand-in for a runtime with a known cost shape."""

    def __init__(self, fixed: float, per_row: float) -> None:
        self.fixed, self.per_row = fixed, per_row
        self.batches: list[int] = []
        self.threads: set[str] = set()

    def __call__(self, inputs):
        rows = len(inputs["x"])
        self.batches.append(rows)
        self.threads.add(threading.current_thread().name)
        time.sleep(self.fixed + self.per_row * rows)
        return {"y": inputs["x"] + 1}

    def tune(self, limit: int) -> int:
        def call_for(size: int):
            inputs = {"x": np.zeros((size, 2), np.float32)}
            return lambda: self(inputs)

        sizes = [s for s in SIZES if s <= limit]
        return profile_batch_sizes(call_for, sizes).cap


@pytest.mark.parametrize(("fixed", "per_row", "cap"), [(0.0, 0.002, 1), (0.003, 0.0, 8)])
def test_the_batcher_forms_batches_no_larger_than_the_tuned_cap(fixed, per_row, cap):
    model = RowModel(fixed, per_row)
    batcher = Batcher(
        model,
        metrics=ServerMetrics("m", "numpy"),
        max_batch_size=8,
        max_queue_delay_s=0.05,
        max_queue_size=100,
        workers=2,
    )
    batcher.start(tune=model.tune)
    try:
        assert batcher.max_batch_size == cap
        assert model.threads <= {"tf2aif-infer-0", "tf2aif-infer-1"}  # tuned on a worker
        model.batches.clear()
        arrays = [np.full((1, 2), i, np.float32) for i in range(16)]

        async def submit_all():
            return await asyncio.gather(*(batcher.submit({"x": a}) for a in arrays))

        results = asyncio.run(submit_all())
    finally:
        batcher.stop()
    for array, result in zip(arrays, results, strict=True):
        np.testing.assert_array_equal(result["y"], array + 1)
    assert sum(model.batches) == 16 and max(model.batches) == cap


def test_a_failing_tune_fails_start():
    def broken(limit: int) -> int:
        raise RuntimeError("no runtime")

    batcher = Batcher(
        lambda inputs: inputs,
        metrics=ServerMetrics("m", "numpy"),
        max_batch_size=8,
        max_queue_delay_s=0,
        max_queue_size=10,
    )
    with pytest.raises(RuntimeError, match="no runtime"):
        batcher.start(tune=broken)


def test_profile_is_frozen():
    profile = BatchProfile(seconds={1: 0.001}, cap=1)
    with pytest.raises(AttributeError):
        profile.cap = 2  # type: ignore[misc]
