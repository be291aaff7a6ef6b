"""The MAP-Elites grid over kernel descriptors, kept by pyribs' ``GridArchive``.

Fixed ranges (cell bounds never drift mid-run, unlike binning by running min/max); the
archive database stays the source of truth and the grid is rebuilt from its cells on resume.
Islands are separate grids that share one cell numbering: cell = island · cells + index, and
the island is a cell's last coordinate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from ribs.archives import GridArchive

# name, bins, lower bound of the first bin, labels
AXES: tuple[tuple[str, int, float, list[str]], ...] = (
    ("tile", 6, 9.5, [f"{1 << (10 + i)}" for i in range(6)]),  # BLOCK_M·BLOCK_N 1024 .. 32768
    ("warps", 4, 0.5, ["2", "4", "8", "16"]),
    ("stages", 5, 0.5, ["1", "2", "3", "4", "5"]),
    ("features", 8, -0.5, ["-", "tma", "ws", "tma+ws", "pers", "tma+pers", "ws+pers", "all"]),
)


@dataclass(frozen=True)
class Elite:
    program_id: int
    fitness: float
    cell: int  # global cell index, island included
    island: int


@dataclass(frozen=True)
class Insertion:
    improved: bool  # new cell or better than the cell's elite
    cell: int
    coords: list[int]


class KernelGrid:
    def __init__(self, islands: int = 1, seed: int | None = None) -> None:
        self.islands = islands
        self._grids = [
            GridArchive(solution_dim=1, dims=[a[1] for a in AXES], ranges=[(a[2], a[2] + a[1]) for a in AXES],
                        seed=None if seed is None else seed + i, solution_dtype=np.int64)
            for i in range(islands)
        ]
        self.cells_per_island = int(np.prod([a[1] for a in AXES]))

    def config(self) -> dict[str, Any]:
        """The grid's axes as stored in a run's configuration, for browsing tools."""
        islands = {"name": "island", "labels": [str(i) for i in range(self.islands)]}
        return {"dims": [{"name": n, "labels": labels} for n, _, _, labels in AXES] + [islands]}

    def _measures(self, descriptors: dict[str, float]) -> np.ndarray:
        return np.array([descriptors[name] for name, *_ in AXES], dtype=np.float64)

    def cell_of(self, island: int, descriptors: dict[str, float]) -> tuple[int, list[int]]:
        grid = self._grids[island]
        index = int(grid.index_of_single(self._measures(descriptors)))
        coords = [int(c) for c in grid.int_to_grid_index([index])[0]] + [island]
        return island * self.cells_per_island + index, coords

    def insert(self, island: int, program_id: int, fitness: float, descriptors: dict[str, float]) -> Insertion:
        status = self._grids[island].add_single(np.array([program_id]), fitness, self._measures(descriptors))
        cell, coords = self.cell_of(island, descriptors)
        return Insertion(int(status["status"]) > 0, cell, coords)

    def elite_at(self, island: int, descriptors: dict[str, float]) -> Elite | None:
        """The elite of the cell these descriptors fall in, if it has one."""
        cell, _ = self.cell_of(island, descriptors)
        return next((e for e in self.elites(island) if e.cell == cell), None)

    def elites(self, island: int | None = None) -> list[Elite]:
        out = []
        for i, grid in enumerate(self._grids):
            if island is not None and i != island:
                continue
            data = grid.data(fields=["solution", "objective", "index"])
            for sol, obj, idx in zip(data["solution"], data["objective"], data["index"]):
                out.append(Elite(int(sol[0]), float(obj), i * self.cells_per_island + int(idx), i))
        return out

    def best(self, island: int | None = None) -> Elite | None:
        elites = self.elites(island)
        return max(elites, key=lambda e: e.fitness) if elites else None

    def stats(self) -> dict[str, float]:
        elites = self.elites()
        total = self.cells_per_island * self.islands
        return {
            "elites": len(elites),
            "coverage": len(elites) / total,
            "qd_score": sum(e.fitness for e in elites),
            "best": max((e.fitness for e in elites), default=float("nan")),
        }
