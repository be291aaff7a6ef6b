"""GPU timing that survives noise: the contenders take turns (A B A B ...) in one process and
one time window, each timed call between CUDA events with the L2 cache flushed before it, and
every sample is returned so that the caller compares medians measured together.

Only trusted code runs here: the judge's replays of a plan, library baselines, benchmarks.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


def _nothing() -> None:
    return None


@dataclass
class Contender:
    """``run`` is the timed work; ``prepare`` is untimed work before each timed call (fresh
    inputs, buffers reset), enqueued on the same stream so that it never overlaps the timing."""

    name: str
    run: Callable[[], object]
    prepare: Callable[[], object] = field(default=_nothing)


def graphed(fn: Callable[[], object]) -> Callable[[], object] | None:
    """``fn`` captured once as a CUDA graph, so that replays run its launches back to back
    without gaps from the host; None where capture fails (``fn`` then runs as it is)."""
    try:
        fn()  # once outside capture: lazy initialisation (handles, plans) must not be captured
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        torch.cuda.synchronize()
    except Exception:  # capture is an optimisation: any failure falls back to plain launches
        torch.cuda.synchronize()
        return None
    return graph.replay


def interleaved(contenders: list[Contender], *, rep_ms: float = 100.0, min_reps: int = 25, max_reps: int = 400,
                warmup: int = 3, flush_bytes: int = 256 << 20,
                before: Callable[[int, int, int], object] | None = None,
                after: Callable[[int, int, int], object] | None = None) -> list[list[float]]:
    """Milliseconds of every timed call, one list per contender, in turn A B A B ...; as many
    turns as fit ``rep_ms`` of the slowest contender's time, within [min_reps, max_reps].
    ``before(turn, contender, turns)`` runs before each timed call's ``prepare`` and
    ``after(...)`` after the call, both outside the timed region."""
    flush = torch.empty(flush_bytes // 4, dtype=torch.int32, device="cuda")
    for _ in range(warmup):
        for c in contenders:
            c.prepare()
            c.run()
    torch.cuda.synchronize()
    probe = [_once(c, flush) for c in contenders]
    reps = max(min_reps, min(max_reps, int(rep_ms / max(max(probe), 1e-3))))
    starts = [[torch.cuda.Event(enable_timing=True) for _ in range(reps)] for _ in contenders]
    ends = [[torch.cuda.Event(enable_timing=True) for _ in range(reps)] for _ in contenders]
    for i in range(reps):
        for j, c in enumerate(contenders):
            if before is not None:
                before(i, j, reps)
            c.prepare()
            flush.zero_()
            starts[j][i].record()
            c.run()
            ends[j][i].record()
            if after is not None:
                after(i, j, reps)
    torch.cuda.synchronize()
    return [[s.elapsed_time(e) for s, e in zip(starts[j], ends[j])] for j in range(len(contenders))]


def _once(c: Contender, flush: torch.Tensor) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    c.prepare()
    flush.zero_()
    start.record()
    c.run()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end)


def median(samples: list[float]) -> float:
    return statistics.median(samples)
