"""The task plug-in interface: what to compute, its reference, its shapes.

A task is the only place that knows the meaning of a candidate's ``forward``: the sandboxed
child uses it to make inputs and call the candidate, the trusted parent uses it to make the
same inputs again and compute the reference. Cases cross the process boundary as plain dicts.
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Tolerance:
    """A trial passes when every element satisfies |out-ref| <= atol + rtol*|ref| *and* the
    relative norm error is at most ``rel``: the second catches zeros or uniform outputs where
    the values are too small for the first to notice."""

    rel: float
    atol: float
    rtol: float


@dataclass(frozen=True)
class OutputSpec:
    """One tensor the entry point returns: its name, the shape and dtype it must have, and the
    tolerance it is compared with."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    tolerance: Tolerance


@dataclass(frozen=True)
class Signature:
    """The entry point as data: ``forward(*inputs, *flags)`` returning ``outputs`` (a tensor when
    there is one, else a tuple in this order). The static gate checks a candidate's ``forward``
    against it, the prompts show it, the recorder and the judge name inputs and outputs by it."""

    inputs: tuple[str, ...]  # tensor inputs, in the order ``make_inputs`` returns them
    flags: tuple[str, ...]  # the case's scalars passed after them, as "name: type"
    outputs: tuple[str, ...]

    def arity(self) -> int:
        return len(self.inputs) + len(self.flags)

    def text(self) -> str:
        returns = self.outputs[0] if len(self.outputs) == 1 else f"({', '.join(self.outputs)})"
        return f"forward({', '.join(self.inputs + self.flags)}) -> {returns}"


class Determinism(Enum):
    """What "deterministic" means for a task's outputs on equal inputs."""

    BITWISE = "bitwise"  # runs agree bit for bit
    WITHIN_TOLERANCE = "within tolerance"  # each run passes on its own (kernels may sum with atomics)


@dataclass(frozen=True)
class Trial:
    """One correctness trial: a labelled case, run on fresh random inputs."""

    label: str
    case: dict[str, Any]


def returned(out: Any, names: tuple[str, ...]) -> list[torch.Tensor] | str:
    """What ``forward`` returned as the list of its outputs, or why it cannot be: one output is a
    plain tensor, several a tuple (or list) of plain tensors in the signature's order."""
    import torch

    items = [out] if len(names) == 1 else list(out) if isinstance(out, (tuple, list)) else None
    if items is None or len(items) != len(names):
        want = "a plain torch.Tensor" if len(names) == 1 else f"a tuple of {len(names)} tensors ({', '.join(names)})"
        return f"forward returned {type(out).__name__}, not {want}"
    for name, t in zip(names, items):
        if type(t) is not torch.Tensor:
            return f"forward returned {type(t).__name__} as {name}, not a plain torch.Tensor"
    return items


class Task(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    signature: ClassVar[Signature]
    determinism: ClassVar[Determinism] = Determinism.BITWISE

    @abstractmethod
    def label(self, case: dict[str, Any]) -> str: ...

    @abstractmethod
    def make_inputs(self, case: dict[str, Any], seed: int, device: str) -> list[torch.Tensor]:
        """Pristine inputs, bitwise reproducible from ``seed`` on the same device type."""

    @abstractmethod
    def refill_inputs(self, inputs: list[torch.Tensor], case: dict[str, Any], seed: int) -> None:
        """Overwrite ``inputs`` in place (same storage) with the values ``make_inputs`` gives for ``seed``."""

    @abstractmethod
    def randomize(self, inputs: list[torch.Tensor], case: dict[str, Any], generator: torch.Generator) -> None:
        """New random values of the case's distribution in ``inputs``, in place and cheaply: timing
        refreshes the inputs before every timed call, so that no call can reuse an earlier answer."""

    @abstractmethod
    def variant(self, case: dict[str, Any]) -> str:
        """What a kernel is compiled for in this case (cases with the same variant share binaries)."""

    @abstractmethod
    def call(self, forward: Callable[..., Any], inputs: list[torch.Tensor], case: dict[str, Any]) -> Any:
        """Call a candidate's entry point on ``inputs``."""

    @abstractmethod
    def outputs(self, case: dict[str, Any]) -> list[OutputSpec]:
        """What ``forward`` must return in this case, in the signature's order."""

    @abstractmethod
    def reference(self, inputs: list[torch.Tensor], case: dict[str, Any]) -> list[torch.Tensor]:
        """The exact outputs in float32 or float64, from pristine inputs, in the signature's order."""

    @abstractmethod
    def flops(self, case: dict[str, Any]) -> float:
        """The work counted in a case's TFLOP/s."""

    @abstractmethod
    def sweep(self, mode: str) -> list[Trial]:
        """Correctness trials for ``mode`` ("gpu" or "interpreter"); the first is the smoke test."""

    @abstractmethod
    def stability_trials(self, mode: str) -> list[Trial]:
        """Trials whose inputs push a naive kernel into overflow."""

    @abstractmethod
    def default_benchmark(self) -> list[dict[str, Any]]:
        """The shapes fitness is measured on unless a run names its own (``with_shapes``)."""

    def benchmark_case(self, shape: dict[str, Any]) -> dict[str, Any]:
        """A user's benchmark shape (e.g. a model's heads and lengths) as a case of this task;
        ValueError, with a sentence, for a shape it cannot take."""
        raise ValueError(f"task {self.name} takes no shapes of a user's")

    _shapes: list[dict[str, Any]] | None = None

    def benchmark_cases(self) -> list[dict[str, Any]]:
        """The shapes fitness is measured on (GPU only): the run's own, else the default."""
        return [dict(c) for c in self._shapes] if self._shapes is not None else self.default_benchmark()

    def with_shapes(self, shapes: list[dict[str, Any]]) -> Task:
        """This task, measured on ``shapes`` (each validated by ``benchmark_case``)."""
        cases = [self.benchmark_case(s) for s in shapes]
        if not cases:
            raise ValueError("a run's own benchmark needs at least one shape")
        task = copy.copy(self)
        task._shapes = cases
        return task

    @abstractmethod
    def baselines(self) -> dict[str, Callable[[list[torch.Tensor], dict[str, Any]], torch.Tensor]]:
        """Library implementations, by name, for benchmarks that compare several."""

    @abstractmethod
    def default_baseline(self, inputs: list[torch.Tensor], case: dict[str, Any]) -> tuple[str, Callable[[], Any]]:
        """What a user would otherwise run on ``inputs`` (fitness is the speedup over it): a short
        name saying which implementation that is on this machine, and the call."""

    @abstractmethod
    def seed_path(self) -> Path:
        """The hand-written kernel a search starts from."""


_REGISTRY: dict[str, type[Task]] = {}
# Tasks of other packages: entry points of this group naming a module that registers its tasks,
# or a Task subclass (``[project.entry-points."evolve.tasks"] my_task = "my_pkg.tasks"``).
PLUGIN_GROUP = "evolve.tasks"
_PLUGIN_ERRORS: dict[str, str] = {}  # entry point -> why it did not load


def register(cls: type[Task]) -> type[Task]:
    _REGISTRY[cls.name] = cls
    return cls


def task_names() -> list[str]:
    _load_tasks()
    return sorted(_REGISTRY)


def unknown_task(name: str) -> str | None:
    """Why ``name`` names no task (with the plug-ins that failed to load), or None if it does."""
    _load_tasks()
    if name in _REGISTRY:
        return None
    broken = "".join(f"; plug-in {ep} did not load: {why}" for ep, why in sorted(_PLUGIN_ERRORS.items()))
    return f"unknown task {name!r}; known tasks: {', '.join(sorted(_REGISTRY))}{broken}"


def get_task(name: str, shapes: list[dict[str, Any]] | None = None) -> Task:
    """The task ``name``, measured on ``shapes`` where given (a run's own benchmark)."""
    problem = unknown_task(name)
    if problem is not None:
        raise KeyError(problem)
    task = _REGISTRY[name]()
    return task.with_shapes(shapes) if shapes else task


@functools.cache
def _load_tasks() -> None:
    from harness.tasks import attn_bwd, gqa_fwd, mha_fwd  # noqa: F401  (each registers itself)

    for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        try:
            loaded = ep.load()
        except Exception as e:  # a broken plug-in must not take the built-in tasks down with it
            _PLUGIN_ERRORS[ep.name] = f"{type(e).__name__}: {e}"
            continue
        if isinstance(loaded, type) and issubclass(loaded, Task):
            register(loaded)
