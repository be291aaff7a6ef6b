"""The LLM operators inside ``evolve run --simulate`` end to end (real Ray, real archive, the
cheap checks and the evaluation in Triton's CPU interpreter), driven by the tests' own model
server on loopback; and ``evolve llm check``."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from archive import Archive
from evolve import tunables

from .llm_fake import FakeLLM, Reply, Request, diff, rewrite

KEY = "sk-e2e-0123456789SECRETSECRET"
GOOD, BAD = "    acc = acc / l_i[:, None]\n", "    acc = acc / l_j[:, None]\n"
_PROGRAM = re.compile(r"^## (?:The current program|Parent A): .*?^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


class KernelModel:
    """A fake model that knows just enough: it moves one tunable of the program it is shown; its
    first two answers also break the kernel (a name error), which it fixes when told; every fifth
    request is rate limited."""

    def __init__(self) -> None:
        self.n = 0
        self.lock = threading.Lock()

    def __call__(self, req: Request) -> Reply:
        with self.lock:
            n = self.n
            self.n += 1
        if n % 5 == 4:
            return Reply(status=429, content=None, headers={"retry-after-ms": "50"})
        user = req.user
        if "You keep the notebook" in user:
            return Reply("## Worked\n- smaller key tiles at D=64\n## Failed\n- a name error, fixed\n## Untried\n- TMA")
        if "strategy hint" in user:
            return Reply(f"Name: tile-sweep-{n}\nTry the neighbouring BLOCK_N values of the best kernel, one by one.")
        if "Repair round" in user and "l_j" in user:
            if "SEARCH/REPLACE" in req.system:
                return Reply(diff(BAD, GOOD, "fix the name error"))
            broken = next(m["content"] for m in reversed(req.messages) if m["role"] == "assistant")
            return Reply(broken.replace(BAD, GOOD))
        source = _PROGRAM.search(req.messages[1]["content"])[1]
        # One parse at a time: the server answers in threads, and CPython 3.11's ast.parse is not
        # thread-safe ("SystemError: AST constructor recursion depth mismatch").
        with self.lock:
            line, changed = self.change(source, random.Random(n))
        broken = n < 2 and GOOD in changed
        if "SEARCH/REPLACE" in req.system:
            extra = diff(GOOD, BAD) if broken else ""
            return Reply(diff(line, changed_line(line, source, changed), f"move a tunable (answer {n})") + extra)
        program = source.replace(line, changed_line(line, source, changed)) + "\n"
        return Reply(rewrite(program.replace(GOOD, BAD) if broken else program, f"rewrite {n}"))

    @staticmethod
    def change(source: str, rng: random.Random) -> tuple[str, str]:
        t = rng.choice(tunables.find(source))
        value = rng.choice([v for v in tunables.LADDERS[t.name] if v != t.value and (t.name != "BLOCK_M" or v >= 16)])
        line = source.splitlines(keepends=True)[t.line - 1]
        return line, tunables.rewrite(source, {t: value})


def changed_line(line: str, source: str, changed: str) -> str:
    i = source.splitlines(keepends=True).index(line)
    return changed.splitlines(keepends=True)[i]


def evolve(*args: str, env: dict[str, str], timeout: float = 540) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evolve", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env}, check=False)


@pytest.mark.slow
def test_a_simulated_run_driven_by_llm_operators_end_to_end(tmp_path: Path) -> None:
    db, log = tmp_path / "a.db", tmp_path / "run.log"
    (tmp_path / "run.toml").write_text("""
[operators]
llm_diff = 0.5
llm_rewrite = 0.2
llm_crossover = 0.1
mutate = 0.2
[llm]
models = ["fake-small=2", "fake-large"]
timeout_s = 60
max_retries = 2
[llm.prices.fake-small]
input = 10.0
output = 30.0
[llm.prices.fake-large]
input = 20.0
output = 60.0
[llm.budget]
dollars = 1.3
[llm.scratchpad]
interval = 2
[llm.strategies]
mutate_every = 1
[evaluation]
workers = 1
""")
    # Prices: a proposal's prompt is about 9k tokens (the seed's source), so $1.3 buys about ten
    # calls; the first credit (which makes a strategy hint due) arrives after about six of them.
    with FakeLLM(KernelModel()) as fake:
        r = evolve("run", "--simulate", "--budget", "10", "--db", str(db), "--quiet", "--random-seed", "4",
                   "--config", str(tmp_path / "run.toml"), "--log-file", str(log),
                   env={"OPENAI_BASE_URL": fake.url, "OPENAI_API_KEY": KEY})
    assert r.returncode == 0, r.stderr[-3000:]
    assert "LLM operators llm_diff, llm_rewrite, llm_crossover with fake-small, fake-large" in r.stderr
    assert "run 1 finished" in r.stderr
    with Archive.open(str(db), create=False) as a:
        calls = a.llm_calls(1)
        run = a.get_run(1)
        programs = [a.get_program(pid) for pid in a.program_ids(1)]
        events = a.events(1)
        assert a.stats(1).evaluations == 10
    purposes = Counter(c.purpose for c in calls)
    assert purposes["repair"] >= 1 and purposes["scratchpad"] >= 1 and purposes["meta_prompt"] >= 1
    assert sum(purposes[k] for k in ("llm_diff", "llm_rewrite", "llm_crossover")) >= 3
    assert all(c.error is None and c.cost_usd > 0 and c.prompt_tokens > 0 for c in calls)
    assert {c.model for c in calls} <= {"fake-small", "fake-large"}
    # Costs: every call priced, the run's spend is their sum, and the dollar budget stopped new proposals.
    spent = sum(c.cost_usd for c in calls)
    assert run.spend.dollars == pytest.approx(spent) and spent >= 1.3
    assert [e.kind for e in events].count("llm_budget") == 1
    assert spent < 1.3 + 4 * max(c.cost_usd for c in calls)  # at most the calls in flight overshoot
    # Candidates: made by the LLM operators, some repaired, all judged; their calls are linked in meta.
    by_llm = [p for p in programs if p.operator.startswith("llm_")]
    assert by_llm and all(p.latest_evaluation is not None for p in programs)
    repaired = [p for p in by_llm if p.meta["repairs"] >= 1]
    assert repaired and any(p.latest_evaluation.passed for p in repaired)
    # The change, not the fix (whether the first two answers are diffs or rewrites depends on the
    # order the requests arrive in).
    assert all(p.meta["summary"].startswith(("move a tunable", "rewrite")) for p in repaired)
    ids = {c.id for c in calls}
    assert all(set(p.meta["llm_calls"]) <= ids for p in by_llm)
    assert any(p.operator == "mutate" for p in programs)  # the LLM-free operator goes on after the budget
    credits = [e.data for e in events if e.kind == "llm_credit"]
    assert {d["program_id"] for d in credits if d["program_id"]} == {p.id for p in by_llm}
    assert any(e.kind == "llm_scratchpad" for e in events) and any(e.kind == "llm_strategy" for e in events)
    # The key went to the server only: not into the archive file, the log or the output.
    assert KEY.encode() not in db.read_bytes()
    assert KEY not in log.read_text() and KEY not in r.stderr + r.stdout
    assert all(req.headers["authorization"] == f"Bearer {KEY}" for req in fake.requests)


def test_evolve_llm_check_reports_each_model(tmp_path: Path) -> None:
    def script(req: Request) -> Reply:
        if req.model == "good":
            return Reply("```python\nanswer = 42\n```")
        return Reply("forty-two")

    with FakeLLM(script) as fake:
        r = evolve("llm", "check", "--model", "good", "--model", "chatty=0.5", "--json", "--db", str(tmp_path / "a.db"),
                   env={"OPENAI_BASE_URL": fake.url, "OPENAI_API_KEY": KEY})
    assert r.returncode == 1, r.stderr
    rows = {row["model"]: row for row in map(json.loads, r.stdout.splitlines())}
    assert rows["good"]["ok"] and rows["good"]["parsed"] and rows["good"]["latency_s"] > 0
    assert rows["chatty"]["ok"] and not rows["chatty"]["parsed"] and "no fenced" in rows["chatty"]["error"]
    with Archive.open(str(tmp_path / "a.db"), create=False) as a:
        assert sorted(c.model for c in a.llm_calls(None)) == ["chatty", "good"]


def test_evolve_llm_check_says_clearly_when_nothing_is_configured(tmp_path: Path) -> None:
    env = {k: "" for k in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}
    r = evolve("llm", "check", "--db", str(tmp_path / "a.db"), env=env)
    assert r.returncode == 2 and "no LLM is configured: no model given" in r.stderr
    r = evolve("llm", "check", "--model", "gpt-x", "--db", str(tmp_path / "a.db"), env=env)
    assert r.returncode == 2 and "neither $OPENAI_API_KEY nor $OPENAI_BASE_URL is set" in r.stderr
