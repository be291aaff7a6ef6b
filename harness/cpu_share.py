"""A check's processes share the machine's cores with every other check in flight (a search
runs a dozen per GPU), and CPU time is what limits how many checks an hour a GPU gets (measured
on an H200: 16 cores 71% busy while the GPU was 38% busy). So the sandbox and the judge each
keep to one CPU thread for torch's and OpenMP's own work, and wait for the GPU asleep: CUDA's
default in a process with fewer contexts than cores is to spin a core on every synchronize."""

from __future__ import annotations

import ctypes

# For the environment of a spawned process: read when the libraries load.
ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

_CU_CTX_SCHED_BLOCKING_SYNC = 0x4


def share_cpu(cuda: bool) -> bool:
    """One torch thread, and (``cuda``) blocking synchronization on every GPU of this process.
    Call it before CUDA is initialised; returns whether the GPU setting took (without it waits
    spin, which costs CPU, not correctness)."""
    import torch

    torch.set_num_threads(1)
    if not cuda:
        return False
    try:
        cu = ctypes.CDLL("libcuda.so.1")
        if cu.cuInit(0) != 0:
            return False
        count = ctypes.c_int()
        if cu.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return False
        ok = True
        for i in range(count.value):
            dev = ctypes.c_int()
            ok &= cu.cuDeviceGet(ctypes.byref(dev), i) == 0
            ok &= cu.cuDevicePrimaryCtxSetFlags_v2(dev, _CU_CTX_SCHED_BLOCKING_SYNC) == 0
        return ok
    except (OSError, AttributeError):
        return False
