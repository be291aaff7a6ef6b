"""The architecture of the GPU a run was measured on, from the name the harness recorded.

The archive keeps the device's name only. The exported package falls back to torch's SDPA on
GPUs of another architecture; for a name not listed here it trusts only that exact model.
"""

from __future__ import annotations

# Substrings of torch.cuda.get_device_name(), most specific first, and their compute capability.
_CAPABILITIES: tuple[tuple[str, tuple[int, int]], ...] = (
    ("GH200", (9, 0)),
    ("H100", (9, 0)),
    ("H200", (9, 0)),
    ("H800", (9, 0)),
    ("GB200", (10, 0)),
    ("B200", (10, 0)),
    ("A100", (8, 0)),
    ("A800", (8, 0)),
    ("L40", (8, 9)),
    ("L4", (8, 9)),
    ("RTX 4090", (8, 9)),
    ("A10", (8, 6)),
    ("RTX 3090", (8, 6)),
)


def compute_capability(device_name: str) -> tuple[int, int] | None:
    for fragment, capability in _CAPABILITIES:
        if fragment in device_name:
            return capability
    return None
