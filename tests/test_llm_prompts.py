"""What a model is given: templates under ``prompts/`` rendered strictly, with the parent's
evaluation feedback, lineage, inspirations, knowledge, notebook and strategy; and the committed
examples, rendered from the reconstructed archive of the H100 search (``prompts/examples/h100-run1.json``),
kept up to date."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import jinja2
import pytest

from archive import Archive
from evolve.llm.prompts import PROMPTS_DIR, Prompts, environment, load_strategies
from evolve.llm.views import Views
from harness.task import get_task
from harness.verdict import Outcome, ShapeResult, Stage, Verdict

from .conftest import SEED
from .test_llm_operators import TUNED, passed, tuned

REPO = PROMPTS_DIR.parent


def test_a_missing_template_variable_is_an_error_never_an_empty_string() -> None:
    with pytest.raises(jinja2.UndefinedError):
        environment().from_string("parent: {{ parent }}").render()
    prompts = Prompts(get_task("mha_fwd"), [], peak_tflops=790)
    with pytest.raises(jinja2.UndefinedError):
        prompts.render("propose.j2", kind="diff", parents=[], inspirations=[], lineage=[], scratchpad=None)


def test_the_proposal_prompt_carries_the_evaluation_feedback(tmp_path: Path) -> None:
    seed_source = SEED.read_text()
    with Archive.open(str(tmp_path / "a.db")) as a:
        run = a.create_run("mha_fwd", {}, simulated=True)
        seed, _ = a.add_program(run, seed_source, operator="seed")
        a.add_evaluation(seed, passed(seed_source), key="1", simulated=True)
        child, _ = a.add_program(run, seed_source.replace(TUNED, tuned(32)), parents=[seed], operator="llm_diff",
                                 generation=1, meta={"summary": "narrower key tiles at D=64"})
        a.add_evaluation(child, passed(seed_source, 1.25), key="2", simulated=True)
        broken, _ = a.add_program(run, seed_source.replace(TUNED, tuned(16)), parents=[child], operator="mutate",
                                  generation=2, meta={"changes": "64:BLOCK_N 32->16"})
        a.add_evaluation(broken, Verdict(Outcome.REJECTED, Stage.SWEEP, "B2 H3 N17 D64 bfloat16: max abs error 0.9",
                                         "simulated", shape_results=[ShapeResult("B2 H3 N17 D64 bfloat16", {}, 0.4,
                                                                                 0.9, False, "max abs error 0.9")]),
                         key="3", simulated=True)
        views = Views(a, get_task("mha_fwd"), peak_tflops=790)
        prompts = Prompts(get_task("mha_fwd"), ["attention", "hopper"], peak_tflops=790)

        def render(parent: int, other: int) -> tuple[str, str]:
            system, user = prompts.propose(
                "diff", parents=[views.program(parent)], lineage=views.lineage(parent, 5),
                inspirations=[views.inspiration(other, views.program(parent).source)],
                scratchpad="- TMA gained 3% at D=128", strategy=load_strategies()["causal-schedule"])
            return system["content"], user["content"]

        (s, u), (_, failed) = render(child, seed), render(broken, seed)
    assert "# Attention forward: techniques that pay" in s and "# The GPU: NVIDIA H100" in s
    assert "# What Triton expresses" not in s  # only the configured knowledge files
    assert "Imports allowed: torch, triton, math, typing, functools, dataclasses." in s  # from the static gate
    assert "bfloat16: relative norm error <= 0.025" in s  # from the task's tolerances
    assert "| B16 H32 N1024 D64 causal |" in u and "sdpa_flash" in u and "% of peak: TFLOP/s over 790" in u
    assert "simulated: a cost model" in u
    assert "- program 2 (llm_diff of 1): narrower key tiles at D=64; fitness 2.007 (+0.401 vs its parent)" in u
    assert "Its difference from the current program:" in u and "+" + TUNED.rstrip("\n") in u
    assert "- TMA gained 3% at D=128" in u and "Target the causal shapes" in u
    assert "Rejected at the sweep stage: B2 H3 N17 D64 bfloat16: max abs error 0.9" in failed
    assert "- B2 H3 N17 D64 bfloat16: max abs error 0.9 (relative error 4.00e-01" in failed
    assert "- program 3 (mutate of 2): 64:BLOCK_N 32->16; fitness n/a" in failed


def _render_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_examples", PROMPTS_DIR / "examples" / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_example_prompts_are_what_the_templates_render_for_a_real_parent(tmp_path: Path) -> None:
    render = _render_module()
    db = str(tmp_path / "h100-run1.db")
    render.build_archive(db)
    rendered = render.render_all(db)
    for name, text in rendered.items():
        assert (PROMPTS_DIR / "examples" / name).read_text() == text, (
            f"prompts/examples/{name} is stale: run python prompts/examples/render.py")
    diff = rendered["llm_diff.md"]
    assert "The current program: program 72 (crossover of 2, 9, generation 3)" in diff
    assert "| B16 H16 N1024 D128 causal | 0.251 | 274 | 35% | sdpa_cudnn | 412 | 0.67x |" in diff
    assert "failed the cheap checks (compile)" in rendered["repair.md"]

    # The reconstruction agrees with the committed results of the run it stands for.
    summary = json.loads((REPO / "benchmarks" / "results" / "search-h100.json").read_text())
    with Archive.open(db, create=False) as archive:
        top = archive.top(1, 5)
        assert [t.program_id for t in top] == [t["program"] for t in summary["top5"]]
        for got, want in zip(top, summary["top5"]):
            assert got.fitness == pytest.approx(want["fitness"], abs=1e-6)
            assert got.tflops == pytest.approx(want["tflops"], abs=1e-3)
        assert archive.get_program(72).source == (REPO / "benchmarks" / "kernels" / "search-h100-best.py").read_text()
        exported = REPO / "benchmarks" / "exported" / "h100_attention" / "h100_attention" / "kernels"
        for pid in (9, 47, 80):
            assert archive.get_program(pid).source == (exported / f"program_{pid}.py").read_text()
        assert sum(f.count for f in archive.failures(1)) == summary["by_outcome"]["rejected"]
