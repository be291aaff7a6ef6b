"""Where the checks run: a CUDA GPU, or Triton's interpreter on the CPU."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Platform:
    mode: str  # "gpu" or "interpreter"
    device: str  # torch device type the kernels run on
    name: str
    torch_version: str
    triton_version: str


def detect(force_interpreter: bool = False) -> Platform:
    import torch
    import triton

    gpu = torch.cuda.is_available() and not force_interpreter and os.environ.get("TRITON_INTERPRET") != "1"
    if gpu:
        return Platform("gpu", "cuda", torch.cuda.get_device_name(), torch.__version__, triton.__version__)
    return Platform("interpreter", "cpu", "cpu (triton interpreter)", torch.__version__, triton.__version__)


@functools.cache
def matmul_peak_tflops() -> float:
    """The practical bf16 ceiling of this GPU, measured once (the best of many products, so the
    floor it sets errs on the side of believing a kernel): a time under FLOPs/peak is a lie."""
    import torch

    from harness.timing import Contender, interleaved

    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    ms = min(interleaved([Contender("matmul", lambda: a @ b)], rep_ms=300)[0])
    return 2 * n**3 / (ms * 1e-3) / 1e12
