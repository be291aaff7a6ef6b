"""Judge the honest candidates on a CUDA GPU: the harness's full cascade, then the benchmark shapes.

    python3 tests/honest/gpu_check.py [--out DIR] [--no-timing] [--deadline S] [NAME ...]

Not a pytest module (pytest collects only test_*.py). Needs only torch and triton beside this
checkout (the harness imports nothing else), so it runs on a bare GPU machine with PYTHONPATH
unset. Two parts:

1. ``Checker.check`` (harness/checker.py) on each candidate, exactly the cascade of
   ``evolve check`` and of a search's evaluation: static gate, compile and smoke, the GPU sweep,
   stability, determinism, anti-cheat, and (unless --no-timing) timing against SDPA with the
   re-checks after it. The candidates are checked at once from a thread pool sharing one
   Checker (compiles overlap; the harness takes turns for timing).
2. In this process, each candidate on every benchmark shape: error against the task's fp32
   reference and CUDA-event time of one call (median of 5 after a warm-up), so "well under a
   second per shape" is measured, not assumed.

Writes DIR/verdicts.json (one verdict dict per candidate) and DIR/bench.json, and prints a
summary.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
CANDIDATES = ["autotuned", "split_kv", "lookup_table", "tma_descriptors", "device_descriptors", "gluon_fa2",
              "gluon_wgmma"]


def harness_digest() -> str:
    """sha256 of the harness's sources as checked out here (they change under active work)."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted((ROOT / "harness").rglob("*.py")):
        h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def judge(names: list[str], timing: bool, deadline_s: float, out: Path) -> dict:
    from harness.checker import Checker, CheckOptions

    checker = Checker("mha_fwd", CheckOptions(timing=timing, total_timeout_s=deadline_s))
    print(f"platform: {checker.platform}", flush=True)
    verdicts: dict = {}

    def one(name: str) -> None:
        t0 = time.monotonic()
        v = checker.check((HERE / f"{name}.py").read_text())
        verdicts[name] = v.to_dict()
        fit = f" fitness {v.fitness:.3f}" if v.fitness is not None else ""
        print(f"[{time.monotonic() - t0:6.1f} s] {name}: {v.outcome.value} at {v.stage.value}{fit} {v.reason[:600]}",
              flush=True)
        (out / "verdicts.json").write_text(json.dumps(verdicts, indent=1, default=str))

    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        list(pool.map(one, names))
    return verdicts


def bench(names: list[str], out: Path) -> dict:
    import torch

    from harness.compare import compare
    from harness.tasks.mha_fwd import MhaForward, sm_scale_of

    task = MhaForward()
    results: dict = {}
    for name in names:
        spec = importlib.util.spec_from_file_location(f"honest_{name}", HERE / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        rows = []
        for case in task.benchmark_cases():
            label = task.label(case)
            try:
                inputs = task.make_inputs(case, 1234, "cuda")
                q, k, v = inputs
                fwd = lambda: module.forward(q, k, v, bool(case["causal"]), float(sm_scale_of(case)))  # noqa: E731
                o = fwd()
                torch.cuda.synchronize()
                times = []
                for _ in range(5):
                    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    a.record()
                    fwd()
                    b.record()
                    b.synchronize()
                    times.append(a.elapsed_time(b))
                ms = sorted(times)[len(times) // 2]
                cmp = compare(o, task.reference(inputs, case), task.tolerance(case["dtype"]))
                tflops = task.flops(case) / (ms * 1e-3) / 1e12
                rows.append({"case": label, "ok": cmp.ok, "rel_err": cmp.rel_err, "max_abs_err": cmp.max_abs_err,
                             "ms": ms, "tflops": tflops, "note": cmp.note})
                print(f"  {name:<18} {label:<36} {'ok ' if cmp.ok else 'BAD'} rel {cmp.rel_err:.2e} "
                      f"abs {cmp.max_abs_err:.2e} {ms:8.3f} ms {tflops:6.1f} TFLOP/s", flush=True)
                del inputs, q, k, v, o
            except Exception as e:  # noqa: BLE001
                rows.append({"case": label, "ok": False, "error": f"{type(e).__name__}: {e}"[:2000]})
                print(f"  {name:<18} {label:<36} ERROR {type(e).__name__}: {str(e)[:400]}", flush=True)
        results[name] = rows
        (out / "bench.json").write_text(json.dumps(results, indent=1))
        torch.cuda.empty_cache()
    return results


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*", default=CANDIDATES)
    ap.add_argument("--out", type=Path, default=Path("."))
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--no-bench", action="store_true")
    ap.add_argument("--deadline", type=float, default=480.0, help="per-candidate limit of the cascade, seconds")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import torch
    import triton

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU (interpreter)"
    print(f"torch {torch.__version__} triton {triton.__version__} {gpu}; harness sources {harness_digest()}",
          flush=True)
    verdicts = judge(args.names, not args.no_timing, args.deadline, args.out)
    if not args.no_bench:
        bench(args.names, args.out)
    bad = [n for n, v in verdicts.items() if not v["passed"]]
    print("all passed" if not bad else f"not passed: {', '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
