"""Talking to models: the real ``openai`` client against the tests' own HTTP server on
loopback. Every call ends in a typed outcome and a row in the archive; nothing crashes, and the
API key goes nowhere but the Authorization header."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from archive import Archive
from evolve.config import validate
from evolve.llm.client import CallError, resolve_endpoint
from evolve.llm.runtime import LlmRuntime
from harness.sandbox import scrubbed_env

from .llm_fake import FakeLLM, Reply, Request, rate_limited

KEY = "sk-test-0123456789abcdefSECRET"
MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "say hello"}]


@pytest.fixture
def archive(tmp_path: Path) -> Any:
    a = Archive.open(str(tmp_path / "a.db"))
    yield a
    a.close()


def runtime(archive: Archive, fake: FakeLLM, **llm: Any) -> LlmRuntime:
    settings = {"models": ["model-a"], "base_url": fake.url, "timeout_s": 5, "max_retries": 2,
                "prices": {"model-a": {"input": 1.0, "output": 2.0}}, **llm}
    cfg = validate({"budget": {"candidates": 1}, "simulate": True, "llm": settings})
    run_id = archive.create_run("mha_fwd", cfg.model_dump(mode="json"), simulated=True)
    rt = LlmRuntime(cfg, archive, resolve_endpoint(cfg.llm, env={"OPENAI_API_KEY": KEY}))
    rt.start(run_id)
    return rt


def call(rt: LlmRuntime, messages: list[dict[str, str]] = MESSAGES, purpose: str = "test") -> Any:
    return asyncio.run(rt.client.complete("model-a", messages, purpose=purpose))


def test_an_answer_is_recorded_with_tokens_cost_and_latency(archive: Archive) -> None:
    with FakeLLM([Reply("hello there")]) as fake:
        rt = runtime(archive, fake, temperature=0.4)
        answer = call(rt)
    assert answer.ok and answer.text == "hello there"
    body = fake.requests[0].body
    assert body["model"] == "model-a" and body["temperature"] == 0.4 and body["max_completion_tokens"] == 16384
    [row] = archive.llm_calls(rt.run_id)
    assert (row.model, row.purpose, row.response, row.error, row.id) == ("model-a", "test", "hello there", None,
                                                                           answer.call_id)
    assert "=== system ===\nbe brief" in row.prompt and "=== user ===\nsay hello" in row.prompt
    assert row.prompt_tokens > 0 and row.completion_tokens > 0 and row.latency_s > 0
    assert row.cost_usd == pytest.approx((row.prompt_tokens * 1.0 + row.completion_tokens * 2.0) / 1e6)
    spend = archive.get_run(rt.run_id).spend
    assert spend.dollars == pytest.approx(row.cost_usd) and spend.tokens == row.prompt_tokens + row.completion_tokens


def test_rate_limits_are_retried_with_backoff_by_the_client(archive: Archive) -> None:
    with FakeLLM(rate_limited(2, Reply("ok after waiting"))) as fake:
        answer = call(runtime(archive, fake))
    assert answer.ok and answer.text == "ok after waiting"
    assert len(fake.requests) == 3
    assert [r.error for r in archive.llm_calls(1)] == [None]


def test_server_errors_that_persist_fail_the_call_after_the_retries(archive: Archive) -> None:
    with FakeLLM([Reply(status=500, headers={"retry-after-ms": "10"})] * 3) as fake:
        answer = call(runtime(archive, fake))
    assert answer.error is CallError.SERVER and "HTTP 500" in answer.detail
    assert len(fake.requests) == 3
    [row] = archive.llm_calls(1)
    assert row.error.startswith("server_error: server error (HTTP 500) after 2 retries") and row.response is None


def test_a_client_error_is_not_retried(archive: Archive) -> None:
    with FakeLLM([Reply(status=400)] * 3) as fake:
        answer = call(runtime(archive, fake))
    assert answer.error is CallError.HTTP and len(fake.requests) == 1


def test_an_answer_slower_than_the_timeout_fails_the_call(archive: Archive) -> None:
    with FakeLLM([Reply("too late", delay_s=3)] * 2) as fake:
        rt = runtime(archive, fake, timeout_s=0.4, max_retries=1)
        start = time.monotonic()
        answer = call(rt)
        elapsed = time.monotonic() - start
    assert answer.error is CallError.TIMEOUT and elapsed < 2.5
    assert len(fake.requests) == 2  # timeouts are retried like 5xx
    assert archive.llm_calls(rt.run_id)[0].error.startswith("timeout: no answer within 0.4 s")


@pytest.mark.parametrize(("reply", "error", "recorded"), [
    (Reply("def forward(q, k", finish_reason="length"), CallError.TRUNCATED, "def forward(q, k"),
    (Reply(""), CallError.EMPTY, ""),
    (Reply(None), CallError.EMPTY, None),
    (Reply(raw=b"<html>bad gateway</html>"), CallError.MALFORMED, "<html>bad gateway</html>"),
    (Reply(raw=b'{"choices": []}'), CallError.MALFORMED, None),
    (Reply(raw=b'{"choices": 5}'), CallError.MALFORMED, None),
], ids=["truncated", "empty", "null", "not-json", "no-choices", "wrong-type"])
def test_truncated_empty_and_malformed_answers_are_failed_calls(archive: Archive, reply: Reply, error: CallError,
                                                                recorded: str | None) -> None:
    with FakeLLM([reply]) as fake:
        rt = runtime(archive, fake)
        answer = call(rt)
    assert answer.error is error and not answer.ok
    [row] = archive.llm_calls(rt.run_id)
    assert row.error.startswith(error.value) and row.response == recorded


def test_no_usage_reported_is_estimated_not_counted_as_free(archive: Archive) -> None:
    with FakeLLM([Reply("x" * 400, usage=False)]) as fake:
        answer = call(runtime(archive, fake))
    assert answer.completion_tokens == 100 and answer.prompt_tokens > 0 and answer.cost_usd > 0


def test_requests_in_flight_are_limited_by_the_concurrency_setting(archive: Archive) -> None:
    lock, live, peak = threading.Lock(), [0], [0]

    def slow(req: Request) -> Reply:
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.3)
        with lock:
            live[0] -= 1
        return Reply("ok")

    with FakeLLM(slow) as fake:
        rt = runtime(archive, fake, concurrency=2)

        async def many() -> list[Any]:
            return await asyncio.gather(*(rt.client.complete("model-a", MESSAGES, purpose="t") for _ in range(6)))

        answers = asyncio.run(many())
    assert all(a.ok for a in answers) and peak[0] == 2


def test_the_budget_counts_what_earlier_sessions_of_the_run_spent(archive: Archive) -> None:
    with FakeLLM([Reply("ok")]) as fake:
        rt = runtime(archive, fake, budget={"dollars": 0.5})
        assert rt.budget_left()
        archive.add_llm_call(rt.run_id, model="model-a", purpose="llm_diff", prompt="p", response="r",
                             prompt_tokens=10, completion_tokens=10, cost_usd=0.6, latency_s=1, error=None)
        resumed = LlmRuntime(rt_cfg(archive, rt.run_id), archive, rt.client.endpoint)
        resumed.start(rt.run_id)
        assert not resumed.budget_left() and not resumed.budget_left()
    assert [e.message for e in archive.events(rt.run_id) if e.kind == "llm_budget"] == [
        "the LLM budget of $0.5 is spent ($0.6000): the LLM operators make no new proposals"]


def rt_cfg(archive: Archive, run_id: int) -> Any:
    return validate(archive.get_run(run_id).config)


def test_the_api_key_never_reaches_the_archive_logs_prompts_or_sandbox(archive: Archive, caplog: Any,
                                                                     monkeypatch: Any) -> None:
    """A hostile or broken endpoint echoes the Authorization header back, in an answer and in
    an error: the key is redacted before anything is recorded or logged."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    caplog.set_level(logging.DEBUG)
    for name in ("openai", "httpx", "httpx2", "evolve"):
        caplog.set_level(logging.DEBUG, logger=name)

    def echo(req: Request) -> Reply:
        auth = req.headers["authorization"]
        if "error" in req.user:
            return Reply(status=400, raw=f'{{"error": {{"message": "bad key {auth}"}}}}'.encode())
        return Reply(f"your header: {auth}\n```python\nKEY = '{auth.split()[-1]}'\n```")

    with FakeLLM(echo) as fake:
        rt = runtime(archive, fake)
        ok = call(rt)
        failed = call(rt, [{"role": "user", "content": "provoke an error"}])
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in fake.requests)  # it was sent, and only there
    assert "[redacted]" in (ok.text or "") and "[redacted]" in failed.detail
    stored = [str(c) for c in archive.llm_calls(rt.run_id)] + [str(archive.get_run(rt.run_id))]
    stored += [str(e) for e in archive.events(rt.run_id)]
    assert not any(KEY in s for s in stored)
    assert KEY not in caplog.text
    assert KEY not in str(scrubbed_env(dict(__import__("os").environ), Path("/tmp/x"), interpret=True))
    assert KEY not in repr(rt.client.endpoint)


def test_a_token_budget_is_spent_like_a_dollar_budget(archive: Archive) -> None:
    with FakeLLM([Reply("a" * 4000)] * 3) as fake:
        rt = runtime(archive, fake, budget={"tokens": 1000}, prices={})
        assert rt.budget_left()
        answer = call(rt)
        assert answer.ok and answer.cost_usd == 0 and answer.tokens > 1000
        assert not rt.budget_left()
        assert rt.ledger.exhausted() == f"the LLM budget of 1000 tokens is spent ({answer.tokens})"
    assert archive.get_run(rt.run_id).spend.tokens == answer.tokens
