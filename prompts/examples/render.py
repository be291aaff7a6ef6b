"""Renders the example prompts of this folder from a real archive, exactly as the LLM operators
send them (``=== role ===`` separates the messages, as in the archive's ``llm_calls``):

    python prompts/examples/render.py /path/to/search.db

The committed examples come from the H100 search of ``benchmarks/results/search-h100.md``
(run 1): its best program 72 as the parent, programs 80 and 38 from other cells as inspirations.
The model's answer in ``repair.md`` is made up (no model was called); the error that goes back
to the model is the real one, from the cheap checks run on that answer.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from archive import Archive
from evolve.llm.client import render_messages
from evolve.llm.edits import apply_blocks, parse_blocks
from evolve.llm.precheck import LocalCheck
from evolve.llm.prompts import Prompts, load_strategies
from evolve.llm.settings import LlmSettings, Repair
from evolve.llm.strategies import StrategyPool
from evolve.llm.views import Views
from harness.task import get_task

RUN, PARENT, OTHER, INSPIRATIONS = 1, 72, 80, (80, 38)
HERE = Path(__file__).resolve().parent
BROKEN_ANSWER = """Summary: defer the normalization: multiply by the reciprocal of l once per row

The epilogue divides every element of the accumulator by l_i; one reciprocal per row and a
multiply is cheaper.

<<<<<<< SEARCH
    acc = acc / l_i[:, None]
=======
    inv_l = 1.0 / l_j
    acc = acc * inv_l[:, None]
>>>>>>> REPLACE
"""


def render_all(db: str) -> dict[str, str]:
    settings = LlmSettings()
    task = get_task("mha_fwd")
    hints = load_strategies()
    with Archive.open(db, create=False) as archive:
        views = Views(archive, task, peak_tflops=settings.peak_tflops)
        prompts = Prompts(task, settings.knowledge, peak_tflops=settings.peak_tflops)
        parent = views.program(PARENT)
        inspirations = [views.inspiration(i, parent.source) for i in INSPIRATIONS]
        lineage = views.lineage(PARENT, settings.lineage_depth)

        def propose(kind: str, hint: str, parents: list[int]) -> list[dict[str, str]]:
            return prompts.propose(kind, parents=[views.program(p) for p in parents],  # type: ignore[arg-type]
                                   inspirations=inspirations, lineage=lineage, scratchpad=None, strategy=hints[hint])

        out = {
            "llm_diff.md": propose("diff", "weakest-shape", [PARENT]),
            "llm_rewrite.md": propose("rewrite", "pipeline-the-loop", [PARENT]),
            "llm_crossover.md": propose("crossover", "per-head-dim-specialization", [PARENT, OTHER]),
        }
        candidate = apply_blocks(parent.source, parse_blocks(BROKEN_ANSWER))
        check = asyncio.run(LocalCheck(archive, task.name, Repair())(candidate, [PARENT]))
        assert not check.ok, "the made-up answer is meant to fail the cheap checks"
        out["repair.md"] = out["llm_diff.md"] + [
            {"role": "assistant", "content": BROKEN_ANSWER},
            prompts.repair(edit_format="diff", problem_kind=check.kind, problem=check.message, log_tail=check.log_tail,
                           candidate=candidate, round=1, rounds=settings.repair.rounds)]
        out["scratchpad.md"] = prompts.scratchpad(
            previous=None, best=[views.program(t.program_id) for t in archive.top(RUN, 5)], outcomes=[],
            failures=archive.failures(RUN)[:8], max_chars=settings.scratchpad.max_chars)
        out["meta_prompt.md"] = prompts.strategy(strategies=StrategyPool(settings.strategies, hints).stats(),
                                                 scratchpad=None)
    return {name: render_messages(messages) for name, messages in out.items()}


if __name__ == "__main__":
    for name, text in render_all(sys.argv[1]).items():
        (HERE / name).write_text(text)
        print(f"wrote {HERE / name} ({len(text)} characters)")
