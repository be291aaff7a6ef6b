"""Compile the Gluon seed (seeds/mha_fwd_gluon.py) for sm_90 without a GPU, per switch variant.

    /tmp/t36/bin/python tests/honest/compile_gluon_seed.py [VARIANT ...]

Not a pytest module. Uses compile_check.py's stand-in CUDA driver (sm_90 target, launches
skipped, registers and spills read from each cubin) and its list of (head_dim, causal, dtype)
cases of the task's GPU sweep, stability trials and benchmarks; for each variant of
benchmarks/gluon_seed.py (its switches written into every TUNABLES entry) it calls the seed's
``forward`` on meta tensors for every case, and prints each compiled kernel's shared memory,
registers, spills and PTX paths. With ``--ptx DIR`` it also writes each kernel's PTX there.
Fails on a compile error or a kernel over the H100/H200 limits.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check = _module("honest_compile_check", HERE / "compile_check.py")  # sets the cache dir, imports triton
sys.path.insert(0, str(ROOT / "benchmarks"))
import gluon_seed  # noqa: E402  (the variant table, so that what compiles here is what the GPU runs)
from triton.runtime import driver  # noqa: E402


def main(argv: list[str]) -> int:
    from harness.static_gate import check_source

    ptx_dir = None
    if argv[:1] == ["--ptx"]:
        ptx_dir, argv = Path(argv[1]), argv[2:]
        ptx_dir.mkdir(parents=True, exist_ok=True)
    names = argv or list(gluon_seed.VARIANTS)
    seed_file = ROOT / "seeds" / "mha_fwd_gluon.py"
    gate = check_source(seed_file.read_text())
    print(f"static gate: {'ok' if gate.ok else 'REJECTED: ' + gate.reason}")
    failed = [] if gate.ok else ["static gate"]
    driver.set_active(check._FakeCudaDriver())
    check._record_compiles()
    if ptx_dir is not None:
        _keep_ptx(ptx_dir)
    cases = check.variants()
    for name in names:
        module = gluon_seed.load_variant(name)
        print(f"== {name}: {gluon_seed.VARIANTS[name]}")
        for label, error, kernels in check.compiled_per_case(module, cases):
            if error is not None:
                print(f"   {label}: FAILED {_innermost(error)[:3000]}")
                failed.append(f"{name} {label}")
                continue
            for kinfo in kernels:
                over = kinfo["shared"] > check.MAX_SHARED or kinfo["regs"] > 255
                print(f"   {label:<30} warps={kinfo['warps']} shared={kinfo['shared']:>6} B "
                      f"regs={kinfo['regs']:>3} spill={kinfo['spills']} B [{kinfo['ptx']}]"
                      f"{'  OVER LIMIT' if over else ''}", flush=True)
                if over or kinfo["spills"]:
                    failed.append(f"{name} {label} {'over limits' if over else 'spills'}")
    print("FAILED: " + "; ".join(failed) if failed else "all compiled for sm_90")
    return 1 if failed else 0


def _innermost(e: BaseException) -> str:
    """The root cause of a chain of CompilationErrors (the outer ones only show call sites)."""
    while e.__cause__ is not None:
        e = e.__cause__
    return f"{type(e).__name__}: {e}"


def _keep_ptx(folder: Path) -> None:
    import triton

    orig = triton.compiler.compiler.CompiledKernel._init_handles

    def init_handles(self):
        first = self.module is None
        orig(self)
        if first:
            n = len(list(folder.iterdir()))
            (folder / f"{n:03d}_{self.name}.ptx").write_text(self.asm["ptx"])

    triton.compiler.compiler.CompiledKernel._init_handles = init_handles


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
