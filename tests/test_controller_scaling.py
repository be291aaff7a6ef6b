"""One controller keeps sixteen GPU workers busy: the real search against simulated workers whose
evaluations take a fixed time (``evaluation.fixed_eval_s``), busy time read from the workers' clocks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.controller_scaling import busy_fraction, measure
from evolve.config import validate
from evolve.errors import UserError


def test_busy_fraction_counts_overlaps_once_and_only_inside_the_window() -> None:
    spans = [[(0.0, 4.0, "check"), (2.0, 6.0, "duel")], [(5.0, 9.0, "check")]]  # busy 1-6 and 5-8 in the window
    assert busy_fraction(spans, 1.0, 8.0) == pytest.approx((5 + 3) / (2 * 7))


def test_fixed_evaluation_time_needs_a_simulated_run() -> None:
    with pytest.raises(UserError, match="fixed_eval_s needs simulate"):
        validate({"budget": {"candidates": 1}, "evaluation": {"fixed_eval_s": 4}})
    assert validate({"budget": {"candidates": 1}, "simulate": True,
                     "evaluation": {"fixed_eval_s": 4}}).evaluation.fixed_eval_s == 4


def test_fixed_time_worker_imports_neither_torch_nor_triton() -> None:
    code = "import sys, evolve.fixed_worker; print(sorted({'torch', 'triton'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_sixteen_simulated_gpus_are_kept_busy(tmp_path: Path, record_property: pytest.RecordProperty) -> None:
    s = measure(workers=16, eval_s=4.0, candidates=112, db=f"sqlite:///{tmp_path}/a.db")
    record_property("controller_cpu_s_per_candidate", s.cpu_s_per_candidate)
    print(f"busy {s.busy_fraction:.1%} over {s.window_s:.0f} s ({s.busy_with_fill:.1%} with the {s.fill_s:.1f} s "
          f"fill); controller CPU {1000 * s.cpu_s_per_candidate:.1f} ms per candidate; "
          f"{s.candidates_per_hour:.0f} candidates per hour")
    assert s.candidates == 112
    assert 0 < s.cpu_s_per_candidate < 4.0 / 16  # less CPU per candidate than one worker's share of a check
    assert s.busy_fraction >= 0.9, s
