"""The dynamic batcher with a real numpy model: batches form, rows go back to the right request."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tf2aif.image.server.batching import Batcher, InferenceFailed, QueueFull, ShuttingDown
from tf2aif.image.server.metrics import ServerMetrics


class AffineModel:
    """y = 2x + 1 per row; records the batch sizes it was called with."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.batches: list[int] = []
        self.seconds = seconds
        self.threads: set[str] = set()

    def __call__(self, inputs):
        self.batches.append(len(inputs["x"]))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.seconds)
        return {"y": inputs["x"] * 2 + 1, "total": inputs["x"].sum(axis=1, keepdims=True)}


def _batcher(model, **options) -> Batcher:
    settings = {"max_batch_size": 8, "max_queue_delay_s": 0.05, "max_queue_size": 100} | options
    return Batcher(model, metrics=ServerMetrics("m", "numpy"), **settings)


def _rows(count: int, width: int = 3, start: int = 0) -> list[np.ndarray]:
    return [np.full((1, width), start + i, np.float32) for i in range(count)]


async def _submit_all(batcher: Batcher, arrays: list[np.ndarray]):
    return await asyncio.gather(*(batcher.submit({"x": a}) for a in arrays), return_exceptions=True)


def test_concurrent_requests_share_batches_and_get_their_own_rows():
    model = AffineModel()
    batcher = _batcher(model)
    batcher.start()
    try:
        arrays = _rows(20)
        results = asyncio.run(_submit_all(batcher, arrays))
    finally:
        batcher.stop()
    for array, result in zip(arrays, results, strict=True):
        np.testing.assert_array_equal(result["y"], array * 2 + 1)
        np.testing.assert_array_equal(result["total"], array.sum(axis=1, keepdims=True))
    assert sum(model.batches) == 20
    assert max(model.batches) == 8 and len(model.batches) == 3  # 8 + 8 + 4


def test_multi_row_requests_are_not_split_and_never_exceed_the_limit():
    model = AffineModel()
    batcher = _batcher(model, max_batch_size=5)
    batcher.start()
    try:
        arrays = [np.ones((3, 2), np.float32) * i for i in range(4)]
        results = asyncio.run(_submit_all(batcher, arrays))
    finally:
        batcher.stop()
    assert [r["y"].shape for r in results] == [(3, 2)] * 4
    assert model.batches == [3, 3, 3, 3]  # 3 + 3 > 5: each runs alone


def test_different_shapes_are_not_mixed():
    model = AffineModel()
    batcher = _batcher(model)
    batcher.start()
    try:
        arrays = _rows(3, width=2) + _rows(3, width=5)
        results = asyncio.run(_submit_all(batcher, arrays))
    finally:
        batcher.stop()
    assert [r["y"].shape[1] for r in results] == [2, 2, 2, 5, 5, 5]
    assert model.batches == [3, 3]


def test_zero_delay_batches_only_what_queued_while_busy():
    model = AffineModel(seconds=0.1)
    batcher = _batcher(model, max_queue_delay_s=0.0, max_batch_size=32)
    batcher.start()

    async def first_then_nine():
        first = asyncio.ensure_future(batcher.submit({"x": _rows(1)[0]}))
        await asyncio.sleep(0.03)  # the first is running alone by now
        await _submit_all(batcher, _rows(9))
        await first

    try:
        asyncio.run(first_then_nine())
    finally:
        batcher.stop()
    assert model.batches == [1, 9]  # no waiting when alone; the rest piled up meanwhile


def test_full_queue_refuses_and_stop_drains_accepted_requests():
    model = AffineModel()
    batcher = _batcher(model, max_queue_size=3, max_queue_delay_s=0.3, max_batch_size=64)
    batcher.start()

    async def scenario():
        accepted = [asyncio.ensure_future(batcher.submit({"x": a})) for a in _rows(3)]
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFull, match="3 requests are already waiting"):
            await batcher.submit({"x": _rows(1)[0]})
        assert batcher.pending == 3
        stopping = asyncio.get_running_loop().run_in_executor(None, batcher.stop, 5)
        results = await asyncio.gather(*accepted)
        await stopping
        with pytest.raises(ShuttingDown):
            await batcher.submit({"x": _rows(1)[0]})
        return results

    results = asyncio.run(scenario())
    assert [r["y"][0, 0] for r in results] == [1.0, 3.0, 5.0]
    assert batcher.pending == 0


def test_a_failing_batch_fails_its_requests_only():
    calls = []

    def flaky(inputs):
        calls.append(len(inputs["x"]))
        if inputs["x"][0, 0] < 0:
            raise RuntimeError("negative input")
        return {"y": inputs["x"]}

    batcher = _batcher(flaky, max_batch_size=1)
    batcher.start()
    try:
        results = asyncio.run(_submit_all(batcher, [-np.ones((1, 2)), np.ones((1, 2))]))
    finally:
        batcher.stop()
    assert isinstance(results[0], InferenceFailed)
    assert str(results[0]) == "inference failed: RuntimeError: negative input"
    np.testing.assert_array_equal(results[1]["y"], np.ones((1, 2)))


def test_warm_up_runs_on_every_worker_and_its_failure_is_raised():
    model = AffineModel()
    warmed = []
    batcher = _batcher(model, workers=3)
    batcher.start(warm_up=lambda: warmed.append(threading.current_thread().name))
    batcher.stop()
    assert sorted(warmed) == ["tf2aif-infer-0", "tf2aif-infer-1", "tf2aif-infer-2"]

    def broken():
        raise RuntimeError("cannot allocate")

    with pytest.raises(RuntimeError, match="cannot allocate"):
        _batcher(model).start(warm_up=broken)


def test_several_workers_run_batches_in_parallel():
    model = AffineModel(seconds=0.2)
    batcher = _batcher(model, workers=2, max_batch_size=1)
    batcher.start()
    try:
        started = time.perf_counter()
        asyncio.run(_submit_all(batcher, _rows(4)))
        elapsed = time.perf_counter() - started
    finally:
        batcher.stop()
    assert model.threads == {"tf2aif-infer-0", "tf2aif-infer-1"}
    assert elapsed < 0.75  # 4 x 0.2 s on two workers: ~0.4 s, not 0.8 s


def test_inline_runs_on_the_callers_thread_only_when_nothing_is_queued_or_running():
    model = AffineModel(seconds=0.3)
    batcher = _batcher(model, max_queue_delay_s=0.0)
    batcher.start()
    x = np.ones((1, 3), np.float32)
    try:
        np.testing.assert_array_equal(batcher.try_inline({"x": x})["y"], x * 2 + 1)
        assert model.threads == {threading.current_thread().name}

        async def busy_then_inline():
            queued = asyncio.ensure_future(batcher.submit({"x": x}))
            await asyncio.sleep(0.1)  # a worker now runs it (0.3 s)
            refused = batcher.try_inline({"x": x})
            await queued
            # the worker hands the answer over before it counts itself idle: wait for that
            for _ in range(500):
                after = batcher.try_inline({"x": x})
                if after is not None:
                    return refused, after
                await asyncio.sleep(0.01)
            return refused, None

        refused, after = asyncio.run(busy_then_inline())
        assert refused is None  # a batch was running: the caller must queue
        np.testing.assert_array_equal(after["y"], x * 2 + 1)
        assert model.batches == [1, 1, 1]
    finally:
        batcher.stop()
    assert batcher.try_inline({"x": x}) is None  # stopped: nothing runs inline either


def test_a_failing_inline_call_raises_inference_failed():
    def broken(inputs):
        raise ValueError("bad weights")

    batcher = _batcher(broken)
    batcher.start()
    try:
        with pytest.raises(InferenceFailed, match="ValueError: bad weights"):
            batcher.try_inline({"x": np.ones((1, 3), np.float32)})
        # the failure left nothing counted as running: the next request may run inline again
        with pytest.raises(InferenceFailed):
            batcher.try_inline({"x": np.ones((1, 3), np.float32)})
    finally:
        batcher.stop()


@pytest.mark.fuzz
@settings(deadline=None)
@given(
    plan=st.lists(
        st.tuples(st.booleans(), st.integers(min_value=1, max_value=4)), min_size=1, max_size=12
    )
)
def test_inline_and_queued_requests_each_get_their_own_rows(plan):
    """Any mix of inline attempts and queued requests, of any row counts: every request gets
    exactly its rows back, whichever way it ran, and an inline attempt runs only when idle."""
    model = AffineModel()
    batcher = _batcher(model, max_queue_delay_s=0.0)
    batcher.start()

    async def run():
        results, queued = [], []
        for index, (inline, rows) in enumerate(plan):
            x = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3) + 100 * index
            if inline:
                idle = batcher.pending == 0 and not queued
                got = batcher.try_inline({"x": x})
                if got is None:
                    assert not idle or batcher._running  # refused only while busy
                    got = await batcher.submit({"x": x})
                results.append((x, got))
            else:
                queued.append((x, asyncio.ensure_future(batcher.submit({"x": x}))))
        for x, future in queued:
            results.append((x, await future))
        return results

    try:
        for x, got in asyncio.run(run()):
            np.testing.assert_array_equal(got["y"], x * 2 + 1)
            np.testing.assert_array_equal(got["total"], x.sum(axis=1, keepdims=True))
    finally:
        batcher.stop()
