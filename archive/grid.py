"""The part of a run's configuration the archive reads: the MAP-Elites grid's axes.

``config["grid"] = {"dims": [{"name": str, "labels": [str, ...]}, ...]}``; the rest of the
configuration (and any other key under ``grid``) belongs to the search and is stored as given.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from archive.errors import ArchiveError


class GridDim(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    labels: list[str] = Field(min_length=1)


class GridSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    dims: list[GridDim] = Field(min_length=1)

    @field_validator("dims")
    @classmethod
    def _distinct_names(cls, dims: list[GridDim]) -> list[GridDim]:
        names = [d.name for d in dims]
        if len(set(names)) != len(names):
            raise ValueError(f"dimension names repeat: {', '.join(names)}")
        return dims

    @property
    def size(self) -> int:
        return math.prod(len(d.labels) for d in self.dims)

    def check_coords(self, coords: list[int]) -> None:
        """Refuse coordinates the grid view could not place."""
        if len(coords) != len(self.dims):
            raise ValueError(f"{len(coords)} coordinates for a grid of {len(self.dims)} dimensions")
        for c, dim in zip(coords, self.dims):
            if not 0 <= c < len(dim.labels):
                raise ValueError(f"coordinate {c} outside dimension {dim.name!r} (0..{len(dim.labels) - 1})")


def grid_spec(config: dict[str, Any]) -> GridSpec | None:
    """The grid described by a run's configuration, or None when it describes none."""
    raw = config.get("grid")
    if raw is None:
        return None
    try:
        return GridSpec.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'grid'}: {err['msg']}" for err in e.errors())
        raise ArchiveError(f"run configuration grid is invalid: {problems}") from None
