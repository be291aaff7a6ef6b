"""The two rules of an export: which program a benchmark shape gets, and whether its bucket runs
that program or torch's default SDPA.

Choice: among the programs measured on the shape, the one whose speedup over torch's default
SDPA is surest, i.e. the highest lower end of its interval. One evaluation's median moves by a
few percent between checks of the same kernel, so ranking by the median alone picks whichever
copy was lucky; a timing without an interval (samples not kept) ranks below every one with an
interval, by its median, and a timing against another baseline (a forced SDPA backend, in
older archives) below both. Ties go to the older program.

Routing: a bucket runs the kernel only when its interval against torch's default SDPA lies
above 1 + ``MARGIN``; otherwise it runs the default, so that the package is never slower than
what users would otherwise call. The interval covers the noise of one measurement; another
process timing the same pair drifts by more: on an H200 two kernels confirmed at [1.004, 1.009]
and [1.004, 1.027] ran at 0.996x and 0.98x of the default in the package's benchmark, one at
[1.018, 1.041] at 1.04x (benchmarks/results/export-h200.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from evolve.export.winners import Figures, Measurement
from harness.confidence import LEVEL

MARGIN = 0.01  # a kernel serves only when its interval's lower end exceeds 1 + MARGIN

# The judge names its baseline "sdpa default (<backend>)": plain F.scaled_dot_product_attention.
DEFAULT_BASELINE = "sdpa default"
CHOICE_RULE = ("each benchmark shape gets the program measured there whose speedup interval over the default has "
               "the highest lower end (timings without an interval rank below, by their median, and timings against "
               "another baseline below those; ties go to the older program)")
ROUTE_RULE = (f"a bucket runs its kernel only when the {LEVEL:.0%} bootstrap interval of the kernel's speedup over torch's "
              "default SDPA (its backward, for a backward row), timed in turns on the bucket's benchmark shape, lies "
              f"entirely above {1 + MARGIN:g}; otherwise it calls torch.nn.functional.scaled_dot_product_attention unchanged (a "
              "backward row: calls needing gradients run it, forward and backward)")


def surety(f: Figures) -> tuple[bool, bool, float, float]:
    """Sort key, surest last: timed against the default, with an interval, by its lower end."""
    return f.baseline.startswith(DEFAULT_BASELINE), f.low is not None, f.low if f.low is not None else f.speedup, f.speedup


def choose(measurements: list[Measurement]) -> list[Measurement]:
    """The best measurement per (direction, group, head_dim, causal, dtype, seq), in that order: an
    mha_fwd and a gqa_fwd program measured on the same group-1 shape compete for it."""
    best: dict[tuple[str, int, int, bool, str, int], Measurement] = {}
    for m in sorted(measurements, key=lambda m: m.program_id):
        held = best.get(m.shape.key)
        if held is None or surety(m.figures) > surety(held.figures):
            best[m.shape.key] = m
    return [best[k] for k in sorted(best)]


@dataclass(frozen=True)
class Route:
    """Whether a bucket runs its chosen kernel, and why (a sentence for README and dispatch.json)."""

    kernel: bool
    why: str


def route(f: Figures) -> Route:
    source = "re-timed at export" if f.retimed else "archived by the search"
    if not f.baseline.startswith(DEFAULT_BASELINE):
        return Route(False, f"timed against {f.baseline}, not torch's default SDPA ({source})")
    if f.low is None or f.high is None:
        return Route(False, f"{f.speedup:.3f}x over {f.baseline} without an interval (the timed calls were not "
                            f"kept), unconfirmed ({source})")
    measured = f"{f.speedup:.3f}x [{f.low:.3f}, {f.high:.3f}] over {f.baseline}"
    if f.low > 1.0 + MARGIN:
        return Route(True, f"{measured}, confirmed faster ({source})")
    return Route(False, f"{measured}, not confirmed more than {MARGIN:.0%} faster ({source})")
