"""The compute guard: no torch arithmetic may run inside a candidate's ``forward``.

A friendly filter, not a defence: on a GPU the judge replays only the candidate's kernel
launches, so torch compute simply goes missing there; the guard turns the likely mistakes into
clear reasons first. Enforced at the dispatcher (a ``TorchDispatchMode``), so renamed calls are
caught as surely as ``F.scaled_dot_product_attention``. Allocation, views, copies and fills
pass: a launcher needs them, and Triton's interpreter moves tensors with them. Fresh
allocations are filled with 0xFF bytes (NaN in every float format), so that memory no kernel
writes reads as poison and never as a leftover of an earlier call.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

ALLOWED_OPS = frozenset({
    # allocation
    "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "zeros", "zeros_like",
    "new_zeros", "ones", "ones_like", "new_ones", "full", "full_like", "new_full", "resize_",
    "scalar_tensor", "lift_fresh", "lift_fresh_copy", "empty_permuted",
    # fills and copies
    "fill_", "zero_", "copy_", "_to_copy", "clone", "detach", "detach_", "alias", "set_",
    "_local_scalar_dense", "record_stream", "_copy_from", "_copy_from_and_resize",
    # views
    "view", "_unsafe_view", "reshape", "_reshape_alias", "as_strided", "transpose", "t", "permute",
    "expand", "select", "slice", "narrow", "unsqueeze", "squeeze", "unbind", "split",
    "split_with_sizes", "chunk", "contiguous", "view_as", "flatten", "unflatten", "movedim",
    "is_same_size", "is_contiguous", "sym_size", "sym_stride", "sym_numel", "sym_storage_offset",
})


EMPTY_OPS = frozenset({"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "empty_permuted"})
COPY_OPS = frozenset({"copy_", "_to_copy", "clone", "_copy_from", "_copy_from_and_resize"})
WRITE_OPS = frozenset({"copy_", "fill_", "zero_", "set_", "resize_", "_copy_from", "_copy_from_and_resize"})


class ComputeViolation(RuntimeError):
    """Raised into the candidate when it runs a torch compute op; also recorded by the guard."""


class ComputeGuard(TorchDispatchMode):
    """``inputs``: with ``replayed`` set, torch copies of these and writes into them are refused
    too. On a GPU only kernel launches are replayed: a copy made by torch would hold the recorded
    inputs, and a write by torch would escape the judge, yet reach the user's tensors later."""

    def __init__(self, replayed: bool = False) -> None:
        super().__init__()
        self.violations: list[str] = []
        self.replayed = replayed
        self.inputs: list[torch.Tensor] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = func.overloadpacket.__name__
        if name not in ALLOWED_OPS:
            self._refuse(str(func.overloadpacket), "is not allowed inside forward")
        if self.replayed and name in WRITE_OPS and args and self._is_input(args[0]):
            self._refuse(str(func.overloadpacket), "writes into an input: forward must leave its inputs as they are")
        if self.replayed and name in COPY_OPS and any(self._is_input(a) for a in args[:2]):
            self._refuse(str(func.overloadpacket), "copies an input: only kernel launches are replayed, so "
                         "the copy would hold stale values; let a kernel read the input")
        out = func(*args, **(kwargs or {}))
        if name in EMPTY_OPS and isinstance(out, torch.Tensor):
            torch.empty(0, dtype=torch.uint8, device=out.device).set_(out.untyped_storage()).fill_(0xFF)
        return out

    def _refuse(self, op: str, why: str) -> None:
        if op not in self.violations:
            self.violations.append(op)
        raise ComputeViolation(f"torch op {op} {why}")

    def _is_input(self, a: Any) -> bool:
        return isinstance(a, torch.Tensor) and any(a.untyped_storage().data_ptr() == t.untyped_storage().data_ptr()
                                                   for t in self.inputs)


def is_active(guard: ComputeGuard) -> bool:
    """Whether ``guard`` is still on the dispatch-mode stack (a candidate might pop it)."""
    from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

    return any(m is guard for m in _get_current_dispatch_mode_stack())
