"""Deterministic randomness for the sandbox's world: stable hashes and cheap per-key draws.

Everything the world computes must be the same in every process and on every machine, so
nothing here uses Python's salted hash() or a shared random state.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def hash64(*parts: object) -> int:
    """A stable 64-bit hash of the parts (Python's hash() is salted per process)."""
    text = "\x1f".join(str(part) for part in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


class Draws:
    """A cheap deterministic stream of random numbers for one key (one product, one offer).

    Seeding random.Random costs more than everything else an offer needs, so values are cut
    from BLAKE2b digests of the key and a block counter instead: 8 draws per digest.
    """

    __slots__ = ("_block", "_key", "_pool")

    def __init__(self, *parts: object) -> None:
        self._key = "\x1f".join(str(part) for part in parts).encode()
        self._block = 0
        self._pool: list[int] = []

    def bits(self) -> int:
        """The next 64 random bits."""
        if not self._pool:
            digest = hashlib.blake2b(
                self._key + self._block.to_bytes(4, "big"), digest_size=64
            ).digest()
            self._block += 1
            self._pool = list(struct.unpack(">8Q", digest))
        return self._pool.pop()

    def random(self) -> float:
        """A float in [0, 1)."""
        return (self.bits() >> 11) / 2**53

    def below(self, n: int) -> int:
        """An int in [0, n) (modulo bias is below 1e-15 for the sizes used here)."""
        return self.bits() % n

    def randint(self, low: int, high: int) -> int:
        """An int in [low, high]."""
        return low + self.below(high - low + 1)

    def uniform(self, low: float, high: float) -> float:
        """A float in [low, high)."""
        return low + (high - low) * self.random()

    def choice(self, options: Sequence[T]) -> T:
        """One of the options."""
        return options[self.below(len(options))]

    def sample(self, options: Sequence[T], k: int) -> list[T]:
        """k distinct options, in random order."""
        pool = list(options)
        for i in range(k):
            j = i + self.below(len(pool) - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]

    def triangular(self, low: float, high: float, mode: float) -> float:
        """A triangular distribution between low and high, peaking at mode."""
        u = self.random()
        cut = (mode - low) / (high - low)
        if u < cut:
            return low + math.sqrt(u * (high - low) * (mode - low))
        return high - math.sqrt((1 - u) * (high - low) * (high - mode))


def unit_interval(*parts: object) -> float:
    """A stable pseudo-random number in [0, 1) for the parts."""
    return hash64(*parts) / 2**64
