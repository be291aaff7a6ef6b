"""``CheckOptions.stop_after``: a check that ends after a given stage, the cheap check of the
LLM operators' repair loop (static gate, compile and smoke)."""

from __future__ import annotations

from harness.checker import Checker, CheckOptions
from harness.device import detect
from harness.verdict import Outcome, Stage


def checker(stop_after: Stage) -> Checker:
    return Checker("mha_fwd", CheckOptions(timing=False, stop_after=stop_after, total_timeout_s=240),
                   platform=detect(force_interpreter=True))


def test_a_check_stopped_after_compile_passes_so_far_on_one_smoke_trial(seed_source: str) -> None:
    v = checker(Stage.COMPILE).check(seed_source)
    assert (v.outcome, v.stage) == (Outcome.PASSED, Stage.COMPILE)
    assert v.reason == "stopped after the compile stage, as asked"
    assert len(v.shape_results) == 1 and v.fitness is None


def test_a_kernel_wrong_beyond_the_smoke_shape_passes_the_compile_stage_only(seed_source: str) -> None:
    # Non-causal attention over the first 32 keys only: right on the 17-token smoke shape, wrong after.
    wrong = seed_source.replace("        hi = N_CTX\n", "        hi = tl.minimum(N_CTX, 32)\n")
    wrong = wrong.replace("split = (N_CTX // BLOCK_N) * BLOCK_N", "split = 0")
    assert wrong.count("tl.minimum(N_CTX, 32)") == 1
    assert checker(Stage.COMPILE).check(wrong).passed
    v = checker(Stage.SWEEP).check(wrong)
    assert (v.outcome, v.stage) == (Outcome.REJECTED, Stage.SWEEP)


def test_failures_up_to_the_stop_are_still_reported(seed_source: str) -> None:
    v = checker(Stage.COMPILE).check(seed_source.replace("acc = acc / l_i[:, None]", "acc = acc / l_j[:, None]"))
    assert (v.outcome, v.stage) == (Outcome.REJECTED, Stage.COMPILE) and "l_j" in v.reason
    v = checker(Stage.STATIC).check(seed_source)
    assert (v.outcome, v.stage, v.shape_results) == (Outcome.PASSED, Stage.STATIC, [])
    rejected = checker(Stage.STATIC).check("import os\n")
    assert (rejected.outcome, rejected.stage) == (Outcome.REJECTED, Stage.STATIC)
