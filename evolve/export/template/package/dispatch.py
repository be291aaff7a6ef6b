"""The dispatch tables (``dispatch.json``): what runs for a pass (forward or backward), group
(query heads per key/value head, 1 without grouped-query attention), head_dim, causal flag,
dtype and sequence length, and where each kernel came from.

Each (direction, group, head_dim, causal, dtype) has length buckets; a call goes to the bucket
holding its sequence length. A bucket runs the kernel chosen on its benchmark shape when that
kernel was confirmed faster there than torch's default SDPA (its backward, for the backward
table), and torch's default SDPA otherwise (for the backward: calls that need gradients run it,
forward and backward). The file is written by ``evolve export`` and meant to be read by people too.
"""

from __future__ import annotations

import functools
import importlib
import json
from dataclasses import dataclass
from importlib import resources
from types import ModuleType
from typing import Any

import torch


@dataclass(frozen=True)
class Route:
    """One row of the table: lengths ``min_seq..max_seq`` (None: unbounded) run ``kernel``, or
    torch's default SDPA where ``kernel`` is None (it was as fast or faster there)."""

    min_seq: int
    max_seq: int | None
    kernel: str | None

    def holds(self, seq: int) -> bool:
        return seq >= self.min_seq and (self.max_seq is None or seq <= self.max_seq)


Key = tuple[str, int, int, bool, torch.dtype]  # direction, group, head_dim, causal, dtype


class Table:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.kernels: dict[str, dict[str, Any]] = data["kernels"]
        self.device: dict[str, Any] = data["device"]
        self.routes: dict[Key, tuple[Route, ...]] = {}
        for row in data["table"]:
            key = (row["direction"], row["group"], row["head_dim"], row["causal"], getattr(torch, row["dtype"]))
            route = Route(row["min_seq"], row["max_seq"], row["kernel"])
            self.routes[key] = (*self.routes.get(key, ()), route)

    @classmethod
    def load(cls) -> Table:
        return cls(json.loads(resources.files(__package__).joinpath("dispatch.json").read_text()))

    def covers(self, head_dim: int, causal: bool, dtype: torch.dtype, group: int = 1,
               direction: str = "forward") -> bool:
        return (direction, group, head_dim, causal, dtype) in self.routes

    def groups(self, head_dim: int, causal: bool, dtype: torch.dtype) -> list[int]:
        """The groups the forward table measured for this head_dim, mode and dtype."""
        return sorted(g for d, g, h, c, t in self.routes if (d, h, c, t) == ("forward", head_dim, causal, dtype))

    def route_for(self, head_dim: int, causal: bool, dtype: torch.dtype, seq: int, group: int = 1,
                  direction: str = "forward") -> Route | None:
        """The row holding ``seq``; None where no row does."""
        for route in self.routes.get((direction, group, head_dim, causal, dtype), ()):
            if route.holds(seq):
                return route
        return None

    def runs_default(self, head_dim: int, causal: bool, dtype: torch.dtype, seq: int, group: int = 1) -> bool:
        """Whether the forward row holding ``seq`` calls torch's default SDPA rather than a kernel."""
        route = self.route_for(head_dim, causal, dtype, seq, group)
        return route is not None and route.kernel is None

    def backward_kernel(self, head_dim: int, causal: bool, dtype: torch.dtype, seq: int, group: int = 1) -> str | None:
        """The evolved backward kernel of the backward row holding ``seq``; None: the gradients are
        recomputed through torch's SDPA (no row, or a row where SDPA's backward was as fast)."""
        route = self.route_for(head_dim, causal, dtype, seq, group, "backward")
        return None if route is None else route.kernel

    def has_backward_kernels(self, head_dim: int, causal: bool, dtype: torch.dtype, group: int = 1) -> bool:
        """Whether any length of this head_dim, mode, dtype and group runs an evolved backward kernel."""
        return any(r.kernel for r in self.routes.get(("backward", group, head_dim, causal, dtype), ()))


TABLE = Table.load()


@functools.cache
def kernel_module(name: str) -> ModuleType:
    """The copied kernel ``name``, imported on first use: its ``forward(q, k, v, causal, sm_scale)``,
    or for a backward kernel ``forward(q, k, v, o, do, lse, causal, sm_scale) -> (dq, dk, dv)``."""
    if name not in TABLE.kernels:
        raise KeyError(f"no kernel {name!r} in {__package__}; kernels: {', '.join(sorted(TABLE.kernels))}")
    return importlib.import_module(f"{__package__}.kernels.{name}")
