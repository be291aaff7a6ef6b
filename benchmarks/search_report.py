"""Summarize a search run from its archive: throughput, how busy the GPU was, the duels, the
best kernel and the seed as the search measured them, shape by shape; writes the best kernel's
source for a side-by-side re-measurement with benchmarks/attention.py.

The best kernel is the elite with the highest grid fitness: a fitness that, past the seed, only
a confirmed duel gives (evolve/confirmation.py). The GPU-busy fraction comes from samples of
``nvidia-smi --query-gpu=timestamp,utilization.gpu --format=csv,noheader,nounits -lms 500``
taken while the search ran: utilization.gpu is the share of each sample period in which a
kernel was executing.

    python benchmarks/search_report.py --db search.db --run 1 --gpu-samples smi.csv --out benchmarks/results/search-h200
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archive import Archive, ProgramInfo  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True)
    ap.add_argument("--run", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--best-source", help="write the best kernel's source here")
    ap.add_argument("--gpu-samples", type=Path, help="nvidia-smi samples taken during the search (see above)")
    args = ap.parse_args()
    with Archive.open(args.db, create=False) as a:
        run = a.get_run(args.run)
        stats = a.stats(args.run)
        top = a.top(args.run, 5)
        programs = [a.get_program(p) for p in a.program_ids(args.run)]
        seeds = sorted((p for p in programs if p.operator == "seed"), key=_lineage)
        cells = {c.program_id: c.fitness for c in a.cells(args.run)}
        elite_id = max(cells, key=lambda p: (cells[p], -p))
        best = a.get_program(elite_id)
        # Each lineage's best elite, for a run seeded with several kernels.
        line_best = {_lineage(p): p for p in sorted((p for p in programs if p.id in cells), key=lambda p: (cells[p.id], -p.id))}
        duels = a.confirmations(args.run)
        seed = next((s for s in seeds if _lineage(s) == _lineage(best)), None)
        gens = a.generation_stats(args.run)
        events = a.events(args.run)
    hours = run.spend.seconds / 3600
    ev = best.latest_evaluation
    seed_ev = seed.latest_evaluation if seed else None
    shapes = []
    for t in ev.timings:
        s = next((x for x in (seed_ev.timings if seed_ev else []) if x.label == t.label), None)
        label = f"D{t.shape['head_dim']} N{t.shape['seq']}{' causal' if t.shape['causal'] else ''}"
        shapes.append({"shape": label, "best_tflops": t.tflops, "seed_tflops": s.tflops if s else None,
                       "baseline": t.baseline_backend, "baseline_tflops": t.baseline_tflops})
    report = {
        "run": args.run, "task": run.task, "simulated": run.simulated, "device": ev.device,
        "torch": ev.torch_version, "triton": ev.triton_version, "wall_s": run.spend.seconds,
        "evaluations": stats.evaluations, "by_outcome": stats.by_outcome, "pending": stats.pending,
        "fully_evaluated_per_gpu_hour": stats.evaluations / hours if hours else None,
        "cells": stats.cells, "coverage": stats.coverage, "qd_score": stats.qd_score,
        "gpu_busy": _busy(args.gpu_samples) if args.gpu_samples else None,
        "duels": len(duels), "admitted": sum(d.admitted for d in duels),
        "duels_measured": sum(bool(d.shapes) for d in duels),
        "best": {"program": best.id, "operator": best.operator, "generation": best.generation,
                 "grid_fitness": cells[best.id], "fitness": ev.fitness, "tflops": ev.tflops},
        "seed": {"program": seed.id, "fitness": seed_ev.fitness, "tflops": seed_ev.tflops} if seed_ev else None,
        "lineages": [_lineage_summary(s, line_best.get(_lineage(s)), cells) for s in seeds],
        "top5": [{"program": t.program_id, "fitness": t.fitness, "tflops": t.tflops, "operator": t.operator} for t in top],
        "generations": [{"generation": g.generation, "evaluated": g.evaluated, "coverage": g.coverage,
                         "best": g.best_fitness} for g in gens],
        "events": [{"kind": e.kind, "message": e.message, "at": e.created_at.isoformat()} for e in events],
        "per_shape_in_search": shapes,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    lines = [
        f"Search run {args.run} ({'simulated' if run.simulated else 'measured'}) on {ev.device}; torch {ev.torch_version}, "
        f"triton {ev.triton_version}.", "",
        f"- wall time {run.spend.seconds / 60:.1f} min (resumed across device calls: "
        f"{sum(e.kind == 'resumed' for e in events)} resume(s)); {stats.evaluations} candidates fully evaluated "
        f"({', '.join(f'{k} {v}' for k, v in sorted(stats.by_outcome.items()))}); "
        f"**{report['fully_evaluated_per_gpu_hour']:.0f} per GPU-hour** on one GPU",
        f"- GPU busy: {_busy_line(report['gpu_busy'])}",
        f"- duels (side-by-side re-timings of would-be elites): {len(duels)}, of which measured "
        f"{report['duels_measured']}, admitted {report['admitted']}",
        f"- grid: {stats.cells} cells filled, QD-score {stats.qd_score:.2f}",
        f"- best: program {best.id} ({best.operator}, generation {best.generation}), grid fitness "
        f"{cells[best.id]:.3f}; its own check: fitness {ev.fitness:.3f} (geometric-mean speedup vs torch's "
        f"default SDPA), mean {ev.tflops:.0f} TFLOP/s",
    ]
    if seed_ev:
        lines.append(f"- seed: fitness {seed_ev.fitness:.3f}, mean {seed_ev.tflops:.0f} TFLOP/s")
    if len(seeds) > 1:
        lines += ["", "Lineages (one per seed kernel):", "",
                  "| lineage | seed | seed fitness | evaluated | best elite | its grid fitness | its own check |",
                  "|---|---|---|---|---|---|---|"]
        for line in report["lineages"]:
            b = line["best"] or {}
            lines.append(f"| {line['lineage']} | program {line['seed']} | {_fmt(line['seed_fitness'])} | "
                         f"{sum(_lineage(p) == line['lineage'] and p.latest_evaluation is not None for p in programs)} | "
                         f"{'program ' + str(b['program']) if b else '-'} | {_fmt(b.get('grid_fitness'))} | "
                         f"{_fmt(b.get('fitness'))} |")
    lines += ["", "As measured inside the search (each in its own check):", "",
              "| shape | seed TFLOP/s | best TFLOP/s | baseline | baseline TFLOP/s |", "|---|---|---|---|---|"]
    for s in shapes:
        seed_tf = f"{s['seed_tflops']:.0f}" if s["seed_tflops"] else "-"
        lines.append(f"| {s['shape']} | {seed_tf} | {s['best_tflops']:.0f} | {s['baseline']} | {s['baseline_tflops']:.0f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.best_source:
        Path(args.best_source).write_text(best.source)


def _lineage(p: ProgramInfo) -> int:
    return int((p.meta or {}).get("lineage", 0))


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _lineage_summary(seed: ProgramInfo, best: ProgramInfo | None, cells: dict[int, float]) -> dict[str, object]:
    seed_ev = seed.latest_evaluation
    best_ev = best.latest_evaluation if best else None
    return {"lineage": _lineage(seed), "seed": seed.id, "seed_fitness": seed_ev.fitness if seed_ev else None,
            "best": {"program": best.id, "operator": best.operator, "generation": best.generation,
                     "grid_fitness": cells[best.id], "fitness": best_ev.fitness if best_ev else None} if best else None}


def _busy(path: Path) -> dict[str, float]:
    """Mean utilization.gpu over the samples, and the share of samples in which the GPU ran at all."""
    util = [float(line.split(",")[1]) for line in path.read_text().splitlines()
            if line.count(",") >= 1 and line.split(",")[1].strip().replace(".", "", 1).isdigit()]
    if not util:
        raise SystemExit(f"{path}: no nvidia-smi samples in it")
    return {"samples": len(util), "mean_utilization": statistics.fmean(util) / 100,
            "share_of_samples_busy": sum(u > 0 for u in util) / len(util)}


def _busy_line(busy: dict[str, float] | None) -> str:
    if busy is None:
        return "not sampled"
    return (f"**{busy['mean_utilization']:.0%}** of the time a kernel was running (nvidia-smi utilization.gpu, "
            f"mean of {busy['samples']:.0f} samples 0.5 s apart); {busy['share_of_samples_busy']:.0%} of samples above 0")


if __name__ == "__main__":
    main()
