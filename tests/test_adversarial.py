"""The harness's adversarial suite: every cheat and failure in tests/adversarial/ gets the
verdict its header promises, and the checker keeps answering afterwards.

On the CPU the candidates run in Triton's interpreter through the untrusted simulation path,
with the static gate on (``static``) and off (``runtime``). On a GPU each runs with the gate
off against the trusted judge (``gpu``), several at a time as a search would run them; a cheat
that costs correctness nothing must come out at its kernel's honest speed (``gpu-fitness``).
"""

from __future__ import annotations

import re
import socket
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from harness.checker import Checker
from harness.verdict import Outcome, Verdict

from .conftest import SEED

CASES = Path(__file__).parent / "adversarial"
_EXPECT = re.compile(r'^# expect (static|runtime|gpu): (\w+) (\w+) "(.*)"$', re.MULTILINE)
_FITNESS = re.compile(r"^# expect gpu-fitness: (near-seed|below-seed)$", re.MULTILINE)
MARKER_TEXT = "host-secret-" + uuid.uuid4().hex


@dataclass(frozen=True)
class Expectation:
    outcome: str
    stage: str
    reason: str


def load(path: Path, port: int = 0, marker: Path | None = None) -> tuple[str, dict[str, Expectation]]:
    text = path.read_text().replace("{PORT}", str(port)).replace("{MARKER}", str(marker or "/nonexistent"))
    expect = {m[1]: Expectation(m[2], m[3], m[4]) for m in _EXPECT.finditer(text)}
    if text.startswith("# base: seed"):
        text = SEED.read_text() + "\n\n" + text
    return text, expect


def _runs(mode: str) -> list[Path]:
    return [p for p in sorted(CASES.glob("*.py")) if f"# expect {mode}:" in p.read_text()]


class _Listener:
    """A TCP server on loopback that records whatever reaches it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.sock.settimeout(0.2)
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.received.append(conn.recv(100))
            conn.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def marker() -> Iterator[Path]:
    """A file in the user's home directory that no candidate may read."""
    path = Path.home() / f".evolve-test-marker-{uuid.uuid4().hex[:8]}"
    path.write_text(MARKER_TEXT)
    yield path
    path.unlink()


def _assert_verdict(verdict: Verdict, expect: Expectation) -> None:
    assert (verdict.outcome.value, verdict.stage.value) == (expect.outcome, expect.stage), verdict.reason
    assert expect.reason in verdict.reason, verdict.reason


def _assert_nothing_escaped(verdict: Verdict, listener: _Listener) -> None:
    assert listener.received == []
    for text in (verdict.reason, verdict.log):
        assert "sk-supersecret" not in text and MARKER_TEXT not in text
    assert not Path("/tmp/evolve-adversarial-marker").exists()
    assert not Path("/root/evolve-adversarial-marker").exists()


def _check(checker: Checker, path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Verdict, dict]:
    """Check the candidate with a credential in the environment, a TCP listener on loopback and
    a marker file in the home directory; none may be reached, and nothing may land outside."""
    monkeypatch.setenv("EVOLVE_TEST_API_KEY", "sk-supersecret")
    listener = _Listener()
    try:
        source, expect = load(path, listener.port, marker)
        verdict = checker.check(source)
    finally:
        listener.close()
    _assert_nothing_escaped(verdict, listener)
    return verdict, expect


@pytest.mark.parametrize("path", _runs("static"), ids=lambda p: p.stem)
def test_adversarial_candidate_gets_its_verdict(path: Path, checker: Checker, marker: Path, monkeypatch) -> None:
    verdict, expect = _check(checker, path, marker, monkeypatch)
    _assert_verdict(verdict, expect["static"])


@pytest.mark.parametrize("path", _runs("runtime"), ids=lambda p: p.stem)
def test_run_time_defences_hold_without_the_static_gate(path: Path, checker: Checker, marker: Path,
                                                        monkeypatch) -> None:
    """The static gate is only a first filter: with it off, the sandbox and the run-time
    checks still turn each of these into the verdict its header names."""
    ungated = Checker(checker.task, replace(checker.opt, static_gate=False), checker.platform)
    verdict, expect = _check(ungated, path, marker, monkeypatch)
    _assert_verdict(verdict, expect["runtime"])


def test_checker_still_answers_after_the_suite(checker: Checker, seed_source: str) -> None:
    assert checker.check(seed_source).outcome is Outcome.PASSED


@pytest.fixture(scope="module")
def gpu_verdicts(gpu_checker: Checker, marker: Path) -> dict[str, Verdict]:
    """Every candidate with a GPU expectation, and the seed, checked with the gate off, six at a
    time on one GPU (correctness trials share it, timing takes it alone)."""
    ungated = Checker(gpu_checker.task, replace(gpu_checker.opt, static_gate=False, load_timeout_s=45,
                                                request_timeout_s=45), gpu_checker.platform)
    listener = _Listener()
    sources = {p.stem: load(p, listener.port, marker)[0] for p in _runs("gpu")}
    sources["seed"] = SEED.read_text()
    try:
        with ThreadPoolExecutor(6) as pool:
            verdicts = dict(zip(sources, pool.map(ungated.check, sources.values())))
    finally:
        listener.close()
    for v in verdicts.values():
        _assert_nothing_escaped(v, listener)
    return verdicts


@pytest.mark.gpu
@pytest.mark.parametrize("path", _runs("gpu"), ids=lambda p: p.stem)
def test_the_judge_gives_each_cheat_its_verdict_on_the_gpu(path: Path, gpu_verdicts: dict[str, Verdict]) -> None:
    verdict = gpu_verdicts[path.stem]
    text = path.read_text()
    _assert_verdict(verdict, load(path)[1]["gpu"])
    fitness = _FITNESS.search(text)
    if fitness:
        seed = gpu_verdicts["seed"].fitness
        assert seed is not None and verdict.fitness is not None
        if fitness[1] == "near-seed":
            assert abs(verdict.fitness / seed - 1) < 0.05, (verdict.fitness, seed)
        else:
            assert verdict.fitness < 0.95 * seed, (verdict.fitness, seed)


@pytest.mark.gpu
def test_seed_passes_every_stage_on_the_gpu_with_timings(gpu_verdicts: dict[str, Verdict]) -> None:
    verdict = gpu_verdicts["seed"]
    assert verdict.passed, verdict.reason
    assert len(verdict.timings) == 12
    assert all(t.tflops > 0 and t.baseline_tflops > 0 and len(t.samples) >= 25 for t in verdict.timings)
    assert all(t.baseline_backend.startswith("sdpa default") for t in verdict.timings)
