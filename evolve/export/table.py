"""The dispatch table: per (head_dim, causal, dtype, length bucket), the kernel measured fastest
on that bucket's benchmark shape.

fp16 and bf16 have the same width and the same tensor-core rate, so a kernel's speed barely
depends on which of the two it runs; a 2-byte dtype the harness checked a kernel in but never
timed (the benchmark shapes are bf16) takes the rows of its timed sibling, marked ``timed_as``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evolve.export.buckets import Bucket, length_buckets
from evolve.export.winners import Kernel, Measurement

SIBLINGS = {"float16": "bfloat16", "bfloat16": "float16"}


@dataclass(frozen=True)
class Row:
    head_dim: int
    causal: bool
    dtype: str
    bucket: Bucket
    best: Measurement
    timed_as: str

    def to_json(self) -> dict[str, Any]:
        m = self.best
        return {
            "head_dim": self.head_dim, "causal": self.causal, "dtype": self.dtype,
            "min_seq": self.bucket.min_seq, "max_seq": self.bucket.max_seq, "kernel": m.kernel.name,
            "timed_as": self.timed_as, "measured_seq": m.seq, "batch": m.batch, "heads": m.heads,
            "ms": round(m.ms, 5), "tflops": round(m.tflops, 1), "baseline": m.baseline,
            "baseline_tflops": round(m.baseline_tflops, 1), "speedup": round(m.speedup, 3),
        }


@dataclass(frozen=True)
class DispatchTable:
    buckets: list[Bucket]
    rows: list[Row]

    @property
    def kernels(self) -> list[Kernel]:
        found = {r.best.kernel.program_id: r.best.kernel for r in self.rows}
        return [found[p] for p in sorted(found)]


def build_table(measurements: list[Measurement]) -> DispatchTable:
    """Fastest by TFLOP/s (the same as lowest time on one shape, and comparable across runs)."""
    buckets = length_buckets([m.seq for m in measurements])
    bucket_of = {b.measured_seq: b for b in buckets}
    best: dict[tuple[int, bool, str, int], Measurement] = {}
    for m in measurements:
        key = (m.head_dim, m.causal, m.dtype, m.seq)
        if key not in best or m.tflops > best[key].tflops:
            best[key] = m
    rows = [Row(d, c, dtype, bucket_of[seq], m, dtype) for (d, c, dtype, seq), m in best.items()]
    for (d, c, dtype, seq), m in best.items():
        sibling = SIBLINGS.get(dtype)
        if sibling and (d, c, sibling, seq) not in best and sibling in m.kernel.checked_dtypes:
            rows.append(Row(d, c, sibling, bucket_of[seq], m, dtype))
    rows.sort(key=lambda r: (r.head_dim, r.causal, r.dtype, r.bucket.min_seq))
    return DispatchTable(buckets, rows)
