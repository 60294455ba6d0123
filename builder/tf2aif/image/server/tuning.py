"""Adaptive batch cap, measured at start-up: the largest batch that still makes rows cheaper.

A runtime call has a fixed cost (dispatch, thread wake-ups, kernel set-up) and a cost per row.
Batching spreads the fixed cost, so for a small model a call on 32 rows costs about as much as a
call on one. For a model whose CPU kernels are already busy at batch 1, bigger batches only
spill the caches: MobileNetV2 on TFLite cost 8.9 ms per image at batch 1 and 21 ms per image at
batch 16 on a 2-core VM. There, batching only adds latency and loses throughput.

So after warm-up, the server times runtime calls at batch 1, 2, 4, ... up to the limit, each
size against the cap so far, and keeps doubling while the cost per row falls by at least
`min_gain`. The first size that does not pay ends the search: the previous size is the cap.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["MIN_GAIN", "BatchProfile", "choose_cap", "profile_batch_sizes"]

log = logging.getLogger(__name__)

MIN_GAIN = 0.1  # a bigger batch must cut the cost per row by 10% to be worth its latency
TARGET_SECONDS = 0.03  # compare two batch sizes for about this long (several scheduler slices)
MIN_CALLS, MAX_CALLS = 3, 2000  # ... in this many calls of each; the fastest call counts


@dataclass(frozen=True, kw_only=True)
class BatchProfile:
    seconds: Mapping[int, float]  # batch size -> fastest runtime call, seconds
    cap: int

    def per_row_us(self) -> dict[str, float]:
        return {str(size): round(1e6 * t / size, 2) for size, t in sorted(self.seconds.items())}

    def describe(self) -> str:
        costs = ", ".join(f"{size}: {us} us" for size, us in self.per_row_us().items())
        return f"cost per row by batch size {{{costs}}} -> batches of at most {self.cap}"


def choose_cap(seconds: Mapping[int, float], min_gain: float = MIN_GAIN) -> int:
    """Walk the sizes upwards while each one cuts the cost per row by `min_gain`."""
    sizes = sorted(seconds)
    cap = sizes[0]
    for size in sizes[1:]:
        if seconds[size] / size > (1 - min_gain) * seconds[cap] / cap:
            break
        cap = size
    return cap


def _race(calls: Mapping[int, Callable[[], object]], sizes: Sequence[int], best: dict[int, float]):
    """Time the calls of `sizes` alternately, so that a neighbour's burst of CPU on this shared
    machine slows both alike; keep each size's fastest call in `best`."""
    first = 0.0
    for size in sizes:  # the first call of a shape may pay for set-up: not measured
        started = time.perf_counter()
        calls[size]()
        first += time.perf_counter() - started
    count = min(MAX_CALLS, max(MIN_CALLS, math.ceil(TARGET_SECONDS / max(first, 1e-6))))
    for _ in range(count):
        for size in sizes:
            started = time.perf_counter()
            calls[size]()
            elapsed = time.perf_counter() - started
            best[size] = min(best.get(size, elapsed), elapsed)


def profile_batch_sizes(
    call_for: Callable[[int], Callable[[], object]],
    sizes: Sequence[int],
    *,
    min_gain: float = MIN_GAIN,
) -> BatchProfile:
    """Compare each size with the cap so far, ascending, until a size stops paying."""
    ordered = sorted(sizes)
    cap = ordered[0]
    calls = {cap: call_for(cap)}
    best: dict[int, float] = {}
    if len(ordered) == 1:
        _race(calls, [cap], best)
    for size in ordered[1:]:
        calls[size] = call_for(size)
        _race(calls, [cap, size], best)
        if choose_cap({cap: best[cap], size: best[size]}, min_gain) != size:
            break
        cap = size
    return BatchProfile(seconds=best, cap=cap)
