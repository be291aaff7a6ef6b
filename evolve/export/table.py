"""The dispatch table: per (head_dim, causal, dtype, length bucket), the program chosen on that
bucket's benchmark shape (``choice``), its figures there (re-timed at export, or archived), and
whether the bucket runs it or torch's default SDPA.

fp16 and bf16 have the same width and the same tensor-core rate, so a kernel's speed barely
depends on which of the two it runs; a 2-byte dtype the harness checked a kernel in but never
timed (the benchmark shapes are bf16) takes the rows of its timed sibling, marked ``timed_as``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evolve.buckets import Bucket, length_buckets
from evolve.export.choice import Route, route
from evolve.export.retime import Retiming
from evolve.export.winners import Figures, Kernel, Measurement

SIBLINGS = {"float16": "bfloat16", "bfloat16": "float16"}


@dataclass(frozen=True)
class Row:
    dtype: str
    bucket: Bucket
    chosen: Measurement  # as archived
    kernel: Kernel  # the chosen program's provenance
    figures: Figures  # what routing went by
    route: Route
    timed_as: str

    @property
    def runs(self) -> str | None:
        """The kernel module this bucket calls; None: torch's default SDPA."""
        return self.kernel.name if self.route.kernel else None

    def lengths(self) -> str:
        b = self.bucket
        return f"{b.min_seq}+" if b.max_seq is None else f"{b.min_seq}-{b.max_seq}"

    def summary(self) -> str:
        s = self.chosen.shape
        where = f"D{s.head_dim}{' causal' if s.causal else ''} {self.dtype} N {self.lengths()}"
        runs = f"runs {self.runs}" if self.runs else f"runs torch's default SDPA (program {self.kernel.program_id}:"
        return f"{where}: {runs} {self.route.why}" + ("" if self.runs else ")")

    def to_json(self) -> dict[str, Any]:
        s, f, a = self.chosen.shape, self.figures, self.chosen.figures
        return {
            "head_dim": s.head_dim, "causal": s.causal, "dtype": self.dtype, "min_seq": self.bucket.min_seq,
            "max_seq": self.bucket.max_seq, "kernel": self.runs, "routed_to_default": self.runs is None,
            "program": self.kernel.program_id, "run": self.kernel.run_id, "timed_as": self.timed_as,
            "measured_seq": s.seq, "batch": s.batch, "heads": s.heads, "ms": round(f.ms, 5),
            "tflops": round(f.tflops, 1), "baseline": f.baseline, "baseline_tflops": round(f.baseline_tflops, 1),
            "speedup": round(f.speedup, 4), "speedup_low": _round(f.low), "speedup_high": _round(f.high),
            "samples": f.samples, "retimed": f.retimed, "why": self.route.why,
            "archived": {"evaluation": self.chosen.evaluation_id, "speedup": round(a.speedup, 4),
                         "speedup_low": _round(a.low), "speedup_high": _round(a.high), "baseline": a.baseline},
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


@dataclass(frozen=True)
class DispatchTable:
    buckets: list[Bucket]
    rows: list[Row]
    retiming: Retiming | None

    @property
    def kernels(self) -> list[Kernel]:
        """The programs some bucket runs."""
        found = {r.kernel.program_id: r.kernel for r in self.rows if r.runs}
        return [found[p] for p in sorted(found)]

    @property
    def timed_rows(self) -> list[Row]:
        return [r for r in self.rows if r.dtype == r.timed_as]


def build_table(chosen: list[Measurement], kernels: dict[int, Kernel], retiming: Retiming | None) -> DispatchTable:
    """Rows for the chosen measurements (one per shape); with a ``retiming``, its figures decide."""
    buckets = length_buckets([m.shape.seq for m in chosen])
    bucket_of = {b.measured_seq: b for b in buckets}
    timed = {m.shape.key for m in chosen}
    rows = []
    for m in chosen:
        figures, decided = m.figures, None
        if retiming is not None:
            fresh = retiming.figures.get((m.program_id, m.shape.key))
            if fresh is None:
                decided = Route(False, "the re-check at export did not time this shape")
            else:
                figures = fresh
        decision = decided or route(figures)
        k = kernels[m.program_id]
        d, c, dtype, seq = m.shape.key
        rows.append(Row(dtype, bucket_of[seq], m, k, figures, decision, dtype))
        sibling = SIBLINGS.get(dtype)
        if sibling and (d, c, sibling, seq) not in timed and sibling in k.checked_dtypes:
            rows.append(Row(sibling, bucket_of[seq], m, k, figures, decision, dtype))
    rows.sort(key=lambda r: (r.chosen.shape.head_dim, r.chosen.shape.causal, r.dtype, r.bucket.min_seq))
    return DispatchTable(buckets, rows, retiming)
