"""Renders the example prompts of this folder exactly as the LLM operators send them (``=== role ===``
separates the messages, as in the archive's ``llm_calls``):

    python prompts/examples/render.py             # from the reconstructed H100 archive (h100-run1.json)
    python prompts/examples/render.py ARCHIVE     # from any archive holding run 1 with those programs

The committed examples come from ``h100-run1.json``: a reconstruction of run 1 of the H100 search of
``benchmarks/results/search-h100.md`` (whose own archive was never committed), built from that run's
committed results; README.md says which of its figures are exact and which are reconstructed.
``build_archive`` turns it into an archive through the public Archive API. Its best program 72 is the
parent, programs 80 and 38 from other cells the inspirations. The model's answer in ``repair.md`` is
made up (no model was called); the error that goes back to the model is the real one, from the cheap
checks run on that answer.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from statistics import fmean
from typing import Any

from archive import Archive, content_hash
from evolve import tunables
from evolve.llm.client import render_messages
from evolve.llm.edits import apply_blocks, parse_blocks
from evolve.llm.precheck import LocalCheck
from evolve.llm.prompts import Prompts, load_strategies
from evolve.llm.settings import LlmSettings, Repair
from evolve.llm.strategies import StrategyPool
from evolve.llm.views import Views, short_label
from harness.task import get_task
from harness.verdict import Outcome, ShapeResult, Stage, Timing, Verdict

RUN, PARENT, OTHER, INSPIRATIONS = 1, 72, 80, (80, 38)
HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
FIXTURE = HERE / "h100-run1.json"
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


def _source(program: dict[str, Any], base: str) -> str:
    """The base source with the program's TUNABLES written in, as the LLM-free operators rewrite them;
    a stand-in (a program whose source was not committed) is a two-line module naming its id."""
    if program.get("stand_in", "tunables" not in program):
        return (f'"""Stand-in for program {program["id"]} of H100 search run 1: its source was not committed."""\n\n'
                f"STAND_IN_FOR_PROGRAM = {program['id']}\n")
    found = tunables.entries(tunables.find(base))
    source = tunables.rewrite(base, {found[entry][name]: value for entry, row in program["tunables"].items()
                                     for name, value in row.items()})
    if "sha256" in program and content_hash(source) != program["sha256"]:
        raise ValueError(f"program {program['id']}: the rebuilt source does not match its committed sha256")
    return source


def _verdict(e: dict[str, Any], fixture: dict[str, Any]) -> Verdict:
    run = fixture["run"]
    verdict = Verdict(Outcome(e["outcome"]), Stage(e["stage"]), e.get("reason", ""), "gpu", device=run["device"],
                      torch_version=run["torch"], triton_version=run["triton"])
    if "timings" in e:
        cases = {short_label(c): c for c in fixture["benchmark_cases"]}
        for label, (tflops, baseline_tflops) in e["timings"].items():
            case = cases[label]
            flops = 4 * case["batch"] * case["heads"] * case["seq"] ** 2 * case["head_dim"] / (2 if case["causal"] else 1)
            verdict.timings.append(Timing(case, flops / (tflops * 1e9), flops / (baseline_tflops * 1e9), e["baseline"],
                                          tflops, baseline_tflops))
        # The figures the fixture records for the evaluation as a whole must follow from its timings.
        mean = fmean(t.tflops for t in verdict.timings)
        if abs((verdict.fitness or 0) - e["fitness"]) > 1e-6 or abs(mean - e.get("mean_tflops", mean)) > 1e-3:
            raise ValueError(f"the timings give fitness {verdict.fitness} and mean {mean} TFLOP/s, "
                             f"not the recorded {e['fitness']} and {e.get('mean_tflops')}")
    if e["outcome"] == "passed":
        # Only the worst relative error of the trials is known: it goes on the first one.
        verdict.shape_results = [ShapeResult(label, {}, e["worst_rel_err"] if i == 0 else None, None, True)
                                 for i, label in enumerate(fixture["trials"])]
    return verdict


def build_archive(db: str, fixture_path: Path = FIXTURE) -> None:
    """A new archive at ``db`` holding the fixture's run 1: every program id of the run (stand-ins
    where nothing is known), so that ids, parents and lineage are those of the real run."""
    fixture = json.loads(fixture_path.read_text())
    base = (REPO / fixture["base_source"]).read_text()
    run_info, known = fixture["run"], {p["id"]: p for p in fixture["programs"]}
    with Archive.open(db) as archive:
        run = archive.create_run(run_info["task"], {}, simulated=False, name=run_info["name"])
        if run != run_info["id"]:
            raise ValueError(f"{db} already holds runs: the fixture needs a new archive")
        for pid in range(1, run_info["programs"] + 1):
            p = known.get(pid, {"id": pid, "operator": "unknown"})
            got, created = archive.add_program(run, _source(p, base), parents=p.get("parents", []),
                                               operator=p.get("operator", "unknown"),
                                               generation=p.get("generation", 0), meta=p.get("meta"))
            if not created or got != pid:
                raise ValueError(f"program {pid} of the fixture became program {got} (created: {created})")
            if "evaluation" in p:
                archive.add_evaluation(pid, _verdict(p["evaluation"], fixture), key=f"h100-run1-program-{pid}",
                                       simulated=False)
        archive.set_run_status(run, run_info["status"])


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


def render_fixture() -> dict[str, str]:
    """The examples as rendered from a fresh archive built from ``h100-run1.json``."""
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "h100-run1.db")
        build_archive(db)
        return render_all(db)


if __name__ == "__main__":
    for name, text in (render_all(sys.argv[1]) if len(sys.argv) > 1 else render_fixture()).items():
        (HERE / name).write_text(text)
        print(f"wrote {HERE / name} ({len(text)} characters)")
