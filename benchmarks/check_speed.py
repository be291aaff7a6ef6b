"""How long ``evolve check`` takes on the seed: the full cascade (and timing, on a GPU),
first with a cold Triton cache, then again after compilation. Writes JSON and Markdown.

    python benchmarks/check_speed.py --out benchmarks/results/check-speed-h100

``--concurrent N`` instead checks the seed N times at once through one Checker, as a search's
worker does (each in a fresh sandbox, with no shared Triton cache), and reports the checks per
hour and where their time went (``Verdict.phases``: stages, waits for the GPU lock, the hold of
it for timing, requests to the sandbox and the judge), averaged over the checks, with how busy
the CPU cores, this process (the checks' parent) and the GPU were (benchmarks/machine_load.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine_load import MachineLoad  # noqa: E402
from harness.checker import Checker, CheckOptions  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--concurrent", type=int, metavar="N", help="N checks at once (see above)")
    ap.add_argument("--rep-ms", type=float, default=CheckOptions.rep_ms)
    ap.add_argument("--warm-cache", action="store_true",
                    help="with --concurrent: check once first, then let the N checks share its Triton cache "
                         "(what the checks would gain if compiling were free)")
    args = ap.parse_args()
    source = (ROOT / "seeds" / "mha_fwd.py").read_text()
    if args.concurrent is not None:
        if args.concurrent < 1:
            ap.error("--concurrent needs at least 1")
        return concurrent(source, args.concurrent, args.rep_ms, Path(args.out), args.warm_cache)
    with tempfile.TemporaryDirectory() as cache:
        checker = Checker("mha_fwd", CheckOptions(triton_cache=Path(cache)))
        runs = []
        for label in ("cold Triton cache", "after compilation"):
            t0 = time.monotonic()
            verdict = checker.check(source)
            wall = time.monotonic() - t0
            runs.append({"run": label, "passed": verdict.passed, "reason": verdict.reason, "wall_s": wall,
                         "trials": len(verdict.shape_results), "timed_shapes": len(verdict.timings),
                         "fitness": verdict.fitness})
            print(runs[-1], flush=True)
    meta = {"device": verdict.device, "mode": verdict.mode, "torch": verdict.torch_version,
            "triton": verdict.triton_version, "sandbox": verdict.sandbox}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({**meta, "runs": runs}, indent=1))
    lines = [f"`evolve check seeds/mha_fwd.py` on {meta['device']} ({meta['mode']}); torch {meta['torch']}, "
             f"triton {meta['triton']}.", "", "| run | passed | wall s | trials | timed shapes | fitness |",
             "|---|---|---|---|---|---|"]
    for r in runs:
        fit = f"{r['fitness']:.3f}" if r["fitness"] else "-"
        lines.append(f"| {r['run']} | {r['passed']} | {r['wall_s']:.1f} | {r['trials']} | {r['timed_shapes']} | {fit} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def concurrent(source: str, n: int, rep_ms: float, out: Path, warm_cache: bool) -> None:
    cache = Path(tempfile.mkdtemp(prefix="check-speed-cache-")) if warm_cache else None
    checker = Checker("mha_fwd", CheckOptions(rep_ms=rep_ms, triton_cache=cache))
    if cache is not None:
        checker.check(source)  # fills the cache (the seed is trusted code)
    t0 = time.monotonic()
    with MachineLoad() as load, ThreadPoolExecutor(n) as pool:
        verdicts = list(pool.map(lambda _: checker.check(source), range(n)))
    wall = time.monotonic() - t0
    names = sorted({k for v in verdicts for k in v.phases})
    phases = {k: statistics.fmean(v.phases.get(k, 0.0) for v in verdicts) for k in names}
    report: dict[str, Any] = {
        "device": verdicts[0].device, "mode": verdicts[0].mode, "torch": verdicts[0].torch_version,
        "cudnn": verdicts[0].cudnn_version, "triton": verdicts[0].triton_version, "concurrent": n,
        "rep_ms": rep_ms, "warm_cache": warm_cache, "wall_s": wall, "checks_per_hour": n / wall * 3600,
        "passed": sum(v.passed for v in verdicts), "reasons": sorted({v.reason for v in verdicts if not v.passed}),
        "check_s": [v.duration_s for v in verdicts], "mean_phases_s": phases, "load": load.summary()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    shared = " sharing a warm Triton cache" if warm_cache else ""
    lines = [f"{n} checks of the seed at once{shared} on {report['device']} ({report['mode']}); torch {report['torch']}, "
             f"cuDNN {report['cudnn'] or '-'}, triton {report['triton']}; rep_ms {rep_ms:g}.", "",
             f"- {report['passed']} of {n} passed; wall {wall:.1f} s: **{report['checks_per_hour']:.0f} checks per hour**",
             f"- each check {min(report['check_s']):.1f}-{max(report['check_s']):.1f} s",
             f"- load: {_load_line(report['load'])}", "",
             "| phase (mean over the checks) | s |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in phases.items()]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _load_line(load: dict[str, Any]) -> str:
    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.0%}"
    return (f"CPU {pct(load['cpu_busy'])} of {load['cores']} cores (over 90% in {pct(load['cpu_saturated_share'])} of "
            f"samples); the parent {load['parent_cpu_s']:.0f} s of CPU, {pct(load['parent_core_share'])} of one core; "
            f"GPU busy {pct(load['gpu_busy'])}")


if __name__ == "__main__":
    main()
