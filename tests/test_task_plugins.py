"""Tasks of other packages: an installed distribution's ``evolve.tasks`` entry point adds a task
that `evolve check` runs end to end (its sandbox imports the plug-in too), and a broken one is
named where a task is not found, without hiding the built-in tasks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import SEED

PLUGIN = '''
from harness.task import Trial
from harness.tasks.mha_fwd import MhaForward, case


class TinyForward(MhaForward):
    name = "mha_tiny"
    description = "mha_fwd on two small cases"

    def sweep(self, mode):
        cases = (case(1, 2, 17, 64, False, "float16"), case(1, 1, 9, 32, True, "float32"))
        return [Trial(self.label(c), c) for c in cases]
'''


@pytest.fixture
def site() -> Iterator[Path]:
    """A package directory others can read, as site-packages is: the sandbox runs the child as
    another user, who cannot enter pytest's 0700 tmp_path."""
    where = Path(tempfile.mkdtemp(prefix="evolve-plugin-"))
    where.chmod(0o755)
    yield where
    shutil.rmtree(where)


def _install(where: Path) -> dict[str, str]:
    """A distribution as pip would leave it: the module and its dist-info on the path."""
    (where / "tiny_tasks.py").write_text(PLUGIN)
    dist = where / "tiny_tasks-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-tasks\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[evolve.tasks]\ntiny = tiny_tasks:TinyForward\nbroken = no_such_module\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(where), os.environ.get("PYTHONPATH")]))}


def evolve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evolve", *args], capture_output=True, text=True, timeout=300, env=env)


def test_a_task_from_an_entry_point_is_checked_end_to_end(site: Path) -> None:
    r = evolve(_install(site), "check", "--task", "mha_tiny", str(SEED), "--json")
    assert r.returncode == 0, r.stderr
    verdict = json.loads(r.stdout.strip().splitlines()[-1])
    assert verdict["passed"] and [s["label"] for s in verdict["shape_results"]][:2] == [
        "B1 H2 N17 D64 float16", "B1 H1 N9 D32 float32 causal"]


def test_an_unknown_task_lists_the_plug_ins_and_why_a_broken_one_did_not_load(site: Path) -> None:
    r = evolve(_install(site), "check", "--task", "nope", str(SEED))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    message = " ".join(r.stderr.split())
    assert "known tasks: attn_bwd, gqa_fwd, mha_fwd, mha_tiny" in message
    assert "plug-in broken did not load: ModuleNotFoundError" in message
