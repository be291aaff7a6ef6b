"""Attention forward benchmark on the task's benchmark shapes: candidate files (trusted, loaded
in-process) against torch's default SDPA, SDPA's backends and FlexAttention, every
implementation checked against the fp32 reference before it is timed, then all of them timed
side by side as the judge times (harness/timing.py: interleaved, inputs refreshed before every
call, L2 flushed, CUDA graphs where capture works). Writes JSON and a Markdown table.

    python benchmarks/attention.py --impl seed=seeds/mha_fwd.py --flex --out benchmarks/results/seed-h100

``--versus NAME`` adds each other candidate's speedup over candidate NAME, per shape and as a
geometric mean over the shapes, with 95% bootstrap intervals over the timed calls
(harness/confidence.py): the re-measurement that confirms a search's best against its seed.

    python benchmarks/attention.py --impl seed=seeds/mha_fwd.py --impl best=best.py --versus seed \
        --out benchmarks/results/search-best-vs-seed-h200
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import triton

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.compare import compare_returned  # noqa: E402
from harness.confidence import Paired, speedups  # noqa: E402
from harness.device import matmul_peak_tflops  # noqa: E402
from harness.task import get_task  # noqa: E402
from harness.timing import Contender, graphed, interleaved, median  # noqa: E402

Impl = Callable[[list[torch.Tensor], dict[str, Any]], torch.Tensor]


def candidate_impl(path: Path) -> Impl:
    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    task = get_task("mha_fwd")
    return lambda inputs, case: task.call(module.forward, inputs, case)


def flex_impl() -> Impl:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    from harness.tasks.mha_fwd import sm_scale_of

    torch._dynamo.config.cache_size_limit = 64  # one graph per benchmark shape, not eager after 8
    torch._dynamo.config.accumulated_cache_size_limit = 512
    compiled = torch.compile(flex_attention, dynamic=False)
    masks: dict[int, Any] = {}

    def run(inputs: list[torch.Tensor], case: dict[str, Any]) -> torch.Tensor:
        q, k, v = inputs
        mask = None
        if case["causal"]:
            n = case["seq"]
            if n not in masks:
                masks[n] = create_block_mask(lambda b, h, qi, ki: qi >= ki, None, None, n, n, device="cuda")
            mask = masks[n]
        return compiled(q, k, v, block_mask=mask, scale=sm_scale_of(case))

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--impl", action="append", default=[], metavar="NAME=FILE", help="a candidate file to time")
    ap.add_argument("--flex", action="store_true", help="also time FlexAttention under torch.compile")
    ap.add_argument("--rep-ms", type=float, default=200)
    ap.add_argument("--versus", metavar="NAME", help="also each other candidate's speedup over candidate NAME")
    ap.add_argument("--out", required=True, help="output path without extension (.json and .md are written)")
    args = ap.parse_args()

    task = get_task("mha_fwd")
    impls: dict[str, Impl] = {}
    for spec in args.impl:
        name, _, file = spec.partition("=")
        if not file or not Path(file).is_file():
            ap.error(f"--impl {spec}: expected NAME=FILE with an existing file")
        impls[name] = candidate_impl(Path(file))
    candidates = list(impls)
    if args.versus is not None and args.versus not in impls:
        ap.error(f"--versus {args.versus}: not one of the --impl names ({', '.join(impls) or 'none given'})")
    impls.update(task.baselines())
    if args.flex:
        impls["flex"] = flex_impl()

    rows = side_by_side(task, impls, rep_ms=args.rep_ms)
    for row in rows:
        print(progress_line(row, impls), flush=True)

    meta = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
            "cudnn": torch.backends.cudnn.version(), "triton": triton.__version__,
            "python": platform.python_version(), "matmul_peak_tflops": matmul_peak_tflops(),
            "method": f"medians of interleaved timing (harness.timing), inputs refreshed and L2 flushed before "
                      f"every call, CUDA graphs where capture works, {args.rep_ms} ms of the slowest per shape; "
                      "every implementation checked against the fp32 reference first"}
    versus = {} if args.versus is None else {
        name: against(rows, name, args.versus) for name in candidates if name != args.versus}
    text = markdown(meta, rows, list(impls)) + "".join(versus_table(name, args.versus, v) for name, v in versus.items())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({**meta, "rows": rows, "versus": versus}, indent=1))
    out.with_suffix(".md").write_text(text)
    print(text)


def side_by_side(task: Any, impls: dict[str, Impl], rep_ms: float) -> list[dict[str, Any]]:
    """Per benchmark shape, every implementation that computes the right answer, timed in turn
    with the task's default baseline (each on inputs of its own); ``speedup`` is over that."""
    rows = []
    for case in task.benchmark_cases():
        row: dict[str, Any] = {k: case[k] for k in ("batch", "heads", "seq", "head_dim", "causal", "dtype")}
        gen = torch.Generator(device="cuda").manual_seed(1)
        contenders = []
        base_inputs = task.make_inputs(case, 7, "cuda")
        base_name, base = task.default_baseline(base_inputs, case)
        row["baseline"] = base_name
        for name, fn in [("default", lambda inputs, c, base=base: base()), *impls.items()]:
            inputs = base_inputs if name == "default" else task.make_inputs(case, 1234, "cuda")
            try:
                cmp = compare_returned(task, fn(inputs, case), task.reference(inputs, case), case)
            except Exception as e:  # a backend that does not run this case on this GPU
                row[name] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
                continue
            if not cmp.ok:
                row[name] = {"error": f"wrong result: {cmp.note}"}
                continue
            def call(fn: Impl = fn, inputs: list[torch.Tensor] = inputs) -> object:
                return fn(inputs, case)

            contenders.append(Contender(name, graphed(call) or call,
                                        lambda inputs=inputs: task.randomize(inputs, case, gen)))
        samples = interleaved(contenders, rep_ms=rep_ms)
        base_ms = median(samples[0])
        for c, s in zip(contenders, samples):
            ms = median(s)
            row[c.name] = {"ms": ms, "tflops": task.flops(case) / (ms * 1e-3) / 1e12, "speedup": base_ms / ms,
                           "samples": s}
        rows.append(row)
    return rows


def against(rows: list[dict[str, Any]], name: str, versus: str) -> dict[str, Any]:
    """``name``'s speedup over ``versus`` with bootstrap intervals, on the shapes both were timed on."""
    timed = [r for r in rows if "samples" in r.get(name, {}) and "samples" in r.get(versus, {})]
    if not timed:
        return {"shapes": [], "geomean": None, "not_timed": len(rows)}
    per_shape, overall = speedups([Paired(r[name]["samples"], r[versus]["samples"]) for r in timed])
    return {"shapes": [{"head_dim": r["head_dim"], "seq": r["seq"], "causal": r["causal"], "speedup": i.estimate,
                        "low": i.low, "high": i.high} for r, i in zip(timed, per_shape)],
            "geomean": {"speedup": overall.estimate, "low": overall.low, "high": overall.high},
            "not_timed": len(rows) - len(timed)}


def versus_table(name: str, versus: str, v: dict[str, Any]) -> str:
    lines = ["", f"{name} / {versus}, side by side (95% bootstrap intervals over the timed calls):", "",
             "| D | N | causal | speedup | interval |", "|---|---|---|---|---|"]
    for s in v["shapes"]:
        lines.append(f"| {s['head_dim']} | {s['seq']} | {'yes' if s['causal'] else 'no'} | {s['speedup']:.3f}x | "
                     f"[{s['low']:.3f}, {s['high']:.3f}] |")
    g = v["geomean"]
    if g is not None:
        lines.append(f"| geomean | | | **{g['speedup']:.3f}x** | [{g['low']:.3f}, {g['high']:.3f}] |")
    if v["not_timed"]:
        lines.append(f"\n{v['not_timed']} shape(s) not timed for both (see above).")
    return "\n".join(lines) + "\n"


def _tf(cell: Any) -> str:
    return f"{cell['tflops']:.0f}" if isinstance(cell, dict) and "tflops" in cell else "-"


def progress_line(row: dict[str, Any], impls: dict[str, Impl]) -> str:
    return f"D{row['head_dim']} N{row['seq']} causal={row['causal']}: " + ", ".join(
        f"{n} {_tf(row.get(n))}" for n in impls)


def markdown(meta: dict[str, Any], rows: list[dict[str, Any]], names: list[str]) -> str:
    title = (f"Forward TFLOP/s (4·B·H·N²·D, halved when causal); default: {rows[0]['baseline'] if rows else '-'}.")
    return machine_line(meta) + "\n\n" + table(rows, names, title)


def machine_line(meta: dict[str, Any]) -> str:
    return (f"Device: {meta['device']}; torch {meta['torch']}; cuDNN {meta.get('cudnn', '?')}; triton {meta['triton']}; "
            f"bf16 matmul peak {meta['matmul_peak_tflops']:.0f} TFLOP/s. {meta['method']}.")


def table(rows: list[dict[str, Any]], names: list[str], title: str) -> str:
    """TFLOP/s per shape and implementation, and each candidate's ratio to the default SDPA and to
    SDPA's flash and cuDNN backends."""
    names = ["default", *names]
    cands = [n for n in names if not n.startswith("sdpa_") and n not in ("flex", "default")]
    bases = ("default", "sdpa_flash", "sdpa_cudnn")
    head = ["D", "N", "B", "H", "causal", *names] + [f"{c} / {b}" for c in cands for b in bases]
    lines = [title, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [str(r["head_dim"]), str(r["seq"]), str(r["batch"]), str(r["heads"]), "yes" if r["causal"] else "no"]
        cells += [_tf(r.get(n)) for n in names]
        for c in cands:
            for b in bases:
                x, y = r.get(c, {}), r.get(b, {})
                cells.append(f"{x['tflops'] / y['tflops']:.2f}x" if "tflops" in x and "tflops" in y else "-")
        lines.append("| " + " | ".join(cells) + " |")
    errors = [(r["head_dim"], r["seq"], r["causal"], n, r[n]["error"]) for r in rows for n in names
              if isinstance(r.get(n), dict) and "error" in r[n]]
    if errors:
        lines += ["", "Not timed:"] + [f"- D{d} N{n} causal={c} {name}: {e}" for d, n, c, name, e in errors]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
