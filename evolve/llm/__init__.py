"""LLM variation operators: models propose edits to kernels (SEARCH/REPLACE diffs, full
rewrites, crossovers of two parents) through any OpenAI-compatible endpoint.

Kept light on import (``evolve.config`` imports ``evolve.llm.settings``): the client, the
prompts and the operators' machinery load only when a run uses them.

    settings   the ``[llm]`` section of the run configuration
    client     one Chat Completions call, recorded, typed outcome; endpoint from env/config
    ledger     the price table and the budget in dollars and tokens
    edits      SEARCH/REPLACE blocks, fenced rewrites
    prompts    Jinja2 templates under ``prompts/``, the views of programs they are given
    precheck   novelty, static gate, compile and smoke on the CPU before any GPU time
    bandits    UCB for strategies, cost-aware UCB for models
    strategies the evolving strategy hints (meta-prompts)
    scratchpad insights the run learned, summarized by a model
    runtime    wires it together for ``evolve run``
    operators  llm_diff, llm_rewrite, llm_crossover
"""
