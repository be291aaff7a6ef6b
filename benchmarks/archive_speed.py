"""Insert and query speed of the archive on SQLite with 100k programs (a benchmark, not a test).

Fills a fresh archive through the public API (one transaction per call, as the search does):
programs with parents and descriptors, an evaluation each (three in four pass, with per-shape
results and timings), a cell update per passed program. Then times the queries people wait
for: ``top`` and ``grid`` through the API, through the CLI command functions (open, query,
render), and as a whole ``evolve archive`` process; a few other queries for context.

    python benchmarks/archive_speed.py            # writes benchmarks/results/archive-speed.{json,md}
    python benchmarks/archive_speed.py --programs 5000 --out /tmp/bench   # a quick look
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archive import Archive, code_hash  # noqa: E402
from evolve.commands import archive as commands  # noqa: E402
from harness.verdict import Outcome, ShapeResult, Stage, Timing, Verdict  # noqa: E402

GRID: dict[str, list[dict[str, Any]]] = {
    "dims": [
        {"name": "block_m", "labels": ["16", "32", "48", "64", "80", "96", "112", "128", "192", "256"]},
        {"name": "block_n", "labels": ["16", "32", "48", "64", "80", "96", "112", "128", "192", "256"]},
        {"name": "warps", "labels": ["1", "2", "4", "8", "12", "16", "24", "32"]},
        {"name": "stages", "labels": ["1", "2", "3", "4", "5"]},
    ]
}
SHAPES = [
    {"batch": 4, "heads": 16, "seq": 1024, "head_dim": 64, "causal": False, "dtype": "float16"},
    {"batch": 2, "heads": 16, "seq": 4096, "head_dim": 128, "causal": True, "dtype": "bfloat16"},
]
FAILURES = [
    (Outcome.REJECTED, Stage.SWEEP, "rel err above tolerance on {}"),
    (Outcome.REJECTED, Stage.STATIC, "forbidden call torch.nn.functional.scaled_dot_product_attention"),
    (Outcome.CRASHED, Stage.COMPILE, "triton.CompilationError: out of shared memory"),
    (Outcome.TIMEOUT, Stage.TIMING, "no result within 120 s"),
    (Outcome.REJECTED, Stage.DETERMINISM, "two runs differ"),
]
OPERATORS = ["mutate", "llm_rewrite", "crossover", "tune"]
REPEATS = 5


def kernel_source(i: int, rng: random.Random) -> str:
    """A small Triton-style kernel, distinct per ``i`` (about 700 bytes)."""
    bm, bn, w = rng.choice([32, 64, 128]), rng.choice([32, 64]), rng.choice([4, 8])
    return (
        f'"""Candidate {i}."""\n'
        "import triton\nimport triton.language as tl\n\n"
        f"TUNABLES = {{'BLOCK_M': {bm}, 'BLOCK_N': {bn}, 'num_warps': {w}, 'variant': {i}}}\n\n\n"
        "@triton.jit\n"
        "def _fwd(Q, K, V, O, N_CTX, scale, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):\n"
        "    start = tl.program_id(0) * BLOCK_M\n"
        "    offs = start + tl.arange(0, BLOCK_M)\n"
        "    acc = tl.zeros([BLOCK_M, 64], dtype=tl.float32)\n"
        "    for n in range(0, N_CTX, BLOCK_N):\n"
        f"        acc += tl.load(Q + offs[:, None]) * scale * {1 + i % 7}\n"
        "    tl.store(O + offs[:, None], acc)\n\n\n"
        "def forward(q, k, v, causal, sm_scale):\n"
        "    o = q.new_empty(q.shape)\n"
        "    _fwd[(q.shape[2] // TUNABLES['BLOCK_M'],)](q, k, v, o, q.shape[2], sm_scale, "
        "TUNABLES['BLOCK_M'], TUNABLES['BLOCK_N'])\n"
        "    return o\n"
    )


def verdict_for(rng: random.Random) -> Verdict:
    shapes = [
        ShapeResult(label=f"trial {j}", shape={"seq": 128 * (j + 1)}, rel_err=rng.uniform(0, 1e-3),
                    max_abs_err=rng.uniform(0, 1e-2), passed=True)
        for j in range(4)
    ]
    verdict = Verdict(Outcome.PASSED, Stage.DONE, "", mode="gpu", device="NVIDIA H100 80GB HBM3",
                      torch_version="2.5.1", triton_version="3.2.0", shape_results=shapes)
    if rng.random() < 0.75:
        for shape in SHAPES:
            baseline = rng.uniform(0.5, 2.0)
            ms = baseline / rng.lognormvariate(0.0, 0.3)
            verdict.timings.append(Timing(shape=shape, ms=ms, baseline_ms=baseline, baseline_backend="flash",
                                          tflops=300 * baseline / ms, baseline_tflops=300.0))
        verdict.duration_s, verdict.log = rng.uniform(5, 30), "ok\n" * 20
        return verdict
    outcome, stage, reason = rng.choice(FAILURES)
    verdict.outcome, verdict.stage = outcome, stage
    verdict.reason = reason.format(rng.choice(["B1 H2 N63 D64", "B2 H4 N111 D128"]))
    verdict.shape_results = shapes[:2]
    verdict.duration_s, verdict.log = rng.uniform(1, 10), "error\n" * 200
    return verdict


def fill(archive: Archive, n: int, seed: int = 0) -> tuple[int, dict[str, float], int]:
    """Insert ``n`` programs with evaluations and cells; returns the run, seconds per kind of
    write, and the id of the last program (a deep lineage)."""
    rng = random.Random(seed)
    run = archive.create_run("mha_fwd", {"grid": GRID}, simulated=False, name="benchmark")
    spent = {"add_program": 0.0, "add_evaluation": 0.0, "update_cell": 0.0}
    ids: list[int] = []
    dims = [len(d["labels"]) for d in GRID["dims"]]
    last = 0
    for i in range(n):
        parents = [ids[-1]] if ids and rng.random() < 0.5 else ([rng.choice(ids)] if ids else [])
        operator = rng.choice(OPERATORS)
        if operator == "crossover" and len(ids) > 1:
            parents.append(rng.choice(ids))
        coords = [rng.randrange(d) for d in dims]
        t0 = time.perf_counter()
        program, _ = archive.add_program(
            run, kernel_source(i, rng), parents=parents, operator=operator, generation=i // 1000,
            island=i % 4, descriptors={d["name"]: float(c) for d, c in zip(GRID["dims"], coords)},
        )
        t1 = time.perf_counter()
        verdict = verdict_for(rng)
        archive.add_evaluation(program, verdict, key=f"bench-{i}", simulated=False)
        t2 = time.perf_counter()
        spent["add_program"] += t1 - t0
        spent["add_evaluation"] += t2 - t1
        if verdict.fitness is not None:
            index = ((coords[0] * dims[1] + coords[1]) * dims[2] + coords[2]) * dims[3] + coords[3]
            archive.update_cell(run, index, coords, program, verdict.fitness)
            spent["update_cell"] += time.perf_counter() - t2
        ids.append(program)
        last = program
        if (i + 1) % 10_000 == 0:
            print(f"  {i + 1} programs", file=sys.stderr, flush=True)
    return run, spent, last


def timed(fn: Callable[[], Any]) -> dict[str, float]:
    """First call (cold statement cache) and the median and minimum of the next ``REPEATS``, in ms."""
    samples = []
    for _ in range(REPEATS + 1):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    rest = samples[1:]
    return {"first_ms": samples[0], "median_ms": statistics.median(rest), "min_ms": min(rest)}


def quietly(fn: Callable[[], Any]) -> Callable[[], None]:
    def run() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            fn()

    return run


def process_ms(args: list[str]) -> float:
    """Wall time of a whole ``evolve ...`` process, imports included (median of 3)."""
    command = [sys.executable, "-c", "import sys; from evolve.cli import main; sys.argv[0] = 'evolve'; main()", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    samples = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--programs", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        url = f"sqlite:///{db}"
        with Archive.open(url) as archive:
            print(f"inserting {args.programs} programs into {db}", file=sys.stderr)
            t0 = time.perf_counter()
            run, spent, deepest = fill(archive, args.programs)
            insert_s = time.perf_counter() - t0
            size_mb = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6
            stats = archive.stats(run)
            api = {
                "top": timed(lambda: archive.top(run, 10)),
                "top_measured": timed(lambda: archive.top(run, 10, measured_only=True)),
                "grid": timed(lambda: archive.grid(run)),
                "grid_warps_by_stages": timed(lambda: archive.grid(run, x="warps", y="stages")),
                "list_runs": timed(archive.list_runs),
                "stats": timed(lambda: archive.stats(run)),
                "failures": timed(lambda: archive.failures(run)),
                "best_per_case": timed(lambda: archive.best_per_case(run)),
                "lineage_of_last_program": timed(lambda: archive.lineage(deepest)),
                "get_program": timed(lambda: archive.get_program(deepest)),
            }
            depth = len(archive.lineage(deepest))
        cli = {
            "top": timed(quietly(lambda: commands.top(run, n=10, measured=False, db=url, as_json=False))),
            "grid": timed(quietly(lambda: commands.grid(run, x=None, y=None, db=url, as_json=False))),
            "runs": timed(quietly(lambda: commands.runs(db=url, as_json=False))),
        }
        process = {
            "evolve archive top": process_ms(["archive", "top", str(run), "--db", url]),
            "evolve archive grid": process_ms(["archive", "grid", str(run), "--db", url]),
        }
    seed = (ROOT / "seeds" / "mha_fwd.py").read_text()
    t0 = time.perf_counter()
    for _ in range(20):
        code_hash(seed)
    seed_hash_ms = (time.perf_counter() - t0) / 20 * 1000

    result = {
        "machine": {
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "sqlalchemy": sqlalchemy.__version__,
            "sqlite": sqlite3.sqlite_version,
            "platform": platform.platform(),
        },
        "programs": args.programs,
        "evaluations": stats.evaluations,
        "passed": stats.by_outcome.get("passed", 0),
        "cells_filled": stats.cells,
        "grid_size": stats.grid_size,
        "lineage_depth_of_last_program": depth,
        "database_mb": round(size_mb, 1),
        "insert": {
            "total_s": insert_s,
            "programs_per_s": args.programs / insert_s,
            "mean_ms": {k: v / args.programs * 1000 for k, v in spent.items()},
        },
        "normalize_seed_kernel_ms": seed_hash_ms,
        "api": api,
        "cli_command_functions": cli,
        "cli_process_ms": process,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "archive-speed.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "archive-speed.md").write_text(report(result))
    print(report(result))


def report(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        "# Archive speed (SQLite)",
        "",
        f"Machine: {m['cpu']}, {m['cpu_count']} CPUs; Python {m['python']}, SQLAlchemy {m['sqlalchemy']}, "
        f"SQLite {m['sqlite']}; {m['platform']}.",
        "",
        f"Archive: {r['programs']:,} programs, {r['evaluations']:,} evaluations ({r['passed']:,} passed), "
        f"{r['cells_filled']:,} of {r['grid_size']:,} cells filled, {r['database_mb']} MB; "
        f"the last program's first-parent lineage is {r['lineage_depth_of_last_program']} deep.",
        "",
        "## Inserts (through the API, one transaction per call)",
        "",
        f"{r['insert']['total_s']:.0f} s in all, {r['insert']['programs_per_s']:.0f} programs/s with their "
        "evaluation and cell update.",
        "",
        "| write | mean ms |",
        "|---|---:|",
        *(f"| `{k}` | {v:.2f} |" for k, v in r["insert"]["mean_ms"].items()),
        "",
        f"Normalizing the 5.4 kB seed kernel for its code hash takes {r['normalize_seed_kernel_ms']:.1f} ms "
        "(ast parse + unparse); the benchmark's kernels are about 700 bytes.",
        "",
        "## Queries (ms; first call, then median and min of "
        f"{REPEATS})",
        "",
        "| query | first | median | min |",
        "|---|---:|---:|---:|",
    ]
    for group, label in (("api", "API"), ("cli_command_functions", "CLI command function")):
        for name, t in r[group].items():
            lines.append(f"| {label}: `{name}` | {t['first_ms']:.1f} | {t['median_ms']:.1f} | {t['min_ms']:.1f} |")
    lines += [
        "",
        "CLI command functions include opening the archive (engine, schema check) and rendering the table.",
        "",
        "| whole process (imports included), median of 3 | ms |",
        "|---|---:|",
        *(f"| `{k}` | {v:.0f} |" for k, v in r["cli_process_ms"].items()),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
