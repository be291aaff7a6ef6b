"""Sequence-length buckets: which measured benchmark length stands for a call's length.

Each measured length owns the lengths from the geometric mean with the next shorter measured
length up to just below the geometric mean with the next longer one; the shortest starts at 1
and the longest is unbounded. Measured 1024, 4096 and 16384 give 1-2047, 2048-8191 and 8192+.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RULE = ("a call of sequence length N runs the kernel chosen for the bucket holding N; each bucket "
        "spans from the geometric mean of its measured length and the next shorter one up to just "
        "below the geometric mean with the next longer one (the shortest starts at 1, the longest "
        "is unbounded)")


@dataclass(frozen=True)
class Bucket:
    min_seq: int
    max_seq: int | None  # None: unbounded
    measured_seq: int


def length_buckets(measured: list[int]) -> list[Bucket]:
    lengths = sorted(set(measured))
    # The first length of each upper bucket: the geometric mean, rounded up, above the lower length.
    edges = [max(a + 1, math.isqrt(a * b - 1) + 1) for a, b in zip(lengths, lengths[1:])]
    starts = [1, *edges]
    ends: list[int | None] = [e - 1 for e in edges] + [None]
    return [Bucket(s, e, n) for s, e, n in zip(starts, ends, lengths)]
