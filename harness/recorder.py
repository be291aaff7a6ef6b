"""Recording a candidate's launches as a plan (runs in the sandboxed child, on a GPU).

Every compiled Triton or Gluon kernel launches through ``CompiledKernel.run``; the recorder
wraps it so that, while a call of ``forward`` is being recorded, each launch is noted: the
kernel's binary and metadata, its grid, and its arguments, with every pointer mapped to the
torch storage it points into. Storages become the plan's buffers: the inputs, and whatever
the candidate allocated; the contents of each non-input buffer are copied just before its
first launch (an allocation the candidate has not written holds the allocator's poison).

Nothing here is trusted by the judge. A candidate can switch recording off, launch behind its
back or hand back a forged plan: all it achieves is a plan that does not compute attention
when the judge replays it on inputs the candidate never saw.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import _disable_current_modes

from harness.plan import (
    INT_TYPES,
    Arg,
    Buffer,
    Descriptor,
    Fill,
    KernelSpec,
    Launch,
    Limits,
    Output,
    Plan,
    Pointer,
    Scalar,
    Snapshot,
)


class RecordingError(Exception):
    """What ``forward`` did cannot be expressed as a plan (a rejection, with this reason)."""


@dataclass(frozen=True)
class _Ref:
    """A pointer before buffers are numbered: a storage (start, nbytes) and an offset in it."""

    storage: tuple[int, int]
    offset: int


@dataclass
class _Storage:
    start: int
    nbytes: int
    order: int  # first use, counting launches' arguments in order; inputs first
    input: int | None = None
    input_offset: int = 0
    used: bool = False
    snapshot: torch.Tensor | None = None  # uint8 host copy of the contents before the first launch


def _storage_of(t: torch.Tensor) -> tuple[int, int]:
    s = t.untyped_storage()
    return s.data_ptr(), s.nbytes()


def _bytes_of(t: torch.Tensor) -> torch.Tensor:
    """The whole storage of ``t`` as a flat uint8 tensor (a view)."""
    return torch.empty(0, dtype=torch.uint8, device=t.device).set_(t.untyped_storage())


def kernel_spec(kernel: Any) -> tuple[KernelSpec, bytes]:
    """What the judge needs to load and launch ``kernel`` (a triton CompiledKernel)."""
    binary = bytes(kernel.asm["cubin"])
    meta = kernel.metadata._asdict()
    target = meta["target"]
    meta["target"] = {"backend": target.backend, "arch": target.arch, "warp_size": target.warp_size}
    meta = json.loads(json.dumps(meta, default=str))  # JSON as the message will carry it
    signature = tuple((name, _json_type(ty)) for name, ty in kernel.src.signature.items())
    return KernelSpec(hashlib.sha256(binary).hexdigest(), kernel.metadata.name, signature, meta), binary


def _json_type(ty: Any) -> Any:
    return [_json_type(t) for t in ty] if isinstance(ty, tuple) else ty


class Recording:
    """One call of ``forward``: launches as they happen, then ``finish`` builds the plan."""

    def __init__(self, inputs: list[torch.Tensor], input_names: list[str], max_bytes: int = Limits().total_bytes) -> None:
        self.names, self.max_bytes = input_names, max_bytes
        self.storages: dict[tuple[int, int], _Storage] = {}
        self.launches: list[tuple[str, tuple[int, int, int], tuple[Any, ...]]] = []
        for i, t in enumerate(inputs):
            key = _storage_of(t)
            if key in self.storages:
                raise RecordingError("two inputs share one storage")
            self.storages[key] = _Storage(key[0], key[1], i, input=i, input_offset=t.data_ptr() - key[0])

    # -- during the call ---------------------------------------------------------------
    def launch(self, kernel_sha: str, signature: tuple[tuple[str, Any], ...], grid: tuple[int, int, int],
               args: tuple[Any, ...]) -> None:
        if len(args) != len(signature):
            raise RecordingError(f"a launch passed {len(args)} arguments to a kernel of {len(signature)} parameters")
        encoded = tuple(self._arg(a, ty, name) for a, (name, ty) in zip(args, signature))
        self.launches.append((kernel_sha, grid, encoded))

    def _arg(self, a: Any, ty: Any, name: str) -> Any:
        if ty == "constexpr":
            return None
        if isinstance(ty, (list, tuple)):
            if not isinstance(a, (list, tuple)) or len(a) != len(ty):
                raise RecordingError(f"argument {name} does not match its tuple type")
            return tuple(self._arg(x, t, name) for x, t in zip(a, ty))
        if ty.startswith("*"):
            return None if a is None else self._pointer(a, name)
        if ty.startswith("tensordesc"):
            return Descriptor(self._pointer(a.base, name), tuple(int(x) for x in a.shape),  # type: ignore[arg-type]
                              tuple(int(x) for x in a.strides), tuple(int(x) for x in a.block_shape), str(a.padding))
        if ty in INT_TYPES:
            return Scalar(int(a))
        return Scalar(float(a))

    def _pointer(self, t: Any, name: str) -> _Ref:
        if type(t) is not torch.Tensor and not isinstance(t, torch.nn.Parameter):
            raise RecordingError(f"pointer argument {name} is a {type(t).__name__}, not a torch tensor: "
                                 "the recorder cannot tell which buffer it points into")
        key = _storage_of(t)
        st = self.storages.get(key)
        if st is None:
            if key[1] + sum(s.nbytes for s in self.storages.values()) > self.max_bytes:
                raise RecordingError(f"argument {name} is a buffer of {key[1] / 2**30:.1f} GiB: more than a plan may "
                                     f"hold ({self.max_bytes / 2**30:.0f} GiB in all)")
            st = self.storages[key] = _Storage(key[0], key[1], len(self.storages))
        if not st.used and st.input is None:
            # Contents before the first launch that uses it, copied to (pinned) host memory in stream
            # order: a kernel writing past its buffers cannot reach the copy there.
            st.snapshot = torch.empty(key[1], dtype=torch.uint8, pin_memory=t.is_cuda)
            st.snapshot.copy_(_bytes_of(t), non_blocking=True)
        st.used = True
        return _Ref(key, t.data_ptr() - key[0])

    # -- after the call -----------------------------------------------------------------
    def finish(self, outs: list[torch.Tensor], names: tuple[str, ...] = ("output",)) -> tuple[Plan, dict[str, bytes]]:
        """The plan of a call that returned ``outs`` (its outputs, named ``names``), and the raw
        contents of buffers that are not a constant fill, by sha256."""
        if not self.launches:
            raise RecordingError("forward launched no kernel")
        if any(t.is_cuda for t in outs):
            torch.cuda.synchronize()  # the snapshots' copies to the host have landed
        out_keys = [_storage_of(out) for out in outs]
        for key in out_keys:
            if key not in self.storages:
                self.storages[key] = _Storage(key[0], key[1], len(self.storages))
        groups = self._merge()
        owner = {key: g for g, members in enumerate(groups) for key in members}
        starts = [min(self.storages[k].start for k in members) for members in groups]
        ends = [max(self.storages[k].start + self.storages[k].nbytes for k in members) for members in groups]

        number: dict[int, int] = {}
        for g, members in enumerate(groups):
            inputs = [self.storages[k].input for k in members if self.storages[k].input is not None]
            if len(inputs) > 1:
                raise RecordingError("two inputs overlap in memory")
            if inputs:
                number[g] = inputs[0]  # type: ignore[assignment]
        for g in sorted(range(len(groups)), key=lambda g: min(self.storages[k].order for k in groups[g])):
            number.setdefault(g, len(number))

        for name, key in zip(names, out_keys):
            members = groups[owner[key]]
            inp = next((self.storages[k].input for k in members if self.storages[k].input is not None), None)
            if inp is not None:
                raise RecordingError(f"forward returned (a view of) its input {self.names[inp]} as {name}")
            if not any(self.storages[k].used for k in members):
                raise RecordingError(f"forward returned as {name} a tensor that none of its kernel launches was "
                                     "given: nothing it launched wrote it")

        snapshots: dict[str, bytes] = {}
        buffers: list[Buffer | None] = [None] * len(groups)
        for g, members in enumerate(groups):
            nbytes = ends[g] - starts[g]
            inp_keys = [k for k in members if self.storages[k].input is not None]
            if inp_keys:
                st = self.storages[inp_keys[0]]
                buffers[number[g]] = Buffer(nbytes, st.input, st.start - starts[g] + st.input_offset, None)
                continue
            image = self._image(members, starts[g], nbytes)
            init, raw = _compress(image)
            if raw is not None:
                snapshots[init.sha256] = raw  # type: ignore[union-attr]
            buffers[number[g]] = Buffer(nbytes, None, 0, init)

        def convert(a: Any) -> Arg:
            if isinstance(a, _Ref):
                g = owner[a.storage]
                return Pointer(number[g], self.storages[a.storage].start - starts[g] + a.offset)
            if isinstance(a, Descriptor):
                return Descriptor(convert(a.pointer), a.shape, a.strides, a.block, a.padding)  # type: ignore[arg-type]
            if isinstance(a, tuple):
                return tuple(convert(x) for x in a)
            return a  # type: ignore[no-any-return]

        launches = tuple(Launch(sha, grid, tuple(convert(a) for a in args)) for sha, grid, args in self.launches)
        outputs = []
        for out, key in zip(outs, out_keys):
            if out.storage_offset() * out.element_size() != out.data_ptr() - key[0]:
                raise RecordingError("an output's storage offset is inconsistent")
            g = owner[key]
            outputs.append(Output(number[g], self.storages[key].start - starts[g] + out.data_ptr() - key[0],
                                  tuple(out.shape), tuple(out.stride()), str(out.dtype).removeprefix("torch.")))
        return Plan(tuple(b for b in buffers if b is not None), launches, tuple(outputs)), snapshots

    def _merge(self) -> list[list[tuple[int, int]]]:
        """Storages grouped where their memory overlaps (freed and reused within one call)."""
        keys = sorted(self.storages, key=lambda k: (k[0], -k[1]))
        groups: list[list[tuple[int, int]]] = []
        end = -1
        for k in keys:
            if groups and k[0] < end:
                groups[-1].append(k)
                end = max(end, k[0] + k[1])
            else:
                groups.append([k])
                end = k[0] + k[1]
        return groups

    def _image(self, members: list[tuple[int, int]], start: int, nbytes: int) -> torch.Tensor:
        """A group's bytes before its first launch: the earliest copy wins where copies overlap;
        bytes no launch was given read as poison (0xFF)."""
        with_snap = sorted((self.storages[k] for k in members if self.storages[k].snapshot is not None),
                           key=lambda s: s.order)
        if len(with_snap) == 1 and with_snap[0].start == start and with_snap[0].nbytes == nbytes:
            return with_snap[0].snapshot  # type: ignore[return-value]
        image = torch.full((nbytes,), 0xFF, dtype=torch.uint8)
        for s in reversed(with_snap):
            image[s.start - start: s.start - start + s.nbytes].copy_(s.snapshot)  # type: ignore[arg-type]
        return image


def _compress(image: torch.Tensor) -> tuple[Fill | Snapshot, bytes | None]:
    """A constant 32-bit pattern becomes a fill; anything else is kept byte for byte. ``image``
    lives in host memory; the test for a pattern is two vectorised passes over it, on one core
    (an honest output is a fill of tens of MB, recorded on every call)."""
    a = image.numpy()
    n = a.size
    head = a[: min(4, n)].tolist()
    word_bytes = (head * 4)[:4] if n < 4 else head
    word = int.from_bytes(bytes(word_bytes), "little")
    n4 = n // 4 * 4
    words = a[:n4].view(np.uint32)
    uniform = (n4 == 0 or int(words.min()) == word == int(words.max())) and a[n4:].tolist() == word_bytes[: n - n4]
    if uniform:
        return Fill(word), None
    raw = a.tobytes()
    return Snapshot(hashlib.sha256(raw).hexdigest()), raw


@dataclass
class Recorder:
    """Installed once in the child before the candidate is imported."""

    active: Recording | None = None
    kernels: dict[int, tuple[KernelSpec, bytes]] = field(default_factory=dict)  # by id(CompiledKernel)

    def install(self) -> None:
        from triton.compiler.compiler import CompiledKernel

        real = CompiledKernel.run
        recorder = self

        def run(kernel: Any) -> Any:
            launcher = real.fget(kernel)  # type: ignore[attr-defined]

            def launch(gx: int, gy: int, gz: int, stream: Any, function: Any, *rest: Any) -> Any:
                if recorder.active is not None:
                    with _disable_current_modes():  # the recorder's own copies are not the candidate's ops
                        spec = recorder.spec(kernel)
                        recorder.active.launch(spec.sha256, spec.signature, (int(gx), int(gy), int(gz)), rest[4:])
                return launcher(gx, gy, gz, stream, function, *rest)

            return launch

        CompiledKernel.run = property(run)  # type: ignore[method-assign, assignment]

    def spec(self, kernel: Any) -> KernelSpec:
        if id(kernel) not in self.kernels:
            self.kernels[id(kernel)] = kernel_spec(kernel)
        return self.kernels[id(kernel)][0]

    def binary(self, sha256: str) -> bytes:
        return next(b for s, b in self.kernels.values() if s.sha256 == sha256)

    @contextmanager
    def recording(self, inputs: list[torch.Tensor], input_names: list[str]) -> Iterator[Recording]:
        self.active = Recording(inputs, input_names)
        try:
            yield self.active
        finally:
            self.active = None
