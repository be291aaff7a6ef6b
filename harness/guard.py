"""The compute guard: no torch arithmetic may run inside a candidate's ``forward``.

Enforced at the dispatcher (a ``TorchDispatchMode``), so renamed or obfuscated calls are
caught as surely as ``F.scaled_dot_product_attention``. Allocation, views, copies and fills
pass: a launcher needs them, and Triton's interpreter moves tensors with them.
"""

from __future__ import annotations

from typing import Any

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


class ComputeViolation(RuntimeError):
    """Raised into the candidate when it runs a torch compute op; also recorded by the guard."""


class ComputeGuard(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.violations: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = func.overloadpacket.__name__
        if name not in ALLOWED_OPS:
            op = str(func.overloadpacket)
            if op not in self.violations:
                self.violations.append(op)
            raise ComputeViolation(f"torch compute op {op} is not allowed inside forward")
        return func(*args, **(kwargs or {}))


def is_active(guard: ComputeGuard) -> bool:
    """Whether ``guard`` is still on the dispatch-mode stack (a candidate might pop it)."""
    from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

    return any(m is guard for m in _get_current_dispatch_mode_stack())
