"""Page load times of ``evolve ui`` on an archive of 100k programs (a benchmark, not a test).

The archive is filled by ``archive_speed.fill`` (programs with parents and descriptors, an
evaluation each, cell updates), plus what an LLM search adds on top: statistics per generation
of 1000, an ``llm_credit`` event for a quarter of the programs (as if an LLM had made them),
LLM calls behind the last of them, and side-by-side re-timings. Then each page and JSON
endpoint is loaded from a real ``evolve ui`` server over HTTP (first load, then the median and
minimum of 5), and, where Chromium is installed, in headless Chromium (navigation start to the
load event, which includes rendering the SVG).

    python benchmarks/ui_speed.py                      # writes benchmarks/results/ui-speed.{json,md}
    python benchmarks/ui_speed.py --programs 5000 --out /tmp/bench          # a quick look
    python benchmarks/ui_speed.py --db /tmp/ui.db     # fill once into /tmp/ui.db, reuse it afterwards
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import archive_speed  # noqa: E402  (puts the repository root on sys.path)

from archive import Archive  # noqa: E402

ROOT = archive_speed.ROOT
REPEATS = 5
LIMIT_MS = 1000.0
LLM_OPERATOR = "llm_rewrite"  # one of archive_speed.OPERATORS


def fill(url: str, n: int) -> dict[str, Any]:
    """``archive_speed.fill``, then generation statistics, credit events, LLM calls and re-timings."""
    rng = random.Random(1)
    with Archive.open(url) as archive:
        t0 = time.perf_counter()
        run, _, deepest = archive_speed.fill(archive, n)
        programs_s = time.perf_counter() - t0
        ids = archive.program_ids(run)
        best = 0.0
        for generation in range(1, n // 1000 + 1):
            best = max(best, rng.uniform(1.0, 1.2) + generation / 100)
            archive.add_generation_stats(run, generation, evaluated=generation * 1000, coverage=min(1.0, generation / 50),
                                         qd_score=generation * 30.0, best_fitness=best)
        t1 = time.perf_counter()
        credited = ids[::4]
        for pid in credited:
            model = rng.choice(["model-a", "model-b", "model-c"])
            archive.add_event(run, "llm_credit", f"{LLM_OPERATOR} by {model}: program {pid}: passed",
                              {"program_id": pid, "operator": LLM_OPERATOR, "model": model, "strategy": "tiles",
                               "summary": "", "result": "passed", "reward": rng.uniform(0, 0.05),
                               "cost_usd": 0.002, "tokens": 3000})
        calls = [archive.add_llm_call(run, model="model-a", purpose="mutate", prompt="Improve this kernel:\n" * 200,
                                      response="```python\n" + archive_speed.kernel_source(k, rng) + "```",
                                      prompt_tokens=2500, completion_tokens=500, cost_usd=0.002, latency_s=8.0,
                                      error=None) for k in range(2)]
        # The deepest program as an LLM program with its calls, re-timed against its parent.
        program = archive.get_program(deepest)
        llm_program, _ = archive.add_program(run, program.source + "\nREWRITTEN = True\n", parents=[deepest],
                                             operator=LLM_OPERATOR, generation=program.generation + 1,
                                             descriptors=program.descriptors, meta={"llm_calls": calls})
        verdict = archive_speed.verdict_for(random.Random(7))
        while not verdict.passed:
            verdict = archive_speed.verdict_for(rng)
        archive.add_evaluation(llm_program, verdict, key="ui-bench-llm", simulated=False)
        for k in range(20):
            archive.add_confirmation(run, llm_program if k == 0 else rng.choice(ids), deepest, key=f"ui-bench-c{k}",
                                     speedup=1.01, low=0.99, high=1.03, admitted=False, mode="gpu", device="H100",
                                     shapes=[{"label": "B4 H16 N1024 D64", "speedup": 1.01, "low": 0.99,
                                              "high": 1.03}])
        failed = archive.failures(run)[0].example_program_id
        stats = archive.stats(run)
    return {"run": run, "deepest": llm_program, "failed": failed, "programs": stats.programs,
            "evaluations": stats.evaluations, "cells": stats.cells, "credit_events": len(credited),
            "fill_programs_s": programs_s, "fill_extras_s": time.perf_counter() - t1}


def describe(url: str) -> dict[str, Any]:
    """What an already filled archive holds (for ``--db`` reuse)."""
    with Archive.open(url, create=False) as archive:
        run = archive.list_runs()[0].id
        stats = archive.stats(run)
        deepest = archive.program_ids(run)[-1]
        failed = archive.failures(run)[0].example_program_id
        credit = len(archive.events(run, kind="llm_credit"))
    return {"run": run, "deepest": deepest, "failed": failed, "programs": stats.programs,
            "evaluations": stats.evaluations, "cells": stats.cells, "credit_events": credit}


def pages(info: dict[str, Any]) -> dict[str, str]:
    run, deepest, failed = info["run"], info["deepest"], info["failed"]
    return {
        "runs": "/",
        "run": f"/runs/{run}",
        "run, grid warps x stages": f"/runs/{run}?x=warps&y=stages",
        "program (LLM-made, re-timed)": f"/programs/{deepest}",
        "program (failed)": f"/programs/{failed}",
        "api: runs": "/api/runs",
        "api: run": f"/api/runs/{run}",
        "api: program": f"/api/programs/{deepest}",
    }


def serve(url: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "evolve", "ui", "--db", url, "--port", "0"],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
    if match is None:
        proc.kill()
        raise SystemExit(f"evolve ui did not start: {line}{proc.stderr.read()}")
    return proc, match.group(1)


def http_ms(base: str, path: str) -> dict[str, float]:
    samples, size = [], 0
    for _ in range(REPEATS + 1):
        t0 = time.perf_counter()
        with urllib.request.urlopen(base + path, timeout=60) as response:
            size = len(response.read())
        samples.append((time.perf_counter() - t0) * 1000)
    rest = samples[1:]
    return {"first_ms": samples[0], "median_ms": statistics.median(rest), "min_ms": min(rest), "kb": size / 1000}


def browser_ms(base: str, paths: dict[str, str]) -> dict[str, float] | None:
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        return None
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,800"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
    try:
        out = {}
        for name, path in paths.items():
            if path.startswith("/api/"):
                continue
            samples = []
            for _ in range(3):
                driver.get(base + path)
                samples.append(driver.execute_script(
                    "const t = performance.getEntriesByType('navigation')[0]; return t.loadEventEnd - t.startTime;"))
            out[name] = statistics.median(samples)
        return out
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--programs", type=int, default=100_000)
    parser.add_argument("--db", type=Path, help="an archive file to fill (if missing) and measure; kept afterwards")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "bench.db"
        url = f"sqlite:///{db}"
        if db.exists():
            print(f"measuring the archive already in {db}", file=sys.stderr)
            info = describe(url)
        else:
            print(f"inserting {args.programs} programs into {db}", file=sys.stderr)
            info = fill(url, args.programs)
        size_mb = sum(p.stat().st_size for p in db.parent.glob(db.name + "*")) / 1e6
        paths = pages(info)
        proc, base = serve(url)
        try:
            http = {name: http_ms(base, path) for name, path in paths.items()}
            browser = browser_ms(base, paths)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    import starlette
    import uvicorn

    result = {
        "machine": {"cpu": archive_speed.cpu_model(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "sqlite": sqlite3.sqlite_version, "starlette": starlette.__version__,
                    "uvicorn": uvicorn.__version__, "platform": platform.platform()},
        "archive": {**info, "database_mb": round(size_mb, 1)},
        "paths": paths,
        "http": http,
        "browser_load_ms": browser,
        "limit_ms": LIMIT_MS,
        "all_under_limit": all(t["median_ms"] < LIMIT_MS and t["first_ms"] < LIMIT_MS for t in http.values())
        and all(v < LIMIT_MS for v in (browser or {}).values()),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ui-speed.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "ui-speed.md").write_text(report(result))
    print(report(result))


def report(r: dict[str, Any]) -> str:
    m, a = r["machine"], r["archive"]
    browser = r["browser_load_ms"] or {}
    lines = [
        "# Web UI speed (SQLite)",
        "",
        f"Machine: {m['cpu']}, {m['cpu_count']} CPUs; Python {m['python']}, SQLite {m['sqlite']}, "
        f"Starlette {m['starlette']}, uvicorn {m['uvicorn']}; {m['platform']}.",
        "",
        f"Archive: {a['programs']:,} programs, {a['evaluations']:,} evaluations, {a['cells']:,} cells filled, "
        f"{a['credit_events']:,} `llm_credit` events, {a['database_mb']} MB (filled by `archive_speed.fill`, "
        "plus generation statistics, credit events, LLM calls and re-timings).",
        "",
        f"Each page from a real `evolve ui` server over HTTP: first load, then median and min of {REPEATS} (ms); "
        "in headless Chromium: navigation start to the load event, median of 3 (ms). "
        f"Limit: {r['limit_ms']:.0f} ms; all under it: **{'yes' if r['all_under_limit'] else 'no'}**.",
        "",
        "| page | path | first | median | min | kB | Chromium load |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, t in r["http"].items():
        shown = f"{browser[name]:.0f}" if name in browser else "-"
        lines.append(f"| {name} | `{r['paths'][name]}` | {t['first_ms']:.0f} | {t['median_ms']:.0f} | "
                     f"{t['min_ms']:.0f} | {t['kb']:.0f} | {shown} |")
    if not r["browser_load_ms"]:
        lines += ["", "Chromium was not installed: no browser timings."]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
