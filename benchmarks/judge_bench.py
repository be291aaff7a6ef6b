"""How the judge holds up on one GPU: the seed checked several times in a row (repeatability of
its fitness; the first check with every cache cold, the second with only the judge's launcher
cache warm, the rest with the sandbox's Triton cache warm too: check times), other honest
kernels checked at other times, and the same kernels timed side by side in one process, whose
ranking the checks must reproduce. Writes JSON and Markdown.

    python benchmarks/judge_bench.py --kernel autotuned=tests/honest/autotuned.py \\
        --kernel gluon_fa2=tests/honest/gluon_fa2.py --out benchmarks/results/judge-h200
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import triton

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.attention import candidate_impl, side_by_side  # noqa: E402
from harness.checker import Checker, CheckOptions  # noqa: E402
from harness.task import get_task  # noqa: E402


def geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernel", action="append", default=[], metavar="NAME=FILE", help="another honest kernel")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", required=True, help="output path without extension (.json and .md are written)")
    args = ap.parse_args()
    kernels = {"seed": ROOT / "seeds" / "mha_fwd.py"}
    kernels.update({n: Path(f) for n, f in (k.split("=", 1) for k in args.kernel)})
    checks: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        judge_cache, triton_cache = Path(tmp) / "judge", Path(tmp) / "triton"
        triton_cache.mkdir()

        def check(name: str, caches: str, shared_triton: bool) -> None:
            opts = CheckOptions(judge_cache=judge_cache, triton_cache=triton_cache if shared_triton else None)
            t0 = time.monotonic()
            v = Checker("mha_fwd", opts).check(kernels[name].read_text())
            checks.append({"kernel": name, "caches": caches, "passed": v.passed, "reason": v.reason,
                           "wall_s": time.monotonic() - t0, "fitness": v.fitness, "device": v.device,
                           "torch": v.torch_version, "triton": v.triton_version, "cudnn": v.cudnn_version,
                           "speedups": [t.speedup for t in v.timings], "baseline": sorted({t.baseline_backend for t in v.timings})})
            print(json.dumps(checks[-1])[:400], flush=True)

        for i in range(args.repeats):
            caches = ["cold (no cache)", "judge's launchers cached", "launchers and Triton cache warm"][min(i, 2)]
            check("seed", caches, shared_triton=i >= 1)
        for name in kernels:
            if name != "seed":
                check(name, "judge's launchers cached", shared_triton=False)

    task = get_task("mha_fwd")
    impls = {name: candidate_impl(path) for name, path in kernels.items()}
    rows = side_by_side(task, impls, rep_ms=100)
    ranking = {name: geomean([r[name]["speedup"] for r in rows]) for name in kernels}
    fitness = {name: next(c["fitness"] for c in checks if c["kernel"] == name and c["fitness"]) for name in kernels}
    seeds = [c["fitness"] for c in checks if c["kernel"] == "seed"]
    order_checks = sorted(kernels, key=lambda n: -fitness[n])
    order_bench = sorted(kernels, key=lambda n: -ranking[n])
    meta = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
            "cudnn": torch.backends.cudnn.version()}
    result = {**meta, "checks": checks, "side_by_side": rows, "side_by_side_geomean": ranking,
              "seed_fitness_max_over_min": max(seeds) / min(seeds), "order_by_checks": order_checks,
              "order_side_by_side": order_bench, "same_order": order_checks == order_bench}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict[str, Any]) -> str:
    lines = [f"Device: {r['device']}; torch {r['torch']}; cuDNN {r['cudnn']}; triton {r['triton']}. Fitness: "
             "geometric mean over the 12 benchmark shapes of the speedup over torch's default SDPA "
             f"({', '.join(r['checks'][0]['baseline'])}), timed by the judge.", "",
             "| check | kernel | caches | passed | wall s | fitness |", "|---|---|---|---|---|---|"]
    for i, c in enumerate(r["checks"], 1):
        fit = f"{c['fitness']:.4f}" if c["fitness"] else "-"
        lines.append(f"| {i} | {c['kernel']} | {c['caches']} | {c['passed']} | {c['wall_s']:.1f} | {fit} |")
    lines += ["", f"Seed fitness over {sum(c['kernel'] == 'seed' for c in r['checks'])} checks in a row: max/min "
              f"= {r['seed_fitness_max_over_min']:.4f}.", "",
              "Side by side in one process (interleaved, inputs refreshed before every call, L2 flushed, CUDA "
              "graphs), geometric-mean speedup over the default SDPA: "
              + ", ".join(f"{n} {x:.4f}" for n, x in r["side_by_side_geomean"].items()) + ".",
              f"Order by the checks: {' > '.join(r['order_by_checks'])}; side by side: "
              f"{' > '.join(r['order_side_by_side'])}; same order: {r['same_order']}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
