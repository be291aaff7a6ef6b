"""The dispatch table (``dispatch.json``): which copied kernel runs for a head_dim, causal flag,
dtype and sequence length, and where each kernel came from.

Each (head_dim, causal, dtype) has length buckets; a call goes to the bucket holding its
sequence length and runs the kernel measured fastest on that bucket's benchmark shape. The
file is written by ``evolve export`` and meant to be read by people too.
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
    """One row of the table: lengths ``min_seq..max_seq`` (None: unbounded) run ``kernel``."""

    min_seq: int
    max_seq: int | None
    kernel: str

    def holds(self, seq: int) -> bool:
        return seq >= self.min_seq and (self.max_seq is None or seq <= self.max_seq)


class Table:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.kernels: dict[str, dict[str, Any]] = data["kernels"]
        self.device: dict[str, Any] = data["device"]
        self.routes: dict[tuple[int, bool, torch.dtype], tuple[Route, ...]] = {}
        for row in data["table"]:
            key = (row["head_dim"], row["causal"], getattr(torch, row["dtype"]))
            route = Route(row["min_seq"], row["max_seq"], row["kernel"])
            self.routes[key] = (*self.routes.get(key, ()), route)

    @classmethod
    def load(cls) -> Table:
        return cls(json.loads(resources.files(__package__).joinpath("dispatch.json").read_text()))

    def covers(self, head_dim: int, causal: bool, dtype: torch.dtype) -> bool:
        return (head_dim, causal, dtype) in self.routes

    def kernel_for(self, head_dim: int, causal: bool, dtype: torch.dtype, seq: int) -> str | None:
        for route in self.routes.get((head_dim, causal, dtype), ()):
            if route.holds(seq):
                return route.kernel
        return None


TABLE = Table.load()


@functools.cache
def kernel_module(name: str) -> ModuleType:
    """The copied kernel ``name``, imported on first use (its ``forward(q, k, v, causal, sm_scale)``)."""
    if name not in TABLE.kernels:
        raise KeyError(f"no kernel {name!r} in {__package__}; kernels: {', '.join(sorted(TABLE.kernels))}")
    return importlib.import_module(f"{__package__}.kernels.{name}")
