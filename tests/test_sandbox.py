"""Properties of the sandbox itself, beyond what the adversarial suite shows."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT, SEED


def test_a_project_living_under_tmp_still_runs_inside_the_private_tmp(tmp_path: Path) -> None:
    """The sandbox mounts a private /tmp; code and packages that live under /tmp (a CI clone,
    a venv) are bound back read-only, or the child could not even import the harness."""
    for package in ("harness", "seeds"):
        shutil.copytree(ROOT / package, tmp_path / package)
    script = (
        "from harness.checker import Checker\n"
        "from harness.device import detect\n"
        "import harness, sys\n"
        f"assert harness.__file__.startswith({str(tmp_path)!r})\n"
        "v = Checker('mha_fwd', platform=detect(force_interpreter=True)).check(open(sys.argv[1]).read())\n"
        "print(v.outcome.value, v.sandbox, v.reason)\n"
    )
    r = subprocess.run([sys.executable, "-c", script, str(SEED)], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("passed") and "private-tmp" in r.stdout, r.stdout
