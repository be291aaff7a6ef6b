"""The prompts: Jinja2 templates under ``prompts/`` (the one place their text lives), rendered
with ``StrictUndefined`` so a missing variable is an error, never an empty string. Facts of the
contract (allowed imports, shapes, tolerances) come from the code that enforces them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jinja2

import prompts as prompt_files
from evolve.llm.views import InspirationView, ProgramView, StepView, short_label
from harness.static_gate import ALLOWED_MODULES
from harness.task import Determinism, Task

PROMPTS_DIR = Path(prompt_files.__file__).resolve().parent
EditFormat = Literal["diff", "rewrite", "crossover"]
Message = dict[str, str]


@dataclass(frozen=True)
class Knowledge:
    name: str
    text: str


def environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(PROMPTS_DIR), undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)


def load_knowledge(names: list[str]) -> list[Knowledge]:
    return [Knowledge(n, (PROMPTS_DIR / "knowledge" / f"{n}.md").read_text()) for n in names]


def load_strategies() -> dict[str, str]:
    """The initial strategy hints, by name (``prompts/strategies/<name>.md``)."""
    return {p.stem: p.read_text().strip() for p in sorted((PROMPTS_DIR / "strategies").glob("*.md"))}


def _contract(task: Task) -> dict[str, Any]:
    def labels(trials: Any) -> list[str]:
        return [t.label for t in trials]

    smoke = task.sweep("gpu")[0]
    return {
        "task": task.name,
        "description": task.description,
        "brief": f"task/{task.name}.j2" if (PROMPTS_DIR / "task" / f"{task.name}.j2").exists() else None,
        "outputs": list(task.signature.outputs),
        "bitwise": task.determinism is Determinism.BITWISE,
        "allowed_modules": [m for m in ALLOWED_MODULES if m != "__future__"],
        "smoke": smoke.label,
        "sweep": labels(task.sweep("gpu")),
        "stability": labels(task.stability_trials("gpu")),
        "benchmark": [short_label(c) for c in task.benchmark_cases()],
        "benchmark_dtype": task.benchmark_cases()[0]["dtype"],
        "signature": task.signature.text(),
        "tolerances": {d: {o.name: o.tolerance for o in task.outputs({**smoke.case, "dtype": d})}
                       for d in ("bfloat16", "float16")},
    }


class Prompts:
    def __init__(self, task: Task, knowledge: list[str], *, peak_tflops: float) -> None:
        self.env = environment()
        self.task, self.peak = task, peak_tflops
        self.contract = _contract(task)
        self.knowledge = load_knowledge(knowledge)

    def render(self, name: str, **context: Any) -> str:
        return self.env.get_template(name).render(**context).strip() + "\n"

    def system(self, edit_format: EditFormat) -> str:
        return self.render("system.j2", edit_format=edit_format, knowledge=self.knowledge, **self.contract)

    def propose(self, kind: EditFormat, *, parents: list[ProgramView], inspirations: list[InspirationView],
                lineage: list[StepView], scratchpad: str | None, strategy: str) -> list[Message]:
        user = self.render("propose.j2", kind=kind, parents=parents, inspirations=inspirations, lineage=lineage,
                           scratchpad=scratchpad, strategy=strategy, peak=self.peak)
        return [{"role": "system", "content": self.system(kind)}, {"role": "user", "content": user}]

    def repair(self, *, edit_format: EditFormat, problem_kind: str, problem: str, log_tail: str,
               candidate: str | None, round: int, rounds: int) -> Message:
        text = self.render("repair.j2", edit_format=edit_format, problem_kind=problem_kind, problem=problem,
                           log_tail=log_tail, candidate=candidate, round=round, rounds=rounds)
        return {"role": "user", "content": text}

    def scratchpad(self, *, previous: str | None, best: list[ProgramView], outcomes: list[dict[str, Any]],
                   failures: list[Any], max_chars: int) -> list[Message]:
        text = self.render("scratchpad.j2", task=self.task.name, previous=previous, best=best, outcomes=outcomes,
                           failures=failures, max_chars=max_chars)
        return [{"role": "user", "content": text}]

    def strategy(self, *, strategies: list[dict[str, Any]], scratchpad: str | None) -> list[Message]:
        return [{"role": "user", "content": self.render("strategy.j2", strategies=strategies, scratchpad=scratchpad)}]

    def check(self) -> list[Message]:
        return [{"role": "user", "content": self.render("check.j2")}]
