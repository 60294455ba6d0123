"""Dynamic batching: requests from the event loop are queued, worker threads join them along
dim 0 into one runtime call, and the rows are split back to each request's future.

The event loop never runs inference. A worker takes the oldest request, then keeps taking queued
requests of the same shape until the batch holds `max_batch_size` rows or the oldest request has
waited `max_queue_delay` (0: take only what is already queued - requests pile up while the
previous batch runs, so batches grow with load and a lone request never waits).

`try_inline` is the one exception, for models cheaper than the hand-off itself: a request that
finds nothing queued and nothing running runs on the caller's thread (see ModelServer.inline).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tf2aif.image.server.metrics import ServerMetrics

__all__ = ["Batcher", "InferenceFailed", "QueueFull", "ShuttingDown"]

log = logging.getLogger(__name__)

Arrays = Mapping[str, np.ndarray]
_STOP = object()  # one per worker, queued behind every request accepted before stop()
_TUNE = object()  # asks one worker to measure the batch cap, on its own runtime objects


class QueueFull(Exception):
    pass


class ShuttingDown(Exception):
    pass


class InferenceFailed(Exception):
    pass


@dataclass(kw_only=True, eq=False)
class _Pending:
    inputs: Arrays
    rows: int
    key: tuple[Any, ...]  # only requests with equal keys (shapes past dim 0, dtypes) batch together
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)


def batch_key(inputs: Arrays) -> tuple[Any, ...]:
    return tuple((name, array.shape[1:], array.dtype.str) for name, array in inputs.items())


class Batcher:
    def __init__(
        self,
        infer: Callable[[Arrays], Arrays],
        *,
        metrics: ServerMetrics,
        max_batch_size: int,
        max_queue_delay_s: float,
        max_queue_size: int,
        workers: int = 1,
    ) -> None:
        self._infer = infer
        self._metrics = metrics
        self.max_batch_size = max(1, max_batch_size)
        self.max_queue_delay_s = max_queue_delay_s
        self.max_queue_size = max(1, max_queue_size)
        self._workers = [
            threading.Thread(target=self._work, name=f"tf2aif-infer-{i}", daemon=True)
            for i in range(max(1, workers))
        ]
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pending = 0
        self._running = 0  # batches being run, by workers or inline
        self._stopping = False
        self._warm_up: Callable[[], None] | None = None
        self._warmed: list[threading.Event] = []
        self._warm_errors: list[BaseException] = []
        self._tune: Callable[[int], int] | None = None
        self._tuned = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(
        self,
        warm_up: Callable[[], None] | None = None,
        tune: Callable[[int], int] | None = None,
    ) -> None:
        """Start the workers; each runs `warm_up` in its own thread first. Then the first worker
        runs `tune(max_batch_size)`, alone, and its answer becomes the largest batch formed.
        Blocks until done."""
        self._warm_up = warm_up
        self._warmed = [threading.Event() for _ in self._workers]
        for worker in self._workers:
            worker.start()
        for event in self._warmed:
            event.wait()
        if tune is not None and not self._warm_errors:
            self._tune = tune
            self._tuned.clear()
            self._queue.put(_TUNE)  # served by whichever worker is free: all are idle now
            self._tuned.wait()
        if self._warm_errors:
            self.stop(timeout=5)
            raise self._warm_errors[0]

    def stop(self, timeout: float | None = None) -> None:
        """Refuse new requests, finish every accepted one, then end the workers."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
        for _ in self._workers:
            self._queue.put(_STOP)
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in self._workers:
            if worker.is_alive():
                worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    @property
    def pending(self) -> int:
        return self._pending

    # -- event loop side ---------------------------------------------------------------------

    async def submit(self, inputs: Arrays) -> Arrays:
        """Queue one request's inputs (batched along dim 0) and wait for its outputs."""
        with self._lock:
            if self._stopping:
                raise ShuttingDown("the server is shutting down")
            if self._pending >= self.max_queue_size:
                raise QueueFull(f"{self._pending} requests are already waiting")
            self._pending += 1
            self._metrics.queue_depth.set(self._pending)
        loop = asyncio.get_running_loop()
        rows = next(iter(inputs.values())).shape[0] if inputs else 1
        item = _Pending(
            inputs=inputs, rows=rows, key=batch_key(inputs), future=loop.create_future(), loop=loop
        )
        self._queue.put(item)
        return await item.future

    def try_inline(self, inputs: Arrays) -> Arrays | None:
        """Run one request on the calling thread if no request is queued or running; None when
        busy (the caller then submits it). Saves two thread switches and the wake-up of the
        caller's event loop; blocks that loop for one runtime call, so only for cheap models."""
        with self._lock:
            if self._stopping or self._pending or self._running:
                return None
            self._running += 1
        started = time.perf_counter()
        try:
            outputs = self._infer(inputs)
        except Exception as exc:
            log.exception("inference failed for an inline request")
            raise InferenceFailed(f"inference failed: {type(exc).__name__}: {exc}") from None
        finally:
            with self._lock:
                self._running -= 1
        self._metrics.stages["inference"].observe(time.perf_counter() - started)
        self._metrics.batch_size.observe(next(iter(inputs.values())).shape[0] if inputs else 1)
        return outputs

    # -- worker side -------------------------------------------------------------------------

    def _work(self) -> None:
        index = self._workers.index(threading.current_thread())
        try:
            if self._warm_up is not None:
                self._warm_up()
        except BaseException as exc:
            self._warm_errors.append(exc)
            return
        finally:
            self._warmed[index].set()
        carry = None
        while True:
            first = carry if carry is not None else self._queue.get()
            if first is _STOP:
                return
            if first is _TUNE:
                self._run_tune()
                continue
            batch, carry = self._collect(first)
            self._run(batch)

    def _run_tune(self) -> None:
        assert self._tune is not None
        try:
            self.max_batch_size = max(1, min(self.max_batch_size, self._tune(self.max_batch_size)))
        except BaseException as exc:
            self._warm_errors.append(exc)
        finally:
            self._tuned.set()

    def _collect(self, first: _Pending) -> tuple[list[_Pending], Any]:
        """Take compatible queued requests after `first`; return the batch and any leftover."""
        batch, rows = [first], first.rows
        deadline = first.enqueued + self.max_queue_delay_s
        while rows < self.max_batch_size:
            timeout = deadline - time.perf_counter()
            try:
                item = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if not isinstance(item, _Pending) or item.key != first.key:
                return batch, item
            if rows + item.rows > self.max_batch_size:
                return batch, item
            batch.append(item)
            rows += item.rows
        return batch, None

    def _run(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        with self._lock:
            self._pending -= len(batch)
            self._running += 1
            self._metrics.queue_depth.set(self._pending)
        try:
            self._run_batch(batch, started)
        finally:
            with self._lock:
                self._running -= 1

    def _run_batch(self, batch: list[_Pending], started: float) -> None:
        for item in batch:
            self._metrics.stages["queue"].observe(started - item.enqueued)
        rows = [item.rows for item in batch]
        try:
            outputs = self._infer(_concat(batch))
            self._metrics.stages["inference"].observe(time.perf_counter() - started)
            self._metrics.batch_size.observe(sum(rows))
            results = _split(outputs, rows)
        except Exception as exc:
            log.exception("inference failed for a batch of %d rows", sum(rows))
            failure = InferenceFailed(f"inference failed: {type(exc).__name__}: {exc}")
            _hand_back(batch, [None] * len(batch), failure)
            return
        _hand_back(batch, results, None)


def _concat(batch: list[_Pending]) -> Arrays:
    if len(batch) == 1:
        return batch[0].inputs
    return {name: np.concatenate([item.inputs[name] for item in batch]) for name in batch[0].inputs}


def _split(outputs: Arrays, rows: list[int]) -> list[Arrays]:
    if len(rows) == 1:
        return [outputs]
    total = sum(rows)
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:
            raise ValueError(f"output {name!r} has shape {list(array.shape)}, not {total} rows")
    offsets = np.cumsum(rows)[:-1]
    parts = {name: np.split(array, offsets) for name, array in outputs.items()}
    return [{name: parts[name][i] for name in outputs} for i in range(len(rows))]


def _hand_back(batch: list[_Pending], results: list[Any], error: BaseException | None) -> None:
    """Settle a batch's futures with one wake-up of each event loop, not one per request."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Any]]] = {}
    for item, result in zip(batch, results, strict=True):
        by_loop.setdefault(item.loop, []).append((item.future, result))
    for loop, settled in by_loop.items():
        loop.call_soon_threadsafe(_settle, settled, error)


def _settle(settled: list[tuple[asyncio.Future, Any]], error: BaseException | None) -> None:
    for future, result in settled:
        if future.done():  # the client went away and its handler was cancelled
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
