"""A run's own benchmark shapes (``--shapes`` or ``shapes`` in the config): checked by the task,
stored with the run, and what fitness is measured on."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from evolve.config import validate
from evolve.errors import UserError
from harness.task import get_task

LLAMA = {"batch": 2, "heads": 32, "kv_heads": 8, "seq": 8192, "head_dim": 128, "causal": True}


def test_a_tasks_benchmark_becomes_the_users_shapes() -> None:
    task = get_task("gqa_fwd", [LLAMA, {**LLAMA, "causal": False, "dtype": "float16"}])
    cases = task.benchmark_cases()
    assert [(c["heads"], c["kv_heads"], c["seq"], c["causal"], c["dtype"]) for c in cases] == [
        (32, 8, 8192, True, "bfloat16"), (32, 8, 8192, False, "float16")]
    assert task.sweep("gpu") == get_task("gqa_fwd").sweep("gpu")  # correctness trials stay the task's
    assert len(get_task("gqa_fwd").benchmark_cases()) == 12


@pytest.mark.parametrize(("task", "shape", "says"), [
    ("gqa_fwd", {**LLAMA, "heads": 30}, "heads 30 is not a multiple of kv_heads 8"),
    ("gqa_fwd", {k: v for k, v in LLAMA.items() if k != "kv_heads"}, "missing field(s) kv_heads"),
    ("mha_fwd", LLAMA, "unknown field(s) kv_heads"),
    ("gqa_fwd", {**LLAMA, "seq": 0}, "seq must be a positive integer, not 0"),
    ("gqa_fwd", {**LLAMA, "causal": "yes"}, "causal must be true or false"),
    ("gqa_fwd", {**LLAMA, "dtype": "float32"}, "dtype 'float32': bfloat16 or float16"),
    ("gqa_fwd", {**LLAMA, "head_dim": 512}, "head_dim 512 is outside 1-256"),
])
def test_a_shape_the_task_cannot_take_is_a_sentence_naming_it(task: str, shape: dict, says: str) -> None:
    with pytest.raises(UserError) as e:
        validate({"budget": {"candidates": 5}, "task": task, "shapes": [shape]})
    assert "shape 1" in str(e.value) and says in str(e.value)


def evolve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evolve", *args], capture_output=True, text=True, timeout=300)


def test_shapes_file_mistakes_are_sentences(tmp_path: Path) -> None:
    for text, says in (("[[shape]]\nbatch = 1\n", "must hold [[shapes]] tables only"), ("[[shapes\n", "not valid TOML")):
        (tmp_path / "s.toml").write_text(text)
        r = evolve("run", "--simulate", "--budget", "3", "--shapes", str(tmp_path / "s.toml"), "--db", str(tmp_path / "a.db"))
        assert r.returncode == 2 and says in " ".join(r.stderr.split()) and "Traceback" not in r.stderr
    r = evolve("run", "--simulate", "--budget", "3", "--shapes", str(tmp_path / "none.toml"))
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_a_run_measures_its_own_shapes_and_keeps_them(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text("".join(
        "[[shapes]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in {**LLAMA, "seq": n}.items()) for n in (512, 8192)))
    (tmp_path / "run.toml").write_text("[evaluation]\nfixed_eval_s = 0.05\n")
    db = tmp_path / "a.db"
    r = evolve("run", "--simulate", "--task", "gqa_fwd", "--budget", "4", "--shapes", str(tmp_path / "s.toml"),
               "--config", str(tmp_path / "run.toml"), "--db", str(db), "--quiet")
    assert r.returncode == 0, r.stderr
    with sqlite3.connect(db) as c:
        labels = {row[0] for row in c.execute("select label from timings")}
        stored = json.loads(c.execute("select config from runs").fetchone()[0])["shapes"]
    assert len(labels) == 2 and all("kv_heads=8" in label for label in labels)
    assert {s["seq"] for s in stored} == {512, 8192}
