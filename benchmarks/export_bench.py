"""Benchmark an exported attention package (``evolve export``) against torch's default SDPA
(plain ``F.scaled_dot_product_attention``, whichever backend torch picks; the backend it
resolves to is named per shape), and beside it SDPA's flash and cuDNN backends and
FlexAttention, on the task's benchmark shapes (``--task gqa_fwd``: grouped-query attention at
Llama 3's 32/8 heads, called with ``enable_gqa=True``, without FlexAttention), forward and
forward+backward, in bf16. The
package and the default are timed in turns in one pass, so their ratio is a side-by-side one.
Every implementation's output, and in forward+backward its gradients, is checked against the
fp32 reference before it is timed; the package runs in strict mode, so a call that fell back to
torch's SDPA fails instead of being timed as the package (a bucket the export routed to the
default calls it by design: there the package should time like the default). Reports, per
shape, what the package routes to (forward, and backward: its evolved kernel or torch's default)
and the speedup the export measured there. Also checks, on
one shape, that the package replays from a CUDA graph and compiles with fullgraph=True.

Needs torch, triton, the package and this repository's ``harness/`` only. Writes JSON and a
Markdown table after every shape, so an interrupted run keeps what it measured.

    python benchmarks/export_bench.py --package benchmarks/exported/h100_attention \\
        --out benchmarks/results/export-h100

``--smoke`` runs the same path on tiny float16 shapes on the CPU through Triton's interpreter
(TRITON_INTERPRET=1), timed by the wall clock and without SDPA backends or FlexAttention: a
test of this script, not a measurement.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
import triton

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.attention import Impl, flex_impl, machine_line, progress_line, table  # noqa: E402
from harness.compare import compare_returned  # noqa: E402
from harness.task import Task, get_task  # noqa: E402
from harness.tasks.gqa_fwd import gqa_case  # noqa: E402
from harness.tasks.mha_fwd import case as mha_case  # noqa: E402
from harness.tasks.mha_fwd import sm_scale_of  # noqa: E402

TASKS = ("mha_fwd", "gqa_fwd")
FWD_BWD_FLOPS = 3.5  # backward does 2.5x the forward's matmul work (recomputation not counted)
Timer = Callable[[list[Callable[[], object]]], list[float]]  # calls timed in turns -> ms each


def load_package(where: str) -> ModuleType:
    """An export's directory (the one holding pyproject.toml), or the name of an installed one."""
    directory = Path(where)
    if not directory.is_dir():
        return importlib.import_module(where)
    found = [p.parent.name for p in directory.glob("*/dispatch.json")]
    if len(found) != 1:
        sys.exit(f"{directory} holds no exported package (no <package>/dispatch.json)")
    sys.path.insert(0, str(directory.resolve()))
    package = importlib.import_module(found[0])
    if package.TABLE.data.get("format", 1) < 3:
        sys.exit(f"{directory} was written by an older evolve export, without grouped-query and backward rows; "
                 "export again")
    return package


def make_case(batch: int, heads: int, seq: int, head_dim: int, causal: bool, dtype: str,
              task: Task) -> dict[str, Any]:
    """A case of ``task``; gqa_fwd's has a quarter as many key/value heads (the benchmark's 32/8)."""
    if task.name == "gqa_fwd":
        return gqa_case(batch, heads, max(1, heads // 4), seq, head_dim, causal, dtype)
    return mha_case(batch, heads, seq, head_dim, causal, dtype)


def _gqa(case: dict[str, Any]) -> bool:
    return case.get("kv_heads", case["heads"]) != case["heads"]


def package_impl(package: ModuleType) -> Impl:
    def run(inputs: list[torch.Tensor], case: dict[str, Any]) -> torch.Tensor:
        q, k, v = inputs
        return package.scaled_dot_product_attention(q, k, v, is_causal=case["causal"], scale=sm_scale_of(case),
                                                    enable_gqa=_gqa(case), strict=True)

    return run


def default_impl(inputs: list[torch.Tensor], case: dict[str, Any]) -> torch.Tensor:
    """What users call without the package: plain SDPA, torch choosing the backend."""
    q, k, v = inputs
    return F.scaled_dot_product_attention(q, k, v, is_causal=case["causal"], scale=sm_scale_of(case),
                                          enable_gqa=_gqa(case))


def route(package: ModuleType, case: dict[str, Any]) -> dict[str, Any]:
    """What the package runs on this shape (forward, and the backward of a training call), and
    what the export measured for the forward's bucket."""
    dtype = getattr(torch, case["dtype"])
    group = case["heads"] // case.get("kv_heads", case["heads"])
    table = package.TABLE
    found = table.route_for(case["head_dim"], case["causal"], dtype, case["seq"], group)
    if found is None:
        return {"runs": "fallback (not covered)", "backward": "-"}
    row = next(r for r in table.data["table"]
               if (r["direction"], r["group"], r["head_dim"], r["causal"], r["dtype"], r["min_seq"]) ==
               ("forward", group, case["head_dim"], case["causal"], case["dtype"], found.min_seq))
    backward = table.backward_kernel(case["head_dim"], case["causal"], dtype, case["seq"], group)
    return {"runs": found.kernel or "default", "program": row["program"], "speedup": row["speedup"],
            "low": row["speedup_low"], "high": row["speedup_high"], "retimed": row["retimed"],
            "baseline": row["baseline"],
            "backward": f"{backward} (after torch's flash forward)" if backward else "torch's default SDPA"}


def reference_grads(inputs: list[torch.Tensor], case: dict[str, Any], dout: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Exact gradients (fp32 on a GPU, fp64 on the CPU); SDPA's memory-efficient backend keeps the
    long shapes in memory, its math backend covers the rest."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    exact_dtype = torch.float64 if dout.device.type == "cpu" else torch.float32
    exact = [t.detach().to(exact_dtype).requires_grad_() for t in inputs]
    with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]):
        out = F.scaled_dot_product_attention(*exact, is_causal=case["causal"], scale=sm_scale_of(case),
                                             enable_gqa=_gqa(case))
    return torch.autograd.grad(out, exact, dout.to(exact_dtype))


def gradient_error(grads: tuple[torch.Tensor, ...], ref: tuple[torch.Tensor, ...], bound: float) -> str | None:
    """Relative norm error of dq, dk and dv (an elementwise bound would flag bf16 rounding of
    the largest gradients, which every implementation shares)."""
    for name, g, r in zip(("dq", "dk", "dv"), grads, ref):
        if not bool(torch.isfinite(g).all()):
            return f"{name} has NaN/Inf"
        rel = float((g.to(r.dtype) - r).norm() / r.norm())
        if rel > bound:
            return f"{name} relative error {rel:.3g} > {bound:g}"
    return None


def measure(task: Task, case: dict[str, Any], impls: dict[str, Impl], timer: Timer, device: str,
            fwd: dict[str, Any], bwd: dict[str, Any]) -> None:
    """One shape: fills ``fwd`` and ``bwd`` (forward+backward) with each implementation's
    TFLOP/s, or the reason it was not timed; the implementations that computed the right
    answer are timed in turns."""
    inputs = task.make_inputs(case, 1234, device)
    ref = task.reference(inputs, case)
    tol = task.outputs(case)[0].tolerance
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    dout = task.make_inputs(case, 99, device)[0]
    ref_grads = reference_grads(inputs, case, dout)
    flops = task.flops(case)
    forwards: dict[str, Callable[[], object]] = {}
    steps: dict[str, Callable[[], object]] = {}
    for name, fn in impls.items():
        try:
            cmp = compare_returned(task, fn(inputs, case), ref, case)
            if not cmp.ok:
                fwd[name] = bwd[name] = {"error": f"wrong result: {cmp.note}"}
                continue
            fwd[name] = {"rel_err": cmp.rel_err}
            forwards[name] = lambda fn=fn: fn(inputs, case)

            def step(fn: Impl = fn) -> tuple[torch.Tensor, ...]:
                return torch.autograd.grad(fn(leaves, case), leaves, dout)

            problem = gradient_error(step(), ref_grads, tol.rel)
            if problem:
                bwd[name] = {"error": f"wrong gradient: {problem}"}
                continue
            steps[name] = step
        except Exception as e:  # a backend that does not run this case on this GPU
            for row in (fwd, bwd):
                row.setdefault(name, {"error": f"{type(e).__name__}: {str(e)[:200]}"})
    for row, calls, work in ((fwd, forwards, flops), (bwd, steps, FWD_BWD_FLOPS * flops)):
        if not calls:
            continue
        try:
            for name, ms in zip(calls, timer(list(calls.values()))):
                row[name] = {**row.get(name, {}), "ms": ms, "tflops": work / (ms * 1e-3) / 1e12}
        except Exception as e:
            for name in calls:
                row[name] = {"error": f"timing failed: {type(e).__name__}: {str(e)[:200]}"}


def package_checks(package: ModuleType, task: Task, device: str, dtype: str) -> dict[str, str]:
    """The claims the GPU must confirm: replay from a CUDA graph, fullgraph compilation."""
    head_dim = [r for r in package.TABLE.data["table"] if r["direction"] == "forward"][-1]["head_dim"]
    c = make_case(2, 4, 300, head_dim, True, dtype, task)
    inputs = task.make_inputs(c, 5, device)
    run = package_impl(package)
    out: dict[str, str] = {}
    try:
        backend = "inductor" if device == "cuda" else "aot_eager"
        breaks = torch._dynamo.explain(lambda *t: run(list(t), c))(*inputs).graph_break_count
        compiled = torch.compile(lambda *t: run(list(t), c), fullgraph=True, backend=backend)
        same = torch.equal(compiled(*inputs), run(inputs, c))
        out["torch.compile(fullgraph=True)"] = f"{backend}, {breaks} graph breaks, {'equal to' if same else 'DIFFERS from'} eager"
    except Exception as e:
        out["torch.compile(fullgraph=True)"] = f"FAILED: {type(e).__name__}: {str(e)[:200]}"
    if device == "cuda":
        try:
            run(inputs, c)  # compile the kernel outside the capture
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                captured = run(inputs, c)
            task.refill_inputs(inputs, c, 6)
            graph.replay()
            same = torch.equal(captured, run(inputs, c))
            out["CUDA graph"] = "replay after refilling the inputs " + ("equals eager" if same else "DIFFERS from eager")
        except Exception as e:
            out["CUDA graph"] = f"FAILED: {type(e).__name__}: {str(e)[:200]}"
    return out


def gpu_timer(calls: list[Callable[[], object]], rep_ms: float) -> list[float]:
    """Medians of the calls timed in turns (A B A B ...), as the judge times."""
    from harness.timing import Contender, interleaved, median

    return [median(s) for s in interleaved([Contender(str(i), c) for i, c in enumerate(calls)], rep_ms=rep_ms)]


def wall_timer(calls: list[Callable[[], object]]) -> list[float]:
    out = []
    for call in calls:
        call()
        samples = []
        for _ in range(3):
            start = time.perf_counter()
            call()
            samples.append((time.perf_counter() - start) * 1e3)
        out.append(min(samples))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--package", required=True, help="an export's directory, or an installed package's name")
    ap.add_argument("--out", required=True, help="output path without extension (.json and .md are written)")
    ap.add_argument("--task", choices=TASKS, default="mha_fwd", help="whose benchmark shapes to time on")
    ap.add_argument("--rep-ms", type=float, default=100)
    ap.add_argument("--time-limit-s", type=float, default=180,
                    help="start no FlexAttention shape (compiled per shape, the slow part) after this many seconds")
    ap.add_argument("--smoke", action="store_true", help="tiny fp16 shapes on the CPU through Triton's interpreter")
    args = ap.parse_args()
    if args.smoke and os.environ.get("TRITON_INTERPRET") != "1":
        sys.exit("--smoke runs the kernels in Triton's interpreter: set TRITON_INTERPRET=1")

    package = load_package(args.package)
    task = get_task(args.task)
    impls: dict[str, Impl] = {"default": default_impl, package.__name__: package_impl(package)}
    later: dict[str, Impl] = {}  # compile-heavy: timed after everything else, within --time-limit-s
    if args.smoke:
        device, dtype, timer = "cpu", "float16", wall_timer
        cases = [make_case(1, 4, 40, d, causal, dtype, task) for d in (64, 128) for causal in (False, True)]
        peak = math.nan
    else:
        from harness.device import matmul_peak_tflops

        device, dtype = "cuda", "bfloat16"
        timer = functools.partial(gpu_timer, rep_ms=args.rep_ms)
        cases = task.benchmark_cases()
        impls.update({n: f for n, f in task.baselines().items() if n in ("sdpa_flash", "sdpa_cudnn")})
        if task.name == "mha_fwd":  # flex_impl calls FlexAttention without enable_gqa
            later["flex"] = flex_impl()
        peak = matmul_peak_tflops()

    dispatch = package.TABLE.data
    meta = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu (triton interpreter, smoke)",
            "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(), "triton": triton.__version__,
            "python": platform.python_version(), "matmul_peak_tflops": peak,
            "package": {"name": package.__name__, "runs": dispatch["runs"], "measured_on": dispatch["device"]["name"],
                        "exported_at": dispatch["exported_at"],
                        "retimed": (f"re-timed on {dispatch['retimed']['device']} with torch {dispatch['retimed']['torch']}"
                                    if dispatch["retimed"] else "not re-timed at export")},
            "method": ("wall-clock minimum of 3 calls (smoke test, not a measurement)" if args.smoke else
                       f"harness.timing medians, the default SDPA, the package and SDPA's backends timed in turns, "
                       f"L2 flushed between calls, {args.rep_ms} ms of the slowest per shape") +
                      "; outputs checked against the fp32 reference and gradients against fp32 SDPA "
                      "(relative norm error) before timing; the package in strict mode"}
    start = time.monotonic()
    meta["checks"] = package_checks(package, task, device, dtype)
    print(meta["checks"], flush=True)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    keys = ("batch", "heads", "kv_heads", "seq", "head_dim", "causal", "dtype")
    forward = [{k: c.get(k, c["heads"]) for k in keys} for c in cases]
    forward_backward = [{k: c.get(k, c["heads"]) for k in keys} for c in cases]
    for case, fwd in zip(cases, forward):
        fwd["baseline"] = task.default_baseline(task.make_inputs(case, 1, device), case)[0]
        fwd["route"] = route(package, case)
    names = [n for n in [*impls, *later] if n != "default"]  # the tables put "default" first themselves
    for group in [g for g in (impls, later) if g]:
        for case, fwd, bwd in zip(cases, forward, forward_backward):
            if group is later and time.monotonic() - start > args.time_limit_s:
                for row in (fwd, bwd):
                    row.update({n: {"error": f"not run: past --time-limit-s {args.time_limit_s:g}"} for n in group})
            else:
                measure(task, case, group, timer, device, fwd, bwd)
                for label, row in (("forward", fwd), ("fwd+bwd", bwd)):
                    print(f"[{time.monotonic() - start:4.0f} s] {label} {progress_line(row, group)}", flush=True)
            out.with_suffix(".json").write_text(json.dumps({**meta, "forward": forward,
                                                            "forward_backward": forward_backward}, indent=1))
            out.with_suffix(".md").write_text(markdown(meta, forward, forward_backward, names))
    print(markdown(meta, forward, forward_backward, names))


def markdown(meta: dict[str, Any], forward: list[dict[str, Any]], forward_backward: list[dict[str, Any]],
             names: list[str]) -> str:
    p = meta["package"]
    checks = "; ".join(f"{k}: {v}" for k, v in meta["checks"].items())
    backends = sorted({r["baseline"] for r in forward})
    return "\n\n".join(part.rstrip("\n") for part in [
        machine_line(meta),
        f"Package `{p['name']}`, exported {p['exported_at'][:10]} from run {', '.join(map(str, p['runs']))} "
        f"(kernels measured on {p['measured_on']}, {p['retimed']}). Baseline: torch's default SDPA, here "
        f"{', '.join(backends)}. Checks: {checks}.",
        routing(forward, p["name"]),
        table(forward, names, "Forward TFLOP/s (4·B·H·N²·D, halved when causal)."),
        table(forward_backward, names, "Forward+backward TFLOP/s (3.5 x the forward's FLOPs)."),
    ]) + "\n"


def routing(forward: list[dict[str, Any]], package: str) -> str:
    """Per shape: what the package runs, the export's figure for that bucket, and the forward
    ratio measured here."""
    head = ["D", "H/Hkv", "N", "causal", "runs", "program", "export's speedup over the default", "baseline at export",
            "re-timed at export", "backward", f"{package} / default here"]
    lines = ["Routing per shape (a bucket runs its kernel only when the export confirmed it faster than the default).",
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in forward:
        x, ours, base = r["route"], r.get(package, {}), r.get("default", {})
        interval = "-" if x.get("low") is None else f"[{x['low']:.3f}, {x['high']:.3f}]"
        figure = f"{x['speedup']:.3f}x {interval}" if "speedup" in x else "-"
        here = f"{ours['tflops'] / base['tflops']:.2f}x" if "tflops" in ours and "tflops" in base else "-"
        lines.append("| " + " | ".join([str(r["head_dim"]), f"{r['heads']}/{r['kv_heads']}", str(r["seq"]),
                                        "yes" if r["causal"] else "no", x["runs"], str(x.get("program", "-")), figure,
                                        x.get("baseline", "-"), "yes" if x.get("retimed") else "no", x["backward"],
                                        here]) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
