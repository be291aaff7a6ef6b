"""Which variants of the Gluon seed (seeds/mha_fwd_gluon.py) are correct on this GPU, and how fast
each is beside torch's SDPA (default, cuDNN, flash) and the Triton seed (seeds/mha_fwd.py).

    python3 benchmarks/gluon_seed.py --out $OUT/gluon [--variants async,async_ws] [--rep-ms 50]

A variant is the seed with some TUNABLES switches overridden in every entry (VARIANTS below).
1. Every variant is checked first in a process of its own, all at once (an illegal memory
   access poisons a CUDA context for good, and a deadlocked kernel must be killable): the task's
   GPU sweep and stability trials, a grid of lengths (1, 17, 128, 1000, 4099) x head_dim (64, 128)
   x causal x dtype (bf16, fp16), and the 12 benchmark shapes, each against the fp32 reference
   (``task.reference``) within ``task.tolerance``; the Triton seed alongside, on the benchmark
   shapes only (which compiles it before the timing). Each check writes its progress as it goes.
   Together they get --check-timeout seconds; the whole run exits at --budget seconds.
2. The variants that passed are timed here on the benchmark shapes, side by side with the
   baselines (harness.timing: interleaved, inputs refreshed and L2 flushed before every call,
   CUDA graphs where capture works), each implementation checked against the reference on that
   shape first. JSON and Markdown are rewritten after every shape.
Needs only torch, triton and this repository on the path.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEED = ROOT / "seeds" / "mha_fwd_gluon.py"
TRITON_SEED = ROOT / "seeds" / "mha_fwd.py"
# Switch overrides written into every TUNABLES entry of the Gluon seed; "seed" is it as committed.
VARIANTS: dict[str, dict[str, int]] = {
    "seed": {},
    "sync": {"PIPELINE": 0, "WARP_SPEC": 0, "ORDER": 1},
    "async": {"PIPELINE": 1, "WARP_SPEC": 0, "ORDER": 1},
    "ws": {"PIPELINE": 0, "WARP_SPEC": 1, "ORDER": 1},
    "async_ws": {"PIPELINE": 1, "WARP_SPEC": 1, "ORDER": 1},
    "async_persist": {"PIPELINE": 1, "WARP_SPEC": 0, "ORDER": 2},
    "async_ws_persist": {"PIPELINE": 1, "WARP_SPEC": 1, "ORDER": 2},
    "async_ws_n64": {"PIPELINE": 1, "WARP_SPEC": 1, "ORDER": 1, "BLOCK_N": 64},
    "async_ws_s3": {"PIPELINE": 1, "WARP_SPEC": 1, "ORDER": 1, "STAGES": 3},
}


def load_variant(name: str) -> Any:
    """A fresh copy of the Gluon seed module with VARIANTS[name] written into every entry."""
    spec = importlib.util.spec_from_file_location(f"gluon_seed_{name}", SEED)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for entry in module.TUNABLES.values():
        entry.update(VARIANTS[name])
    return module


def check_cases(task: Any) -> list[dict[str, Any]]:
    from harness.tasks.mha_fwd import case

    cases = [t.case for t in task.sweep("gpu")] + [t.case for t in task.stability_trials("gpu")]
    for d in (64, 128):
        for causal in (False, True):
            for dtype in ("bfloat16", "float16"):
                for n in (1, 17, 128, 1000, 4099):
                    cases.append(case(2 if n < 4096 else 1, 3, n, d, causal, dtype))
    return cases + task.benchmark_cases()


def run_check(name: str, out: Path) -> int:
    """The correctness pass of one variant (in a process of its own); stops at the first failure."""
    import torch

    from harness.compare import compare_returned
    from harness.task import get_task

    task = get_task("mha_fwd")
    result: dict[str, Any] = {"variant": name, "passed": False, "cases": 0, "worst_rel": 0.0, "at": None}
    path = out / f"check-{name}.json"

    def save() -> None:
        path.write_text(json.dumps(result, indent=1))

    try:
        module = _module("triton_seed", TRITON_SEED) if name == "triton_seed" else load_variant(name)
    except Exception as e:  # noqa: BLE001
        result["error"] = f"import: {type(e).__name__}: {e}"
        save()
        return 1
    # The Triton seed is checked on the benchmark shapes only: that compiles it, in parallel with
    # the other checks, for the timing process (Triton's on-disk cache).
    cases = task.benchmark_cases() if name == "triton_seed" else check_cases(task)
    for i, c in enumerate(cases):
        result["at"] = task.label(c)
        save()  # a hang or a crash leaves the case it happened in
        t0 = time.perf_counter()
        try:
            inputs = task.make_inputs(c, 100 + i, "cuda")
            got = task.call(module.forward, inputs, c)
            torch.cuda.synchronize()
            cmp = compare_returned(task, got, task.reference(inputs, c), c)
        except Exception as e:  # noqa: BLE001  (compile error, illegal access: this process is done)
            result["error"] = f"{task.label(c)}: {_innermost(e)}"
            save()
            return 1
        if not cmp.ok:
            result["error"] = f"{task.label(c)}: wrong result: {cmp.note}"
            save()
            return 1
        result["cases"] = i + 1
        result["worst_rel"] = max(result["worst_rel"], cmp.rel_err or 0.0)
        print(f"  [{name}] {task.label(c)} ok rel={cmp.rel_err or 0.0:.2e} ({time.perf_counter() - t0:.1f} s)", flush=True)
    result["passed"] = True
    result["at"] = None
    save()
    return 0


def _innermost(e: BaseException) -> str:
    """The root cause of a chain of exceptions (a CompilationError's outer links show call sites)."""
    while e.__cause__ is not None:
        e = e.__cause__
    return f"{type(e).__name__}: {str(e)[:1500]}"


def check_all(names: list[str], out: Path, timeout_s: float) -> dict[str, dict[str, Any]]:
    """Every variant's check in a subprocess of its own, all at once."""
    procs = {}
    for name in names:
        log = open(out / f"check-{name}.log", "w")  # noqa: SIM115  (closed with the process below)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--check", name, "--out", str(out)]
        procs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT), log)
    start = time.monotonic()
    results = {}
    for name, (proc, log) in procs.items():
        try:
            proc.wait(timeout=max(1.0, timeout_s - (time.monotonic() - start)))
            timed_out = False
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            timed_out = True
        log.close()
        try:
            res = json.loads((out / f"check-{name}.json").read_text())
        except (OSError, ValueError):
            res = {"variant": name, "passed": False, "cases": 0}
        if timed_out:
            res["passed"] = False
            res["error"] = f"timed out after {timeout_s:.0f} s (hang?) in {res.get('at')}"
        elif proc.returncode != 0 and "error" not in res:
            res["passed"] = False
            tail = (out / f"check-{name}.log").read_text()[-800:]
            res["error"] = f"exit status {proc.returncode}: {tail}"
        results[name] = res
        status = "passed" if res.get("passed") else f"FAILED: {res.get('error', '?')[:300]}"
        print(f"check {name}: {res.get('cases', 0)} cases, {status}", flush=True)
    return results


def _module(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def time_shapes(names: list[str], checks: dict[str, dict[str, Any]], meta: dict[str, Any], out: Path,
                rep_ms: float) -> None:
    import torch

    from harness.compare import compare_returned
    from harness.task import get_task
    from harness.timing import Contender, graphed, interleaved, median

    task = get_task("mha_fwd")
    impls: dict[str, Any] = {}
    baselines = task.baselines()
    impls["sdpa_cudnn"] = baselines["sdpa_cudnn"]
    impls["sdpa_flash"] = baselines["sdpa_flash"]
    seed = _module("triton_seed", TRITON_SEED)
    impls["triton_seed"] = lambda inputs, c, m=seed: task.call(m.forward, inputs, c)
    for name in names:
        if checks.get(name, {}).get("passed"):
            m = load_variant(name)
            impls[f"gluon_{name}"] = lambda inputs, c, m=m: task.call(m.forward, inputs, c)
    rows: list[dict[str, Any]] = []
    for c in task.benchmark_cases():
        t0 = time.perf_counter()
        row: dict[str, Any] = {k: c[k] for k in ("batch", "heads", "seq", "head_dim", "causal", "dtype")}
        try:
            gen = torch.Generator(device="cuda").manual_seed(1)
            ref_inputs = task.make_inputs(c, 1234, "cuda")
            ref = task.reference(ref_inputs, c)
            del ref_inputs
            base_name, _ = task.default_baseline(task.make_inputs(c, 1234, "cuda"), c)
            row["default_backend"] = base_name
            contenders = []
            for name, fn in [("sdpa_default", None), *impls.items()]:
                inputs = task.make_inputs(c, 1234, "cuda")
                if fn is None:
                    _, base = task.default_baseline(inputs, c)
                    fn = (lambda base: lambda inputs, c: base())(base)
                try:
                    cmp = compare_returned(task, fn(inputs, c), ref, c)
                except Exception as e:  # noqa: BLE001  (a backend that does not run this shape)
                    row[name] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
                    continue
                if not cmp.ok:
                    row[name] = {"error": f"wrong result: {cmp.note}"}
                    continue

                def call(fn: Any = fn, inputs: list[torch.Tensor] = inputs) -> object:
                    return fn(inputs, c)

                contenders.append(Contender(name, graphed(call) or call,
                                            lambda inputs=inputs: task.randomize(inputs, c, gen)))
            del ref
            samples = interleaved(contenders, rep_ms=rep_ms)
            for con, s in zip(contenders, samples):
                ms = median(s)
                row[con.name] = {"ms": ms, "tflops": task.flops(c) / (ms * 1e-3) / 1e12}
        except Exception as e:  # noqa: BLE001  (keep what was measured; a poisoned context ends the run)
            row["error"] = f"{type(e).__name__}: {str(e)[:300]}"
        rows.append(row)
        _write(out, meta, checks, rows, ["sdpa_default", *impls])
        cells = ", ".join(f"{n} {_tf(row.get(n))}" for n in ["sdpa_default", *impls])
        print(f"D{c['head_dim']} N{c['seq']} causal={c['causal']} ({time.perf_counter() - t0:.1f} s): {cells}",
              flush=True)
        if "error" in row and "CUDA" in row["error"]:
            print("CUDA error in the timing process: stopping", flush=True)
            break


def _tf(cell: Any) -> str:
    return f"{cell['tflops']:.0f}" if isinstance(cell, dict) and "tflops" in cell else "-"


def _ratio(row: dict[str, Any], name: str) -> float | None:
    x, y = row.get(name), row.get("sdpa_cudnn")
    if isinstance(x, dict) and isinstance(y, dict) and "tflops" in x and "tflops" in y:
        return x["tflops"] / y["tflops"]
    return None


def _write(out: Path, meta: dict[str, Any], checks: dict[str, dict[str, Any]], rows: list[dict[str, Any]],
           names: list[str]) -> None:
    geo = {}
    for n in names:
        rs = [r for r in (_ratio(row, n) for row in rows) if r]
        geo[n] = {"geomean_vs_cudnn": math.exp(sum(map(math.log, rs)) / len(rs)) if rs else None, "shapes": len(rs)}
    (out / "gluon_seed.json").write_text(json.dumps({**meta, "checks": checks, "rows": rows, "geomean": geo},
                                                    indent=1))
    lines = [f"Device: {meta['device']}; torch {meta['torch']}; cuDNN {meta['cudnn']}; triton {meta['triton']}; "
             f"python {meta['python']}. {meta['method']}", "", "Correctness (own process per variant):", "",
             "| variant | switches | cases passed | worst rel err | result |", "|---|---|---|---|---|"]
    for name, res in checks.items():
        worst = res.get("worst_rel")
        lines.append(f"| {name} | {VARIANTS.get(name, {})} | {res.get('cases', 0)} | "
                     f"{f'{worst:.2e}' if worst else '-'} | "
                     f"{'passed' if res.get('passed') else 'FAILED: ' + str(res.get('error', '?'))[:200]} |")
    cands = [n for n in names if not n.startswith("sdpa_")]
    head = ["D", "N", "B", "H", "causal", *names, *[f"{n} / cudnn" for n in cands]]
    lines += ["", "Forward TFLOP/s (4·B·H·N²·D, halved when causal), bf16:", "",
              "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [str(r["head_dim"]), str(r["seq"]), str(r["batch"]), str(r["heads"]), "yes" if r["causal"] else "no"]
        cells += [_tf(r.get(n)) for n in names]
        cells += [f"{x:.2f}x" if (x := _ratio(r, n)) else "-" for n in cands]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Geomean vs cuDNN over the shapes both ran: " + ", ".join(
        f"{n} {g['geomean_vs_cudnn']:.3f} ({g['shapes']})" for n, g in geo.items() if g["geomean_vs_cudnn"])]
    errors = [(r["head_dim"], r["seq"], r["causal"], n, r[n]["error"]) for r in rows for n in names
              if isinstance(r.get(n), dict) and "error" in r[n]]
    errors += [(r["head_dim"], r["seq"], r["causal"], "shape", r["error"]) for r in rows if "error" in r]
    if errors:
        lines += ["", "Not timed:"] + [f"- D{d} N{n} causal={c} {name}: {e}" for d, n, c, name, e in errors]
    (out / "gluon_seed.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output folder (gluon_seed.json, gluon_seed.md, check logs)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--rep-ms", type=float, default=50.0, help="timing window per shape, of the slowest")
    ap.add_argument("--check-timeout", type=float, default=90.0, help="seconds for all the checks together")
    ap.add_argument("--budget", type=float, default=150.0,
                    help="seconds after which the run exits, keeping the shapes measured so far")
    ap.add_argument("--check", metavar="VARIANT", help=argparse.SUPPRESS)  # the per-variant subprocess
    ap.add_argument("--dry-run", action="store_true", help="parse, list the variants and stop (no GPU)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.check:
        return run_check(args.check, out)
    names = [n for n in args.variants.split(",") if n]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    if args.dry_run:
        for n in names:
            print(f"{n}: {VARIANTS[n]}")
        return 0
    import torch
    import triton

    start = time.perf_counter()
    # A kernel that passed its check may still hang here (a race): end the run at the budget,
    # keeping the JSON and Markdown of the shapes timed so far.
    watchdog = threading.Timer(args.budget, lambda: (print(f"budget of {args.budget:g} s spent: exiting",
                                                          flush=True), os._exit(3)))
    watchdog.daemon = True
    watchdog.start()
    meta = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
            "cudnn": torch.backends.cudnn.version(), "triton": triton.__version__,
            "python": platform.python_version(),
            "method": f"Medians of interleaved timing (harness.timing), inputs refreshed and L2 flushed before "
                      f"every call, CUDA graphs where capture works, {args.rep_ms:g} ms of the slowest per shape; "
                      "every implementation checked against the fp32 reference on each shape first."}
    print(f"{meta['device']}, torch {meta['torch']}, cuDNN {meta['cudnn']}, triton {meta['triton']}", flush=True)
    checks = check_all([*names, "triton_seed"], out, args.check_timeout)
    print(f"checks done in {time.perf_counter() - start:.0f} s", flush=True)
    _write(out, meta, checks, [], [])
    time_shapes(names, checks, meta, out, args.rep_ms)
    print(f"done in {time.perf_counter() - start:.0f} s; {out / 'gluon_seed.md'}", flush=True)
    print((out / "gluon_seed.md").read_text(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
