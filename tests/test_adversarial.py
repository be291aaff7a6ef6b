"""The harness's adversarial suite: every cheat and failure in tests/adversarial/ gets the
verdict its header promises, and the checker keeps answering afterwards."""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from harness.checker import Checker
from harness.verdict import Outcome

from .conftest import SEED

CASES = Path(__file__).parent / "adversarial"
_EXPECT = re.compile(r'^# expect (static|runtime|gpu): (\w+) (\w+) "(.*)"$', re.MULTILINE)


@dataclass(frozen=True)
class Expectation:
    outcome: str
    stage: str
    reason: str


def load(path: Path, port: int = 0) -> tuple[str, dict[str, Expectation]]:
    text = path.read_text().replace("{PORT}", str(port))
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


def _assert_verdict(verdict, expect: Expectation) -> None:  # type: ignore[no-untyped-def]
    assert (verdict.outcome.value, verdict.stage.value) == (expect.outcome, expect.stage), verdict.reason
    assert expect.reason in verdict.reason, verdict.reason


def _check_with_secrets_and_a_listener(checker: Checker, path: Path, mode: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Check the candidate with a credential in the environment and a TCP listener on loopback;
    neither may be reached, and nothing may land outside the sandbox."""
    monkeypatch.setenv("EVOLVE_TEST_API_KEY", "sk-supersecret")
    listener = _Listener()
    try:
        source, expect = load(path, listener.port)
        verdict = checker.check(source)
    finally:
        listener.close()
    _assert_verdict(verdict, expect[mode])
    assert listener.received == []
    assert "sk-supersecret" not in verdict.log
    assert not Path("/tmp/evolve-adversarial-marker").exists()
    assert not Path("/root/evolve-adversarial-marker").exists()


@pytest.mark.parametrize("path", _runs("static"), ids=lambda p: p.stem)
def test_adversarial_candidate_gets_its_verdict(path: Path, checker: Checker, monkeypatch) -> None:
    _check_with_secrets_and_a_listener(checker, path, "static", monkeypatch)


@pytest.mark.parametrize("path", _runs("runtime"), ids=lambda p: p.stem)
def test_run_time_defences_hold_without_the_static_gate(path: Path, checker: Checker, monkeypatch) -> None:
    """The static gate is only a first filter: with it off, the sandbox and the run-time
    checks still turn each of these into a rejection."""
    ungated = Checker(checker.task, replace(checker.opt, static_gate=False), checker.platform)
    _check_with_secrets_and_a_listener(ungated, path, "runtime", monkeypatch)


def test_checker_still_answers_after_the_suite(checker: Checker, seed_source: str) -> None:
    assert checker.check(seed_source).outcome is Outcome.PASSED


@pytest.mark.gpu
@pytest.mark.parametrize("path", _runs("gpu"), ids=lambda p: p.stem)
def test_gpu_only_cheat_is_caught_when_timed(path: Path, gpu_checker: Checker) -> None:
    source, expect = load(path)
    _assert_verdict(gpu_checker.check(source), expect["gpu"])


@pytest.mark.gpu
def test_seed_passes_every_stage_on_the_gpu_with_timings(gpu_checker: Checker, seed_source: str) -> None:
    verdict = gpu_checker.check(seed_source)
    assert verdict.passed, verdict.reason
    assert len(verdict.timings) == len(gpu_checker.task.benchmark_cases())
    assert all(t.tflops > 0 and t.baseline_tflops > 0 for t in verdict.timings)
    assert "no-capabilities" in verdict.sandbox
