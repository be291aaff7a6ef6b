"""The dispatch table: per direction (forward or backward), group (query heads per key/value
head: 1 for mha_fwd and attn_bwd), head_dim, causal flag, dtype and length bucket, the program
chosen on that bucket's benchmark shape (``choice``), its figures there (re-timed at export, or
archived), and whether the bucket runs it or torch's default SDPA (for the backward: its forward
and backward, for calls that need gradients).

Each family of rows (direction, group, head_dim, causal) has its own length buckets, made from
the lengths measured for it: a run's own shapes may measure other lengths than the task's
benchmark, and a family must not be left with lengths no row holds.

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

Family = tuple[str, int, int, bool]  # direction, group, head_dim, causal


def family_order(family: Family) -> tuple[bool, int, int, bool]:
    """Forward families first, then by group, head_dim and mode."""
    direction, group, head_dim, causal = family
    return direction != "forward", group, head_dim, causal

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
        where = f"{s.where()} {self.dtype} N {self.lengths()}"
        default = "torch's default SDPA" if s.direction == "forward" else "torch's default SDPA (forward and backward)"
        runs = f"runs {self.runs}" if self.runs else f"runs {default} (program {self.kernel.program_id}:"
        return f"{where}: {runs} {self.route.why}" + ("" if self.runs else ")")

    def to_json(self) -> dict[str, Any]:
        s, f, a = self.chosen.shape, self.figures, self.chosen.figures
        return {
            "direction": s.direction, "group": s.group, "head_dim": s.head_dim, "causal": s.causal,
            "dtype": self.dtype, "min_seq": self.bucket.min_seq,
            "max_seq": self.bucket.max_seq, "kernel": self.runs, "routed_to_default": self.runs is None,
            "program": self.kernel.program_id, "run": self.kernel.run_id, "task": self.kernel.task,
            "timed_as": self.timed_as, "measured_seq": s.seq, "batch": s.batch, "heads": s.heads,
            "kv_heads": s.kv_heads, "ms": round(f.ms, 5),
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
    buckets: dict[Family, list[Bucket]]
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
    lengths: dict[Family, list[int]] = {}
    for m in chosen:
        lengths.setdefault(m.shape.family, []).append(m.shape.seq)
    buckets = {family: length_buckets(lengths[family]) for family in sorted(lengths, key=family_order)}
    bucket_of = {(family, b.measured_seq): b for family, bs in buckets.items() for b in bs}
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
        direction, group, d, c, dtype, seq = m.shape.key
        bucket = bucket_of[(m.shape.family, seq)]
        rows.append(Row(dtype, bucket, m, k, figures, decision, dtype))
        sibling = SIBLINGS.get(dtype)
        if sibling and (direction, group, d, c, sibling, seq) not in timed and sibling in k.checked_dtypes:
            rows.append(Row(sibling, bucket, m, k, figures, decision, dtype))
    rows.sort(key=lambda r: (*family_order(r.chosen.shape.family), r.dtype, r.bucket.min_seq))
    return DispatchTable(buckets, rows, retiming)
