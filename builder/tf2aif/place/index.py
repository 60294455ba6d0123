"""A max-tree over nodes in cluster order, so first-fit skips full nodes in O(log n).

Each leaf holds a node's free memory, free CPU (cores under the cap), free accelerator
capacity, the speed a newcomer could at best get on the device running the model, and the
smallest load a newcomer already failed to add; each inner entry the maxima of its children. `next_fit` returns the first node at or
after a position whose free amounts may cover a demand, pruning every subtree whose maxima
cannot: a necessary condition only, the exact check follows in the policy.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

__all__ = ["FreeIndex"]

_NONE = -math.inf


class FreeIndex:
    def __init__(self, free: list[tuple[float, ...]]) -> None:
        self.size = 1
        while self.size < max(1, len(free)):
            self.size *= 2
        self.tree = [(_NONE,) * 5] * (2 * self.size)
        for i, value in enumerate(free):
            self.tree[self.size + i] = value
        for i in range(self.size - 1, 0, -1):
            self.tree[i] = self._merge(self.tree[2 * i], self.tree[2 * i + 1])

    @staticmethod
    def _merge(a, b):
        return tuple(max(x, y) for x, y in zip(a, b, strict=True))

    def update(self, position: int, free: tuple[float, ...]) -> None:
        i = self.size + position
        self.tree[i] = free
        i //= 2
        while i:
            self.tree[i] = self._merge(self.tree[2 * i], self.tree[2 * i + 1])
            i //= 2

    def next_fit(self, start: int, need: tuple[float, ...]) -> int | None:
        return self._search(1, 0, self.size, start, need)

    def _search(self, i: int, lo: int, hi: int, start: int, need) -> int | None:
        if hi <= start:
            return None
        value = self.tree[i]
        if any(v < n for v, n in zip(value, need, strict=True)):
            return None
        if hi - lo == 1:
            return lo
        mid = (lo + hi) // 2
        found = self._search(2 * i, lo, mid, start, need)
        return found if found is not None else self._search(2 * i + 1, mid, hi, start, need)

    def fits(self, need: tuple[float, ...]) -> Iterator[int]:
        """Every position that may fit, in order."""
        position = self.next_fit(0, need)
        while position is not None:
            yield position
            position = self.next_fit(position + 1, need)
