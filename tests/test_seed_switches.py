"""The seed's switches against the naive reference (``tests/seed_switches_cases.py``), run in a
process of their own: in a pytest process that had already run other tests, Triton's
interpreter failed every nested ``@triton.jit`` call of the seed ("Cannot call @triton.jit'd
outside of the scope of a kernel"), while the same cases pass in a fresh process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).with_name("seed_switches_cases.py")


@pytest.mark.slow
def test_every_switch_of_the_seed_matches_the_naive_reference() -> None:
    r = subprocess.run([sys.executable, "-m", "pytest", str(CASES), "-q", "-p", "no:cacheprovider"],
                       capture_output=True, text=True, timeout=1200, cwd=CASES.parents[1])
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert " passed" in r.stdout and "failed" not in r.stdout
