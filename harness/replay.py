"""Replaying a plan (runs in the trusted judge process, on a GPU).

The judge never imports a candidate's module: it loads the recorded binaries with Triton's own
loader and launcher, allocates every buffer afresh (each between guard bands, so a write past
its end shows), writes its own inputs and each scratch buffer's recorded contents, and
launches the recorded sequence. Whatever the candidate's Python did when it was recorded, this
is what its kernels compute.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from harness.plan import Descriptor, Fill, KernelSpec, Output, Plan, Pointer, Scalar, Snapshot

GUARD = 64 << 10  # bytes of guard band on each side of every buffer
ALIGN = 512  # buffer bases, as torch's allocator aligns them (Triton specializes on 16-byte alignment)


class CandidateFault(Exception):
    """The candidate's binaries or plan failed on the GPU (never the judge's own fault)."""


def _round(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _tuples(ty: Any) -> Any:
    return tuple(_tuples(t) for t in ty) if isinstance(ty, list) else ty


@dataclass
class _Addr:
    """A device address where Triton's launcher wants an object with ``data_ptr``."""

    address: int

    def data_ptr(self) -> int:
        return self.address


class Kernels:
    """Recorded kernels loaded into this process, by the sha256 of their binary."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.loaded: dict[str, Any] = {}
        self.specs: dict[str, KernelSpec] = {}

    def load(self, spec: KernelSpec, binary: bytes) -> dict[str, int]:
        """Load one binary through Triton's CompiledKernel; registers and spills as it reports."""
        from triton.compiler.compiler import CompiledKernel

        d = self.workdir / spec.sha256
        d.mkdir(parents=True, exist_ok=True)
        files = {f"{spec.name}.json": d / f"{spec.name}.json", f"{spec.name}.cubin": d / f"{spec.name}.cubin"}
        files[f"{spec.name}.json"].write_text(json.dumps(spec.metadata))
        files[f"{spec.name}.cubin"].write_bytes(binary)
        names = [n for n, _ in spec.signature]
        src = SimpleNamespace(signature={n: _tuples(t) for n, t in spec.signature}, constants={},
                              fn=SimpleNamespace(arg_names=names))
        try:
            kernel = CompiledKernel(src, {k: str(v) for k, v in files.items()}, spec.sha256)
            kernel._init_handles()
        except Exception as e:
            raise CandidateFault(f"kernel {spec.name} cannot be loaded: {type(e).__name__}: {e}") from None
        self.loaded[spec.sha256], self.specs[spec.sha256] = kernel, spec
        return {"registers": int(kernel.n_regs), "spills": int(kernel.n_spills)}


class Replay:
    """One plan bound to buffers of this process. ``inputs`` are views of the input buffers,
    shaped like the task's inputs; ``output`` is the plan's output view."""

    def __init__(self, plan: Plan, kernels: Kernels, snapshots: dict[str, bytes], like: list[torch.Tensor],
                 guard_byte: int) -> None:
        self.plan, self.kernels, self.guard_byte = plan, kernels, guard_byte
        self.allocations: list[torch.Tensor] = []
        self.regions: list[torch.Tensor] = []
        try:
            for b in plan.buffers:
                a = torch.full((GUARD + _round(b.nbytes) + GUARD,), guard_byte, dtype=torch.uint8, device="cuda")
                self.allocations.append(a)
                self.regions.append(a[GUARD: GUARD + _round(b.nbytes)])
        except torch.OutOfMemoryError:
            raise CandidateFault(f"its plan asks for {sum(b.nbytes for b in plan.buffers) / 2**30:.1f} GiB "
                                 "of buffers, more than the GPU holds") from None
        self.bases = [r.data_ptr() for r in self.regions]
        self.inputs: list[torch.Tensor] = []
        for i, t in enumerate(like):
            b = next(j for j, x in enumerate(plan.buffers) if x.input == i)
            off, n = plan.buffers[b].input_offset, t.numel() * t.element_size()
            if off + n > plan.buffers[b].nbytes or off % t.element_size():
                raise CandidateFault(f"the plan's buffer for input {i} cannot hold it")
            self.inputs.append(self.regions[b][off: off + n].view(t.dtype).view(t.shape))
        self._inits: list[tuple[torch.Tensor, Fill | torch.Tensor]] = []
        for b, region in zip(plan.buffers, self.regions):
            if isinstance(b.init, Fill):
                self._inits.append((region.view(torch.int32), b.init))
            elif isinstance(b.init, Snapshot):
                raw = torch.frombuffer(bytearray(snapshots[b.init.sha256]), dtype=torch.uint8)
                self._inits.append((region[: b.nbytes], raw.to("cuda")))
        self.outputs = [self._view(o) for o in plan.outputs]

    def _view(self, o: Output) -> torch.Tensor:
        dtype = getattr(torch, o.dtype)  # one of plan.OUTPUT_DTYPES, validated
        flat = self.regions[o.buffer][o.offset: self.plan.buffers[o.buffer].nbytes]
        flat = flat[: flat.numel() // dtype.itemsize * dtype.itemsize].view(dtype)
        return flat.as_strided(o.shape, o.strides)

    def reset(self) -> None:
        """Every scratch buffer as it was before the recorded call's first launch."""
        for region, init in self._inits:
            if isinstance(init, Fill):
                region.fill_(init.word - (1 << 32) if init.word >= 1 << 31 else init.word)
            else:
                region.copy_(init)

    def launch(self) -> None:
        stream = torch.cuda.current_stream().cuda_stream
        for step in self.plan.launches:
            kernel = self.kernels.loaded[step.kernel]
            spec = self.kernels.specs[step.kernel]
            values = [self._value(a) for a in step.args]
            try:
                kernel.run(*step.grid, stream, kernel.function, kernel.packed_metadata, None, None, None, *values)
            except Exception as e:
                raise CandidateFault(f"launching {spec.name} failed: {type(e).__name__}: {e}") from None

    def _value(self, a: Any) -> Any:
        if isinstance(a, Pointer):
            return self.bases[a.buffer] + a.offset
        if isinstance(a, Scalar):
            return a.value
        if isinstance(a, Descriptor):
            return SimpleNamespace(base=_Addr(self.bases[a.pointer.buffer] + a.pointer.offset), shape=list(a.shape),
                                   strides=list(a.strides), block_shape=list(a.block), padding=a.padding)
        if isinstance(a, tuple):
            return tuple(self._value(x) for x in a)
        return None

    def guards_intact(self) -> bool:
        return all(bool((a[:GUARD] == self.guard_byte).all()) and bool((a[-GUARD:] == self.guard_byte).all())
                   for a in self.allocations)
