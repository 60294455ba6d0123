"""How late does an open-loop generator send? asyncio timers alone vs tf2aif's `wait_until`.

    python benchmarks/send_lag.py [--rate 100] [--seconds 10]

Both schedules are the same seeded Poisson arrivals with nothing else on the event loop, so the
lag is the timer's own; it is part of every open-loop latency, because latency counts from the
scheduled send time. Prints the mean, p99 and max lag and the CPU each way costs.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from tf2aif.bench.load import wait_until
from tf2aif.bench.stats import summarize


async def asyncio_sleep(when: float) -> None:
    delay = when - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


async def lags(wait, rate: float, seconds: float) -> tuple[list[float], float]:
    rng = random.Random(0)
    out, when = [], time.perf_counter()
    cpu, end = time.process_time(), when + seconds
    while when < end:
        when += rng.expovariate(rate)
        await wait(when)
        out.append(time.perf_counter() - when)
    return out, (time.process_time() - cpu) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"Poisson {args.rate:g} req/s for {args.seconds:g} s each")
    print("| timing | mean lag ms | p99 ms | max ms | CPU share |")
    print("|---|---|---|---|---|")
    for label, wait in (("asyncio.sleep only", asyncio_sleep), ("tf2aif wait_until", wait_until)):
        lag, cpu = asyncio.run(lags(wait, args.rate, args.seconds))
        ms = summarize([x * 1e3 for x in lag])
        print(f"| {label} | {ms.mean:.3f} | {ms.p99:.3f} | {ms.max:.3f} | {cpu:.3f} |")


if __name__ == "__main__":
    main()
