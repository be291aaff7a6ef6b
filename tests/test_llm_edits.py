"""SEARCH/REPLACE blocks and fenced rewrites: what a model's answer does to a program."""

from __future__ import annotations

import pytest

from evolve.llm.edits import (
    EditError,
    apply_blocks,
    extract_code,
    extract_program,
    parse_blocks,
    summary,
)

from .llm_fake import diff

SOURCE = '''import triton


def forward(q, k, v, causal, sm_scale):
    cfg = {"BLOCK_M": 128, "BLOCK_N": 64}
    if causal:
        grid = (1, 2)
    else:
        grid = (3, 4)
    return launch(grid, cfg)
'''


def apply(answer: str) -> str:
    return apply_blocks(SOURCE, parse_blocks(answer))


def test_an_exact_block_replaces_its_text() -> None:
    out = apply(diff('    cfg = {"BLOCK_M": 128, "BLOCK_N": 64}\n', '    cfg = {"BLOCK_M": 128, "BLOCK_N": 128}\n'))
    assert '"BLOCK_N": 128' in out and out.count("\n") == SOURCE.count("\n")


def test_blocks_with_mangled_indentation_are_matched_and_reindented() -> None:
    # The model dropped the function's indentation and added trailing spaces and a tab.
    search = "if causal:   \n    grid = (1, 2)\nelse:\n\tgrid = (3, 4)\n"
    replace = "if causal:\n    grid = (5, 6)\nelse:\n    grid = (7, 8)\n"
    out = apply(diff(search, replace))
    assert "    if causal:\n        grid = (5, 6)\n    else:\n        grid = (7, 8)\n" in out
    compile(out, "candidate", "exec")


def test_blank_lines_and_inner_spacing_do_not_matter() -> None:
    search = "    if causal:\n\n        grid  =  (1, 2)\n"
    out = apply(diff(search, "    if causal:\n        grid = (9, 9)\n"))
    assert "grid = (9, 9)" in out and "grid = (1, 2)" not in out


def test_a_search_text_that_is_absent_is_an_error_showing_the_nearest_lines() -> None:
    with pytest.raises(EditError) as e:
        apply(diff('    cfg = {"BLOCK_M": 128, "BLOCK_N": 32}\n    x = 1\n', "    pass\n"))
    message = str(e.value)
    assert "block 1" in message and "not in the program" in message
    assert 'cfg = {"BLOCK_M": 128, "BLOCK_N": 64}' in message  # the nearest lines, to copy from


def test_blocks_apply_all_or_nothing_and_every_failing_block_is_named() -> None:
    answer = (diff("import triton\n", "import triton\nimport math\n")
              + diff("no such line\n", "x\n") + diff("nor this one\n", "y\n"))
    with pytest.raises(EditError) as e:
        apply(answer)
    assert "block 2" in str(e.value) and "block 3" in str(e.value) and "block 1" not in str(e.value)


def test_a_search_that_matches_several_places_is_an_error() -> None:
    source = SOURCE + "\n\ndef other(causal):\n    if causal:\n        grid = (1, 2)\n"
    with pytest.raises(EditError, match="2 times"):
        apply_blocks(source, parse_blocks(diff("    if causal:\n        grid = (1, 2)\n", "    pass\n")))
    with pytest.raises(EditError, match="matches 2 places"):
        apply_blocks(source, parse_blocks(diff("if causal:\n    grid = (1, 2)\n", "pass\n")))


def test_answers_without_blocks_or_with_broken_blocks_are_errors() -> None:
    with pytest.raises(EditError, match="no SEARCH/REPLACE block"):
        parse_blocks("I would make BLOCK_N larger.")
    with pytest.raises(EditError, match="no complete block"):
        parse_blocks("<<<<<<< SEARCH\nimport triton\n")
    with pytest.raises(EditError, match="incomplete"):
        parse_blocks(diff("import triton\n", "import triton\n") + "<<<<<<< SEARCH\nx\n")
    with pytest.raises(EditError, match="empty"):
        parse_blocks("<<<<<<< SEARCH\n=======\nx = 1\n>>>>>>> REPLACE\n")
    with pytest.raises(EditError, match="change nothing"):
        apply(diff("import triton\n", "import triton\n"))


def test_blocks_inside_code_fences_are_found() -> None:
    answer = ("Summary: bigger tiles\n```python\n"
              + diff('    cfg = {"BLOCK_M": 128, "BLOCK_N": 64}\n', '    cfg = {"BLOCK_M": 128, "BLOCK_N": 128}\n')
              + "```\n")
    assert '"BLOCK_N": 128' in apply(answer)
    assert summary(answer) == "bigger tiles"


def test_a_rewrite_is_the_longest_fenced_block_defining_forward() -> None:
    answer = "Summary: x\n```python\nimport math\n```\nThen:\n```python\n" + SOURCE + "```\n"
    assert extract_program(answer) == SOURCE
    with pytest.raises(EditError, match="unterminated"):
        extract_program("```python\n" + SOURCE)
    with pytest.raises(EditError, match="defines `forward"):
        extract_program("```python\nimport math\n```")
    with pytest.raises(EditError, match="no fenced"):
        extract_program("def forward(q, k, v, causal, sm_scale): ...")
    assert extract_code("ok\n```\nanswer = 42\n```") == "answer = 42\n"
