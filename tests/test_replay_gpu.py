"""Replay on a GPU: a recorded plan, loaded through Triton's own loader and launcher into fresh
buffers, computes bit for bit what the eager call computed, for every kind of honest kernel
(several launches, scratch buffers, a table allocated before the call, autotuning, host and
device tensor descriptors, Gluon); and each of those kernels passes the whole judge."""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from harness.checker import Checker
from harness.verdict import Verdict

from .conftest import ROOT, SEED

HONEST = {p.stem: p for p in sorted((ROOT / "tests" / "honest").glob("*.py"))
          if not p.stem.startswith("compile_")}  # compile_*.py are tools, not candidates
KERNELS = {"seed": SEED, **HONEST}


def _module(path: Path):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(f"honest_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.gpu
@pytest.mark.parametrize("name", list(KERNELS))
@pytest.mark.parametrize(("seq", "head_dim", "causal"), [(1000, 128, True)])
def test_a_recorded_plan_replays_bit_for_bit_what_the_eager_call_computed(
        name: str, seq: int, head_dim: int, causal: bool, tmp_path: Path) -> None:
    import torch

    from harness.plan import Limits, check_launches, parse_plan, plan_json
    from harness.recorder import Recorder
    from harness.replay import Kernels, Replay
    from harness.task import get_task
    from harness.tasks.mha_fwd import case as make_case

    task = get_task("mha_fwd")
    case = make_case(2, 3, seq, head_dim, causal, "bfloat16")
    recorder = Recorder()
    recorder.install()
    forward = _module(KERNELS[name]).forward
    inputs = task.make_inputs(case, 1, "cuda")
    task.call(forward, inputs, case)  # compiles (and autotunes)
    with recorder.recording(inputs, list(task.signature.inputs)) as rec:
        out = task.call(forward, inputs, case)
    torch.cuda.synchronize()
    plan, snapshots = rec.finish([out])
    plan = parse_plan(plan_json(plan), Limits())  # what the judge sees
    kernels = Kernels(tmp_path)
    specs = {s.sha256: (s, b) for s, b in recorder.kernels.values()}
    for sha in plan.kernels():
        kernels.load(*specs[sha])
    check_launches(plan, kernels.specs)
    replay = Replay(plan, kernels, snapshots, inputs, guard_byte=0x5A)
    replay.reset()
    for view, t in zip(replay.inputs, inputs):
        view.copy_(t)
    replay.launch()
    torch.cuda.synchronize()
    assert torch.equal(replay.outputs[0].view(torch.uint8), out.contiguous().view(torch.uint8))
    assert replay.guards_intact()


@pytest.fixture(scope="module")
def honest_verdicts(gpu_checker: Checker) -> dict[str, Verdict]:
    """Each honest kernel through the whole judge (correctness; timing is benchmarks/judge_bench.py's),
    six at a time."""
    checker = Checker(gpu_checker.task, replace(gpu_checker.opt, timing=False), gpu_checker.platform)
    with ThreadPoolExecutor(6) as pool:
        return dict(zip(HONEST, pool.map(lambda p: checker.check(p.read_text()), HONEST.values())))


@pytest.mark.gpu
@pytest.mark.parametrize("name", list(HONEST))
def test_an_honest_kernel_passes_the_judge(name: str, honest_verdicts: dict[str, Verdict]) -> None:
    verdict = honest_verdicts[name]
    assert verdict.passed, verdict.reason
    assert verdict.mode == "gpu" and len(verdict.shape_results) >= 36


def _every_entry(source: str, **values: int) -> str:
    from evolve import tunables

    found = tunables.find(source)
    return tunables.rewrite(source, {t: values[t.name] for t in found if t.entry and t.name in values})


@pytest.mark.gpu
def test_a_duel_confirms_a_real_gain_and_refuses_a_tie(gpu_checker: Checker) -> None:
    from evolve.confirmation import rule
    from evolve.executor import Duel, DuelResult, Job

    seed = SEED.read_text()
    slow = _every_entry(seed, BLOCK_M=64, BLOCK_N=32, BLOCK_N_MASKED=32, num_warps=4, num_stages=2)
    assert slow != seed
    duel = Duel(Job(1, seed, {}, 0), Job(2, seed, {}, 0), rival_fitness=0.8)
    tie = gpu_checker.duel(seed, seed)
    gain = gpu_checker.duel(seed, slow)
    assert tie.shapes and gain.shapes, tie.reason or gain.reason
    assert len(gain.shapes) == len(gpu_checker.task.benchmark_cases())
    refused = rule(DuelResult.from_dict(duel, tie.to_dict()), 0.9)
    admitted = rule(DuelResult.from_dict(duel, gain.to_dict()), 0.9)
    assert not refused.admitted and refused.fitness <= 0.8, refused.reason
    assert admitted.admitted and admitted.speedup is not None and admitted.speedup.low > 1.1, admitted.reason
