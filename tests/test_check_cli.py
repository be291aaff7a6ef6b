"""`evolve check` as a user meets it: exit codes, the JSON line, sentences for mistakes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import SEED


def evolve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evolve", *args], capture_output=True, text=True, timeout=300)


def test_seed_passes_with_exit_0_and_a_json_verdict_on_the_last_line() -> None:
    r = evolve("check", str(SEED), "--json")
    assert r.returncode == 0, r.stderr
    verdict = json.loads(r.stdout.strip().splitlines()[-1])
    assert verdict["passed"] is True and verdict["stage"] == "done" and verdict["reason"] == ""
    assert verdict["mode"] == "interpreter" and verdict["timings"] == []
    assert len(verdict["shape_results"]) >= 10
    assert all(r["rel_err"] is not None and r["max_abs_err"] is not None for r in verdict["shape_results"])
    assert "timing skipped" in " ".join(r.stderr.split())  # rich wraps lines
    assert {"pid-namespace", "net-namespace", "no-capabilities"} <= set(verdict["sandbox"])
    # where the time went: the start and every stage, which together fit in the check's duration
    phases = verdict["phases"]
    stages = [f"stage {s}" for s in ("compile", "sweep", "stability", "determinism", "anticheat")]
    assert set(stages) | {"start", "sandbox"} <= set(phases), phases
    assert 0 < sum(phases[k] for k in ["start", *stages]) <= verdict["duration_s"]


def test_the_gluon_seed_says_it_needs_hopper_where_there_is_none() -> None:
    r = evolve("check", str(SEED.parent / "mha_fwd_gluon.py"), "--json")
    assert r.returncode == 1
    verdict = json.loads(r.stdout.strip().splitlines()[-1])
    assert verdict["stage"] == "compile" and "Hopper GPU (sm_90) only" in verdict["reason"]


def test_rejected_candidate_exits_1_with_its_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(SEED.read_text().replace("acc = acc / l_i[:, None]", "acc = acc / (l_i[:, None] + 1.0)"))
    r = evolve("check", str(bad), "--json")
    assert r.returncode == 1
    verdict = json.loads(r.stdout.strip().splitlines()[-1])
    assert verdict["passed"] is False and verdict["stage"] == "compile" and "relative error" in verdict["reason"]


def test_user_mistakes_are_sentences_with_exit_2(tmp_path: Path) -> None:
    for args, message in [
        (("check", str(tmp_path / "nope.py")), "cannot read"),
        (("check", str(SEED), "--task", "matmul"), "unknown task 'matmul'"),
        (("run", "--simulate"), "needs a budget"),
        (("run", "--simulate", "--budget", "soon"), "cannot read budget"),
        (("run", "--resume", "3", "--db", str(tmp_path / "none.db")), "no archive"),
        (("status", "--db", str(tmp_path / "none.db")), "no archive"),
    ]:
        r = evolve(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


def test_bad_config_file_names_the_field(tmp_path: Path) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text("[budget]\ncandidates = 5\n[islands]\ncount = -1\n")
    r = evolve("run", "--simulate", "--config", str(cfg), "--db", str(tmp_path / "a.db"))
    assert r.returncode == 2 and "islands.count" in r.stderr and "Traceback" not in r.stderr
