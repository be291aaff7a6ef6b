"""Can one controller keep many GPUs busy? The real search (Search, RayExecutor, a SQLite archive,
the LLM-free operators) against simulated GPU workers whose every evaluation takes a fixed wall
time (``evaluation.fixed_eval_s``), on a local Ray cluster.

The busy fraction comes from the workers' own clocks: the time each spent evaluating (the union of
its jobs' spans: checks, and duels re-timing would-be elites), over workers x the measured window. The window opens once every worker
has had its first candidate and closes at the last evaluation's start, after which the budget is
spent and the workers drain. Before it is the search's start-up: the seed judged alone (nothing to
build on until its verdict), then the fill, reported apart and also counted in a second figure from
the seed's verdict on. The controller's CPU time is that of its whole process (Ray's driver threads
included) during the search, per evaluated candidate; Ray's and the workers' start is outside it.

    python benchmarks/controller_scaling.py     # writes benchmarks/results/controller-scaling-cpu.{json,md}
    python benchmarks/controller_scaling.py --candidates 200 --out /tmp/bench   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import ray

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archive import Archive  # noqa: E402
from benchmarks.archive_speed import cpu_model  # noqa: E402
from evolve.config import validate  # noqa: E402
from evolve.executor import RayExecutor  # noqa: E402
from evolve.llm.runtime import LLM_FREE_DEFAULT, build_operators  # noqa: E402
from evolve.search import Search  # noqa: E402

Span = tuple[float, float, str]  # start, end, "check" or "duel"


@dataclass(frozen=True)
class Scaling:
    workers: int
    eval_s: float
    candidates: int
    duplicates: int  # proposals the archive had seen: controller work that evaluates nothing
    duels: int  # re-timings beside an elite, each a job as long as a check
    window_s: float
    fill_s: float  # from the seed's verdict until every worker had a candidate
    busy_fraction: float
    busy_with_fill: float  # from the seed's verdict on
    controller_cpu_s: float
    cpu_s_per_candidate: float
    candidates_per_hour: float  # checked in the window
    ideal_per_hour: float  # every worker busy all the time
    run_per_hour: float  # over the whole search: the seed judged alone, the drain at the end
    startup_s: float
    run_s: float


def busy_seconds(spans: list[Span], start: float, end: float) -> float:
    """Time a worker spent evaluating within [start, end]; several candidates at once count once."""
    busy, reach = 0.0, start
    for a, b, _ in sorted(spans):
        a, b = max(a, reach), min(b, end)
        if b > a:
            busy += b - a
            reach = b
    return busy


def busy_fraction(spans: list[list[Span]], start: float, end: float) -> float:
    """Time the workers spent evaluating within [start, end], over workers x (end - start)."""
    return sum(busy_seconds(w, start, end) for w in spans) / (len(spans) * (end - start))


def measure(workers: int, eval_s: float, candidates: int, db: str, random_seed: int = 0) -> Scaling:
    """One search of ``candidates`` on ``workers`` fixed-time workers."""
    cfg = validate({"budget": {"candidates": candidates}, "simulate": True, "random_seed": random_seed,
                    "operators": dict(LLM_FREE_DEFAULT),
                    "evaluation": {"workers": workers, "per_worker": 1, "fixed_eval_s": eval_s}})
    t0 = time.monotonic()
    archive = Archive.open(db)
    executor = RayExecutor(cfg.task, simulate=True, workers=workers, per_worker=1, ray_address=None,
                           check_options={}, job_timeout_s=eval_s + 120, fixed_eval_s=eval_s)
    try:
        executor.describe()  # every worker is up
        operators, cfg, _ = build_operators(cfg, archive, lambda m: None, env={})
        search = Search(cfg, archive, executor, operators)
        search.open()
        startup_s = time.monotonic() - t0
        cpu0, wall0 = time.process_time(), time.monotonic()
        progress = asyncio.run(search.run())
        cpu_s, run_s = time.process_time() - cpu0, time.monotonic() - wall0
        spans: list[list[Span]] = ray.get([w.spans.remote() for w in executor.workers()])
    finally:
        executor.close()
        archive.close()
    verdict = min(b for worker in spans for _, b, _ in worker)
    end = max(a for worker in spans for a, _, _ in worker)
    start = max(min((a for a, _, _ in worker if a >= verdict), default=end) for worker in spans)
    busy = busy_fraction(spans, start, end) if end > start else 0.0
    checking = busy_fraction([[j for j in worker if j[2] == "check"] for worker in spans], start, end) if end > start else 0.0
    duels = sum(kind == "duel" for worker in spans for _, _, kind in worker)
    n = progress.session_evaluated
    return Scaling(workers, eval_s, n, progress.duplicates, duels, end - start, start - verdict, busy,
                   busy_fraction(spans, verdict, end), cpu_s, cpu_s / n, 3600 * checking * workers / eval_s,
                   3600 * workers / eval_s, 3600 * n / run_s, startup_s, run_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--eval-s", type=float, default=4.0, help="an H200 judges about 900 candidates an hour")
    parser.add_argument("--candidates", type=int, default=960)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        s = measure(args.workers, args.eval_s, args.candidates, f"sqlite:///{tmp}/bench.db")
    result: dict[str, Any] = {
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "ray": ray.__version__, "platform": platform.platform(),
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},  # the machine may be shared
        **asdict(s),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "controller-scaling-cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "controller-scaling-cpu.md").write_text(report(result))
    print(report(result))


def report(r: dict[str, Any]) -> str:
    m = r["machine"]
    return "\n".join([
        "# Controller scaling (simulated GPU workers, CPU)",
        "",
        f"Machine: {m['cpu']}, {m['cpu_count']} CPUs; Python {m['python']}, Ray {m['ray']}; {m['platform']}; "
        f"load average after the run {' / '.join(map(str, m['load_average_after']))} (1 / 5 / 15 min).",
        "",
        f"The real controller (Search, RayExecutor, SQLite archive, LLM-free operators) against {r['workers']} "
        f"workers on a local Ray cluster, each job (a check, or a duel re-timing a would-be elite) a fixed {r['eval_s']:g} s "
        "(`evaluation.fixed_eval_s`; "
        "an H200 judges about 900 candidates an hour). Busy time from the workers' own clocks, over the window "
        "from when every worker had its first candidate to the last evaluation's start (the seed judged alone, "
        "then the fill, come before it; see `benchmarks/controller_scaling.py`).",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| workers | {r['workers']} |",
        f"| time per job (check or duel) | {r['eval_s']:g} s |",
        f"| candidates evaluated | {r['candidates']} |",
        f"| measured window | {r['window_s']:.0f} s |",
        f"| workers busy | {100 * r['busy_fraction']:.1f}% |",
        f"| from the seed's verdict until every worker had a candidate | {r['fill_s']:.1f} s |",
        f"| workers busy from the seed's verdict on, the fill included | {100 * r['busy_with_fill']:.1f}% |",
        f"| controller CPU per candidate | {1000 * r['cpu_s_per_candidate']:.1f} ms |",
        f"| controller CPU in all | {r['controller_cpu_s']:.1f} s of {r['run_s']:.0f} s "
        f"({r['duplicates']} duplicate proposals among them) |",
        f"| duels (a would-be elite re-timed beside its rival; as long as a check) | {r['duels']} |",
        f"| candidates per hour | {r['candidates_per_hour']:.0f} (all busy checking: {r['ideal_per_hour']:.0f}; "
        f"whole search, seed and drain included: {r['run_per_hour']:.0f}) |",
        f"| start-up (Ray, workers; not measured) | {r['startup_s']:.0f} s |",
        "",
        f"At {1000 * r['cpu_s_per_candidate']:.0f} ms a candidate (duplicate proposals and duels included), one core could "
        f"feed at most about {r['eval_s'] / r['cpu_s_per_candidate']:.0f} such workers.",
        "",
    ])


if __name__ == "__main__":
    main()
