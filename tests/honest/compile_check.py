"""Compile every honest candidate's kernels for sm_90 (H100/H200) on a machine without a GPU.

Run it with an environment holding the GPU machine's Triton (3.6), e.g.

    /tmp/t36/bin/python tests/honest/compile_check.py [NAME ...]

Not a pytest module (pytest collects only test_*.py). It installs a stand-in for Triton's
CUDA driver that reports an sm_90 target, fakes the launch (no kernel runs) and reads each
compiled cubin's registers with the cuobjdump that ships with Triton; then it calls every
candidate's own `forward` on meta-device tensors (no memory, data_ptr 0, so aligned) for each
(head_dim, causal, dtype) variant of the task's GPU sweep, stability trials and benchmark
shapes, so every kernel is compiled exactly as forward would launch it on the GPU, launch
parameters, autotuner configs (the fake benchmarker runs each config once, i.e. compiles it)
and descriptors included. It prints, per compiled kernel: name, num_warps, num_stages, dynamic
shared memory, registers per thread and spills, and fails on any compile error or a kernel over
the H100/H200 limits (227 KB of shared memory per block, 255 registers per thread).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CANDIDATES = ["autotuned", "split_kv", "lookup_table", "tma_descriptors", "device_descriptors", "gluon_fa2",
              "gluon_wgmma"]
sys.path.insert(0, str(ROOT))
MAX_SHARED = 232448  # bytes of shared memory a block may opt into on sm_90 (227 KB)

os.environ.setdefault("TRITON_CACHE_DIR", tempfile.mkdtemp(prefix="honest-triton-cache-"))
os.environ.pop("TRITON_INTERPRET", None)

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.runtime import driver  # noqa: E402

CUOBJDUMP = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
COMPILED: list[dict] = []


def _resources(name: str, cubin: bytes) -> tuple[int, int]:
    """(registers, spill bytes) of one kernel, from cuobjdump's resource usage."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([str(CUOBJDUMP), "--dump-resource-usage", f.name], capture_output=True,
                              text=True, check=True).stdout
    regs = re.search(r"REG:(\d+)", text)
    local = re.search(r"LOCAL:(\d+)", text)
    return (int(regs.group(1)) if regs else -1), (int(local.group(1)) if local else -1)


PTX_MARKERS = {"mma.sync": r"mma\.sync", "wgmma": r"wgmma\.mma_async", "tma": r"cp\.async\.bulk\.tensor",
               "tensormap": r"tensormap\.", "mbarrier": r"mbarrier\.try_wait", "cp.async": r"cp\.async\.c[ag]\."}


def _ptx_mix(ptx: str) -> str:
    """Which hardware paths the kernel uses, by a count of marker instructions in its PTX."""
    counts = {name: len(re.findall(marker, ptx)) for name, marker in PTX_MARKERS.items()}
    return " ".join(f"{name}={n}" for name, n in counts.items() if n)


class _Utils:
    def get_device_properties(self, device):
        return {"max_shared_mem": MAX_SHARED, "multiprocessor_count": 132, "max_num_regs": 65536,
                "warpSize": 32, "sm_clock_rate": 1980000, "mem_clock_rate": 3201000, "mem_bus_width": 6144}

    def load_binary(self, name, kernel, shared, device):
        regs, spills = _resources(name, kernel)
        return 1, 1, regs, spills, 1024


class _Launcher:
    def __init__(self, src, metadata):
        self.metadata = metadata

    def __call__(self, *args, **kwargs):
        return None  # no GPU: the launch itself is skipped


class _FakeCudaDriver:
    """Just enough of Triton's CUDA driver for JITFunction.run to compile for sm_90."""

    def __init__(self):
        self.utils = _Utils()
        self.launcher_cls = _Launcher

    def is_active(self):
        return True

    def get_current_target(self):
        return GPUTarget("cuda", 90, 32)

    def get_current_device(self):
        return 0

    def set_current_device(self, device):
        pass

    def get_current_stream(self, device=None):
        return 0

    def get_active_torch_device(self):
        return torch.device("meta")

    def get_device_interface(self):
        return torch.cuda

    def map_python_to_cpp_type(self, ty):
        from triton.backends.nvidia.driver import ty_to_cpp

        return ty_to_cpp(ty)

    def get_benchmarker(self):
        def bench(fn, quantiles=None, **kwargs):
            fn()  # compiles (and fake-launches) the config
            return [1.0, 1.0, 1.0] if quantiles else 1.0

        return bench

    def get_empty_cache_for_benchmark(self):
        return torch.empty(0, device="meta")

    def clear_cache(self, cache):
        pass


def _record_compiles():
    """Hook Triton's compile-cache-miss path to list every kernel compiled."""
    orig_init = triton.compiler.compiler.CompiledKernel._init_handles

    def init_handles(self):
        first = self.module is None
        orig_init(self)
        if first:
            md = self.metadata
            COMPILED.append({"name": self.name, "warps": md.num_warps, "stages": md.num_stages,
                             "shared": md.shared, "regs": self.n_regs, "spills": self.n_spills,
                             "scratch": getattr(md, "global_scratch_size", 0), "ptx": _ptx_mix(self.asm["ptx"])})

    triton.compiler.compiler.CompiledKernel._init_handles = init_handles


def variants() -> list[dict]:
    """One case per distinct compile-relevant variant of the GPU sweep, stability and benchmarks:
    (head_dim, causal, dtype), each at the smallest and largest sequence length used with it."""
    from harness.tasks.mha_fwd import MhaForward

    task = MhaForward()
    cases = [t.case for t in task.sweep("gpu")] + [t.case for t in task.stability_trials("gpu")]
    cases += task.benchmark_cases()
    picked: dict[tuple, dict] = {}
    for c in cases:
        key = (c["head_dim"], c["causal"], c["dtype"])
        for tag, better in (("min", lambda a, b: a["seq"] < b["seq"]), ("max", lambda a, b: a["seq"] > b["seq"])):
            if (key, tag) not in picked or better(c, picked[(key, tag)]):
                picked[(key, tag)] = c
    uniq = {}
    for c in picked.values():
        uniq[(c["head_dim"], c["causal"], c["dtype"], c["batch"], c["heads"], c["seq"])] = c
    return sorted(uniq.values(), key=lambda c: (c["head_dim"], c["causal"], c["dtype"], c["seq"]))


def load(name: str):
    path = HERE / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"honest_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compiled_per_case(module, cases):
    """For each case: its label, the exception ``module.forward`` raised on meta tensors of its
    shape (or None), and the kernels that call compiled."""
    dtypes = {"float16": torch.float16, "bfloat16": torch.bfloat16}
    for c in cases:
        start = len(COMPILED)
        shape = (c["batch"], c["heads"], c["seq"], c["head_dim"])
        q, k, v = (torch.empty(shape, dtype=dtypes[c["dtype"]], device="meta") for _ in range(3))
        label = f"D{c['head_dim']} {c['dtype']} {'causal' if c['causal'] else 'full'} N{c['seq']}"
        try:
            module.forward(q, k, v, c["causal"], 0.125)
        except Exception as e:  # noqa: BLE001
            yield label, e, []
            continue
        yield label, None, COMPILED[start:]


def main(names: list[str]) -> int:
    from harness.static_gate import check_source

    driver.set_active(_FakeCudaDriver())
    _record_compiles()
    cases = variants()
    failed = []
    for name in names:
        gate = check_source((HERE / f"{name}.py").read_text())
        print(f"== {name}: static gate {'ok' if gate.ok else 'REJECTED: ' + gate.reason}")
        if not gate.ok:
            failed.append(name)
        module = load(name)
        total = 0
        for label, error, kernels in compiled_per_case(module, cases):
            if error is not None:
                print(f"   {label}: FAILED {type(error).__name__}: {str(error)[:1500]}")
                failed.append(f"{name} {label}")
                continue
            for kinfo in kernels:
                over = kinfo["shared"] > MAX_SHARED or kinfo["regs"] > 255
                print(f"   {label:<30} {kinfo['name']:<14} warps={kinfo['warps']} stages={kinfo['stages']} "
                      f"shared={kinfo['shared']:>6} B regs={kinfo['regs']:>3} spill={kinfo['spills']} B"
                      f"{' global_scratch=' + str(kinfo['scratch']) + ' B' if kinfo['scratch'] else ''}"
                      f" [{kinfo['ptx']}]"
                      f"{'  OVER LIMIT' if over else ''}")
                if over:
                    failed.append(f"{name} {kinfo['name']} over limits")
            total += len(kernels)
        print(f"   {total} kernels compiled for sm_90 over {len(cases)} variants")
    print("FAILED: " + "; ".join(failed) if failed else "all compiled for sm_90")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or CANDIDATES))
