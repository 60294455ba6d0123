"""How busy processes share c cores: the law of how many are busy, and each one's share.

Each of n server processes is busy independently with probability b_k; a busy process with K
others busy gets min(1, c / (1 + K)) of a core. K is Poisson-binomial, so the expected share
E[min(1, c / (1 + K))] follows from its law. queueing.shared_device_independent slows each
process by this share; the placement's cluster state keeps it per node as a latency bound.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence

__all__ = ["busy_fixed_point", "core_share", "core_shares", "poisson_binomial"]


def poisson_binomial(probabilities: Sequence[float]) -> list[float]:
    """P(K = k) for K a sum of independent Bernoulli(probabilities)."""
    dist = [1.0]
    for b in probabilities:
        keep = 1.0 - b
        # P'(k) = P(k - 1) b + P(k) (1 - b), one list per step
        dist = [
            dist[0] * keep,
            *[low * b + high * keep for low, high in zip(dist[:-1], dist[1:], strict=True)],
            dist[-1] * b,
        ]
    return dist


def _leave_one_out(dist: Sequence[float], b: float) -> list[float]:
    """Divide the Poisson-binomial polynomial by (1 - b + b x): the law without one Bernoulli.
    Forward recursion when b <= 1/2, backward otherwise, so the division stays stable."""
    n = len(dist) - 1
    q = [0.0] * n
    if b <= 0.5:
        carry = 0.0
        keep = 1.0 - b
        for i in range(n):
            carry = (dist[i] - b * carry) / keep
            q[i] = carry if carry > 0.0 else 0.0
    else:
        carry = 0.0
        keep = 1.0 - b
        for i in range(n, 0, -1):
            carry = (dist[i] - keep * carry) / b
            q[i - 1] = carry if carry > 0.0 else 0.0
    return q


@functools.cache
def _share_table(cores: int, size: int) -> tuple[float, ...]:
    """min(1, c / (1 + k)) for k = 0 .. size - 1: a busy process's share with k others busy."""
    return tuple(min(1.0, cores / (1.0 + k)) for k in range(size))


def core_share(dist: Sequence[float], cores: int) -> float:
    """E[min(1, c / (1 + K))] for K with law `dist`: the share of a core one busy process gets."""
    return sum(map(operator.mul, dist, _share_table(cores, len(dist))))


def core_shares(busy: Sequence[float], cores: int) -> list[float]:
    """Per process k busy with probability busy[k]: the core share it gets while busy, with the
    others busy independently (core_share over the law of the others, leaving k out)."""
    full = poisson_binomial(busy)
    return [core_share(_leave_one_out(full, b), cores) for b in busy]


def busy_fixed_point(rhos: Sequence[float], cores: int) -> list[float] | None:
    """Busy probabilities b_k = rho_k / s_k(b); None when some process cannot keep up."""
    busy = list(rhos)
    for _ in range(100):
        nxt = [rho / speed for rho, speed in zip(rhos, core_shares(busy, cores), strict=True)]
        if any(b >= 1.0 for b in nxt):
            return None
        delta = max((abs(a - b) for a, b in zip(nxt, busy, strict=True)), default=0.0)
        busy = nxt
        if delta < 1e-4:  # busy probabilities to 1e-4 move latencies by well under 1%
            break
    return busy
