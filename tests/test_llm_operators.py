"""The LLM operators against the tests' own model server: what each kind of answer becomes
(a proposal, a repair round, a dropped proposal), with the cheap checks run for real (static
gate, compile and smoke in Triton's CPU interpreter) and every call in the archive."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from archive import Archive
from evolve.config import validate
from evolve.descriptors import describe
from evolve.llm.client import resolve_endpoint
from evolve.llm.runtime import LlmRuntime
from evolve.operators import BUILTIN, Context, Feedback, Parent, Proposal
from harness.cost_model import simulated_timings
from harness.task import get_task
from harness.verdict import Outcome, Stage, Verdict

from .conftest import SEED
from .llm_fake import FakeLLM, Reply, Request, diff, rewrite

SEED_SOURCE = SEED.read_text()
NO_SMOKE = {"rounds": 2, "smoke": False}  # static gate and novelty only: for tests about something else
TUNED = '    (64, "full", 1024): {"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_N_MASKED": 64, "num_warps": 8, "num_stages": 3,\n'


def tuned(block_n: int) -> str:
    return TUNED.replace('"BLOCK_N": 64', f'"BLOCK_N": {block_n}')


def passed(source: str, scale: float = 1.0) -> Verdict:
    timings = simulated_timings(get_task("mha_fwd"), describe(source))
    for t in timings:
        t.ms /= scale
    return Verdict(Outcome.PASSED, Stage.DONE, "", "simulated", timings=timings)


class World:
    """An archive holding one run with the seed judged, and a runtime on the fake server."""

    def __init__(self, tmp_path: Path, fake: FakeLLM, **llm: Any) -> None:
        self.archive = Archive.open(str(tmp_path / "a.db"))
        settings = {"models": ["model-a"], "base_url": fake.url, "timeout_s": 10, "max_retries": 1,
                    "prices": {"model-a": {"input": 1.0, "output": 4.0}}, "repair": {"rounds": 2},
                    "scratchpad": {"interval": 0}, "strategies": {"mutate_every": 0}, **llm}
        self.cfg = validate({"budget": {"candidates": 10}, "simulate": True, "llm": settings})
        self.run_id = self.archive.create_run("mha_fwd", self.cfg.model_dump(mode="json"), simulated=True)
        self.seed, _ = self.archive.add_program(self.run_id, SEED_SOURCE, operator="seed")
        self.archive.add_evaluation(self.seed, passed(SEED_SOURCE), key="seed", simulated=True)
        self.rt = self.runtime()

    def runtime(self) -> LlmRuntime:
        rt = LlmRuntime(self.cfg, self.archive, resolve_endpoint(self.cfg.llm, env={"OPENAI_API_KEY": "sk-x"}))
        rt.start(self.run_id)
        return rt

    def parent(self, pid: int) -> Parent:
        info = self.archive.get_program(pid)
        return Parent(pid, info.source, info.latest_evaluation.fitness if info.latest_evaluation else None)

    def propose(self, name: str = "llm_diff", parents: list[int] | None = None, seed: int = 0) -> Proposal | None:
        op = BUILTIN[name](self.rt)
        ctx = Context([self.parent(p) for p in parents or [self.seed]], [], random.Random(seed))
        return asyncio.run(op.propose(ctx))

    def calls(self) -> list[Any]:
        return self.archive.llm_calls(self.run_id)

    def credits(self) -> list[dict[str, Any]]:
        return [e.data for e in self.archive.events(self.run_id) if e.kind == "llm_credit"]


def scripted(first: str, *repairs: str) -> Callable[[Request], Reply]:
    """The first answer, then one answer per repair round."""
    answers = [first, *repairs]

    def script(req: Request) -> Reply:
        rounds = sum(1 for m in req.messages if m["role"] == "assistant")
        return Reply(answers[min(rounds, len(answers) - 1)])

    return script


@pytest.fixture
def world(tmp_path: Path, request: Any) -> Any:
    worlds: list[World] = []

    def make(script: Any, **llm: Any) -> World:
        fake = FakeLLM(script).__enter__()
        request.addfinalizer(lambda: fake.__exit__(None, None, None))
        home = tmp_path / f"world{len(worlds)}"
        home.mkdir()
        w = World(home, fake, **llm)
        worlds.append(w)
        w.fake = fake  # type: ignore[attr-defined]
        return w

    yield make
    for w in worlds:
        w.archive.close()


def test_a_valid_diff_becomes_a_proposal_with_its_calls_in_meta(world: Any) -> None:
    w = world(scripted(diff(TUNED, tuned(32), "narrower key tiles at D=64")))
    p = w.propose()
    assert p is not None and p.operator == "llm_diff" and p.parents == [w.seed]
    assert tuned(32) in p.source and p.source.replace(tuned(32), TUNED) == SEED_SOURCE
    [call] = w.calls()
    assert call.purpose == "llm_diff" and call.error is None
    assert p.meta["summary"] == "narrower key tiles at D=64" and p.meta["repairs"] == 0
    assert p.meta["llm_calls"] == [call.id] and p.meta["model"] == "model-a"
    assert p.meta["llm_cost_usd"] == pytest.approx(call.cost_usd) and p.meta["strategy"] in w.rt.strategies.pool
    prompt = w.fake.requests[0]
    assert "SEARCH/REPLACE" in prompt.system and "# Knowledge" not in prompt.user
    assert "The current program: program 1" in prompt.user and "TUNABLES = {" in prompt.user


def test_a_diff_with_mangled_whitespace_is_applied(world: Any) -> None:
    mangled = TUNED.strip() + "   \n"  # no indentation, trailing spaces
    w = world(scripted(diff(mangled, tuned(16).strip() + "\n")), repair=NO_SMOKE)
    p = w.propose()
    assert p is not None and tuned(16) in p.source  # re-indented to where it landed


def test_a_search_text_that_is_absent_goes_back_to_the_model(world: Any) -> None:
    absent = TUNED.replace("num_warps", "num_warp")
    w = world(scripted(diff(absent, tuned(32)), diff(TUNED, tuned(32))))
    p = w.propose()
    assert p is not None and tuned(32) in p.source and p.meta["repairs"] == 1
    assert [c.purpose for c in w.calls()] == ["llm_diff", "repair"]
    repair = w.fake.requests[1].user
    assert "could not be applied" in repair and "not in the program" in repair and "Repair round 1 of 2" in repair


def test_a_full_rewrite_becomes_a_proposal(world: Any) -> None:
    source = SEED_SOURCE.replace(TUNED, tuned(128))
    w = world(scripted(rewrite(source, "wider tiles")))
    p = w.propose("llm_rewrite")
    assert p is not None and p.source == source and p.meta["summary"] == "wider tiles"
    assert "complete new program" in w.fake.requests[0].system


def test_broken_code_is_fixed_in_the_repair_loop(world: Any) -> None:
    """The first edit does not compile (a name error in the kernel, caught by the interpreter);
    the error goes back to the model, whose second edit, against the broken candidate, fixes it."""
    good, bad = "    acc = acc / l_i[:, None]\n", "    acc = acc / l_j[:, None]\n"
    w = world(scripted(diff(TUNED, tuned(32)) + diff(good, bad), diff(bad, good)))
    p = w.propose()
    assert p is not None and p.meta["repairs"] == 1 and good in p.source and tuned(32) in p.source
    repair = w.fake.requests[1].user
    assert "failed the cheap checks (compile)" in repair and "l_j" in repair
    assert "This is the candidate as it stands" in repair and bad in repair
    assert [c.purpose for c in w.calls()] == ["llm_diff", "repair"]


def test_a_duplicate_of_anything_in_the_archive_is_refused_before_any_gpu_time(world: Any) -> None:
    # Program from another run of the same archive: the novelty check is archive-wide.
    w = world(scripted(diff(TUNED, tuned(32)), diff(TUNED, tuned(16))))
    other_run = w.archive.create_run("mha_fwd", {}, simulated=True)
    other, _ = w.archive.add_program(other_run, SEED_SOURCE.replace(TUNED, tuned(32)) + "\n# a comment\n",
                                     operator="import")
    p = w.propose()
    assert p is not None and tuned(16) in p.source and p.meta["repairs"] == 1
    assert f"identical (once layout and comments are ignored) to program {other}" in w.fake.requests[1].user


def test_a_truncated_answer_is_a_dropped_proposal_recorded_with_its_reason(world: Any) -> None:
    w = world(lambda req: Reply("<<<<<<< SEARCH\n    64: {", finish_reason="length"))
    assert w.propose() is None
    [call] = w.calls()
    assert call.error.startswith("truncated")
    [credit] = w.credits()
    assert credit["program_id"] is None and credit["result"].startswith("dropped: the call failed: truncated")
    assert credit["cost_usd"] == pytest.approx(call.cost_usd) and credit["reward"] == 0


def test_a_proposal_that_never_passes_is_dropped_after_the_repair_rounds(world: Any) -> None:
    w = world(scripted("I think the kernel is fine as it is."))
    assert w.propose() is None
    assert [c.purpose for c in w.calls()] == ["llm_diff", "repair", "repair"]
    assert all(c.error is None for c in w.calls())
    [credit] = w.credits()
    assert credit["result"].startswith("dropped after 2 repair round(s): edit: the answer has no SEARCH/REPLACE")
    assert "Repair round 2 of 2" in w.fake.requests[-1].user


def test_a_crossover_sees_both_parents_and_writes_a_child(world: Any) -> None:
    w = world(scripted(rewrite(SEED_SOURCE.replace(TUNED, tuned(128)), "A's causal path with B's tiles")),
              repair=NO_SMOKE)
    other, _ = w.archive.add_program(w.run_id, SEED_SOURCE.replace(TUNED, tuned(16)), parents=[w.seed],
                                     operator="mutate", generation=1)
    w.archive.add_evaluation(other, passed(SEED_SOURCE, 1.1), key="o", simulated=True)
    p = w.propose("llm_crossover", parents=[w.seed, other])
    assert p is not None and p.parents == [w.seed, other]
    user = w.fake.requests[0].user
    assert f"Parent A: program {w.seed}" in user and f"Parent B: program {other}" in user


def test_feedback_credits_the_model_and_strategy_and_survives_a_resume(world: Any) -> None:
    w = world(scripted(diff(TUNED, tuned(32))), models=["model-a", "model-b=2"],
              prices={"model-a": {"input": 1, "output": 4}, "model-b": {"input": 2, "output": 8}}, repair=NO_SMOKE)
    p = w.propose()
    assert p is not None
    pid, _ = w.archive.add_program(w.run_id, p.source, parents=p.parents, operator=p.operator, meta=p.meta)
    op = BUILTIN["llm_diff"](w.rt)
    op.feedback(Feedback(pid, p.meta, 0.8, passed(p.source, 2.0), 1.2))
    model, strategy = p.meta["model"], p.meta["strategy"]
    [credit] = w.credits()
    assert credit["program_id"] == pid and credit["reward"] > 0 and credit["result"].startswith("passed, fitness")
    assert w.rt.models.arms[model].pulls == 1 and w.rt.models.arms[model].gain == pytest.approx(credit["reward"])
    assert w.rt.strategies.bandit.arms[strategy].gain == pytest.approx(credit["reward"])
    resumed = w.runtime()  # a new session of the same run rebuilds both bandits from the archive
    assert resumed.models.arms[model].gain == pytest.approx(credit["reward"])
    assert resumed.strategies.bandit.arms[strategy].pulls == 1


def test_strategy_hints_are_mutated_by_the_model_and_kept_across_a_resume(world: Any) -> None:
    def script(req: Request) -> Reply:
        if "strategy hint" in req.user:
            return Reply("Name: split-diagonal\nHandle the diagonal tiles of causal attention in a separate, "
                         "smaller-tile loop and measure it on N=1024.")
        return Reply(diff(TUNED, tuned(32)))

    w = world(script, strategies={"mutate_every": 1, "population": 6, "min_trials": 1}, repair=NO_SMOKE)
    w.rt.credit(operator="llm_diff", meta={"model": "model-a", "strategy": "weakest-shape", "llm_cost_usd": 0.01,
                                           "llm_tokens": 100}, parent_fitness=0.8, fitness=0.9, result="passed",
                program_id=None)
    assert w.propose() is not None
    assert [c.purpose for c in w.calls()] == ["meta_prompt", "llm_diff"]
    assert "split-diagonal" in w.rt.strategies.pool and len(w.rt.strategies.pool) == 6  # one retired
    [event] = [e for e in w.archive.events(w.run_id) if e.kind == "llm_strategy"]
    assert event.data["parent"] == "weakest-shape" and event.data["retired"] not in w.rt.strategies.pool
    assert set(w.runtime().strategies.pool) == set(w.rt.strategies.pool)


def test_the_scratchpad_is_summarized_by_the_model_and_shown_in_later_prompts(world: Any) -> None:
    def script(req: Request) -> Reply:
        if "You keep the notebook" in req.user:
            return Reply("## Worked\n- narrower key tiles at D=64: +3%\n## Failed\n- none\n## Untried\n- TMA")
        return Reply(diff(TUNED, tuned(32)))

    w = world(script, scratchpad={"interval": 1}, repair=NO_SMOKE)
    assert w.propose() is not None
    assert [c.purpose for c in w.calls()] == ["scratchpad", "llm_diff"]
    assert "narrower key tiles at D=64: +3%" in w.fake.requests[1].user
    assert "Best kernels so far" in w.fake.requests[0].user and f"program {w.seed}" in w.fake.requests[0].user
    assert w.runtime().scratchpad.text == w.rt.scratchpad.text
