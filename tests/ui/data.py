"""Archive contents for the UI tests: the factories' small run, plus what a page must survive
(markup in a candidate's source, log and reason, and in a model's prompt and answer) and what
it must show (LLM calls, their credit, a side-by-side re-timing, statistics over time)."""

from __future__ import annotations

from dataclasses import dataclass

from archive import Archive
from tests.archive.factories import Populated, kernel, passed, populate

SCRIPT = "<script>document.title = 'pwned'; window.__pwned = 1;</script>"
HOSTILE_LOG = f"compiling ...\n{SCRIPT}\n<img src=x onerror=\"window.__pwned = 2\">\ndone\n"
HOSTILE_SOURCE = kernel(7, comment=f" </pre>{SCRIPT}")
HOSTILE_ANSWER = f"Here is a faster kernel: <b>bold</b> {SCRIPT}"


@dataclass(frozen=True)
class Filled:
    pop: Populated
    hostile: int  # a passed program whose source, log and LLM call hold markup
    call: int


def fill(archive: Archive) -> Filled:
    pop = populate(archive)
    call = archive.add_llm_call(pop.run, model="fake-model", purpose="mutate", prompt=f"Improve this:\n{SCRIPT}",
                                response=HOSTILE_ANSWER, prompt_tokens=120, completion_tokens=80, cost_usd=0.0012,
                                latency_s=1.5, error=None)
    hostile, _ = archive.add_program(pop.run, HOSTILE_SOURCE, parents=[pop.best], operator="llm_mutate",
                                     generation=4, meta={"llm_calls": [call], "model": "fake-model"})
    verdict = passed(2.3, 2.3, log=HOSTILE_LOG)
    verdict.timings[0].speedup_low, verdict.timings[0].speedup_high = 2.1, 2.3
    archive.add_evaluation(hostile, verdict, key="e-hostile", simulated=False)
    archive.update_cell(pop.run, 10, [2, 1, 0], hostile, 2.3)
    archive.add_event(pop.run, "llm_credit", f"llm_mutate by fake-model: program {hostile}: improved",
                      {"program_id": hostile, "operator": "llm_mutate", "model": "fake-model", "strategy": "tiles",
                       "result": "improved", "reward": 0.3, "cost_usd": 0.0012, "tokens": 200})
    archive.add_confirmation(pop.run, hostile, pop.best, key="c-hostile", speedup=1.12, low=1.08, high=1.16,
                             admitted=True, mode="gpu", device="NVIDIA H100 80GB HBM3",
                             shapes=[{"label": "B4 H16 N1024 D64", "speedup": 1.1, "low": 1.05, "high": 1.15}])
    for generation, (best, qd) in enumerate([(1.0, 1.0), (1.5, 2.5), (2.0, 4.5), (2.3, 6.8)], start=1):
        archive.add_generation_stats(pop.run, generation, evaluated=2 * generation, coverage=generation / 12,
                                     qd_score=qd, best_fitness=best)
    archive.set_run_status(pop.run, "finished")
    return Filled(pop, hostile, call)
