"""The ``[llm]`` configuration, where the endpoint comes from, and what ``evolve run`` does
with and without a model configured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from archive import Archive
from evolve.config import load, validate
from evolve.errors import UserError
from evolve.llm.client import Endpoint, NotConfigured, resolve_endpoint
from evolve.llm.runtime import build_operators
from evolve.llm.settings import LlmSettings, parse_model_option

BUDGET = {"budget": {"candidates": 5}}


def test_model_options_are_names_with_optional_weights() -> None:
    assert parse_model_option("gpt-5-mini=2") == {"name": "gpt-5-mini", "weight": 2.0}
    assert parse_model_option("Qwen/Qwen3-Coder:30b") == {"name": "Qwen/Qwen3-Coder:30b"}
    assert parse_model_option("odd=name") == {"name": "odd=name"}
    s = LlmSettings(models=["a=3", {"name": "b"}])
    assert [(m.name, m.weight) for m in s.models] == [("a", 3.0), ("b", 1.0)] and s.helper() == "a"


@pytest.mark.parametrize(("llm", "message"), [
    ({"modles": ["a"]}, "llm.modles: Extra inputs are not permitted"),
    ({"models": ["a=0"]}, "greater than 0"),
    ({"models": ["a", "a=2"]}, "a model is listed twice: a"),
    ({"models": ["a", "b"], "prices": {"a": {"input": 1, "output": 2}}, "budget": {"dollars": 3}},
     "needs a price for every model; none for b"),
    ({"knowledge": ["attention", "volta"]}, "no knowledge file volta"),
    ({"base_url": "https://user:pw@llm.example/v1"}, "not in the URL"),
    ({"repair": {"rounds": -1}}, "llm.repair.rounds"),
    ({"budget": {"dollars": 0}}, "llm.budget.dollars"),
], ids=["typo", "weight", "twice", "unpriced", "knowledge", "credentials", "rounds", "zero-budget"])
def test_the_llm_section_is_validated(llm: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError) as e:
        validate({**BUDGET, "llm": llm})
    assert message in str(e.value)


def test_models_on_the_command_line_replace_those_of_the_config_file(tmp_path: Path) -> None:
    f = tmp_path / "run.toml"
    f.write_text('[budget]\ncandidates = 3\n[llm]\nmodels = ["from-file"]\n[llm.prices.cli]\ninput = 1\noutput = 2\n')
    assert [m.name for m in load(f, {}).llm.models] == ["from-file"]
    cfg = load(f, {"llm": {"models": ["cli=2"]}})
    assert [(m.name, m.weight) for m in cfg.llm.models] == [("cli", 2.0)] and "cli" in cfg.llm.prices


def test_the_endpoint_comes_from_config_then_environment_and_the_key_from_the_environment() -> None:
    s = LlmSettings(models=["m"])
    assert isinstance(resolve_endpoint(LlmSettings(), {}), NotConfigured)
    assert "neither $OPENAI_API_KEY" in resolve_endpoint(s, {}).reason  # type: ignore[union-attr]
    local = resolve_endpoint(s, {"OPENAI_BASE_URL": "http://localhost:8000/v1"})
    assert isinstance(local, Endpoint) and local.key_from == "" and "no API key" in local.describe()
    hosted = resolve_endpoint(s, {"OPENAI_API_KEY": "sk-1234567890"})
    assert isinstance(hosted, Endpoint) and hosted.base_url is None and hosted.api_key == "sk-1234567890"
    named = LlmSettings(models=["m"], base_url="http://vllm:8000/v1", api_key_env="VLLM_KEY")
    e = resolve_endpoint(named, {"OPENAI_BASE_URL": "http://ignored/v1", "VLLM_KEY": "k-1234567890"})
    assert isinstance(e, Endpoint) and (e.base_url, e.key_from) == ("http://vllm:8000/v1", "VLLM_KEY")
    assert "k-1234567890" not in repr(e) and "k-1234567890" not in e.describe()


def test_without_an_llm_the_run_says_so_once_and_uses_the_llm_free_operators() -> None:
    said: list[str] = []
    cfg = validate(BUDGET)
    assert cfg.operators["llm_diff"] > 0  # the default mix includes the LLM operators
    ops, cfg2, runtime = build_operators(cfg, None, said.append, env={})  # type: ignore[arg-type]
    assert set(ops) == {"mutate", "crossover", "merge", "reset"} and runtime is None and cfg2 is cfg
    assert said == [("No LLM configured (no model given (--model NAME, or models in the [llm] section of "
                     "--config)): using the LLM-free operators mutate 0.2, crossover 0.1, merge 0.1, reset 0.1.")]
    only_llm = validate({**BUDGET, "operators": {"llm_diff": 1.0}, "llm": {"models": ["m"]}})
    said.clear()
    ops, cfg3, _ = build_operators(only_llm, None, said.append, env={})  # type: ignore[arg-type]
    assert set(ops) == {"mutate", "crossover", "merge", "reset"}
    assert cfg3.operators == {"mutate": 0.5, "crossover": 0.15, "merge": 0.15, "reset": 0.2}
    assert len(said) == 1 and "neither $OPENAI_API_KEY nor $OPENAI_BASE_URL" in said[0]


def test_with_an_llm_the_llm_operators_are_built_around_one_runtime(tmp_path: Path) -> None:
    said: list[str] = []
    cfg = validate({**BUDGET, "llm": {"models": ["m"]}})
    with Archive.open(str(tmp_path / "a.db")) as archive:
        ops, _, runtime = build_operators(cfg, archive, said.append, env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    assert set(ops) == set(cfg.operators) and runtime is not None
    assert all(ops[n].rt is runtime for n in ("llm_diff", "llm_rewrite", "llm_crossover"))  # type: ignore[attr-defined]
    assert said == ["LLM operators llm_diff, llm_rewrite, llm_crossover with m at http://127.0.0.1:9/v1, no API key."]


def test_the_readme_configuration_of_models_is_valid(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    [block] = [b for b in readme.split("```toml\n")[1:] if b.startswith("[llm]")]
    f = tmp_path / "run.toml"
    f.write_text("[budget]\ncandidates = 1\n" + block.split("```")[0])
    cfg = load(f, {})
    assert cfg.llm.budget.dollars == 20 and [m.weight for m in cfg.llm.models] == [2.0, 1.0]
