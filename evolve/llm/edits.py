"""What a model's answer does to a program: SEARCH/REPLACE blocks (a diff), or a complete new
file in a fenced python block (a rewrite, or the child of a crossover).

Blocks apply all or nothing. Each SEARCH text must match one place: exactly, else line by line
with whitespace ignored (the replacement is then re-indented to where it lands). A block that
matches nowhere, or in several places, is an ``EditError`` whose message goes back to the
model; nothing is ever skipped silently.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

_BLOCK = re.compile(r"^[ \t]*<{5,9} ?SEARCH[ \t]*\n(.*?)^[ \t]*={5,9}[ \t]*\n(.*?)^[ \t]*>{5,9} ?REPLACE[ \t]*$",
                    re.DOTALL | re.MULTILINE)
_MARKERS = re.compile(r"^[ \t]*(<{5,9} ?SEARCH|>{5,9} ?REPLACE)[ \t]*$", re.MULTILINE)
_FENCE = re.compile(r"^```[ \t]*([\w+-]*)[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
_SUMMARY = re.compile(r"^\W*summary\W*:?\s*(.+)$", re.IGNORECASE | re.MULTILINE)


class EditError(Exception):
    """The answer cannot be applied; the message is written for the model."""


@dataclass(frozen=True)
class Block:
    search: str
    replace: str


def parse_blocks(answer: str) -> list[Block]:
    blocks = [Block(m[1], m[2]) for m in _BLOCK.finditer(answer)]
    markers = len(_MARKERS.findall(answer))
    if not blocks:
        if markers:
            raise EditError("the answer has SEARCH/REPLACE markers but no complete block: each block is the line "
                            "`<<<<<<< SEARCH`, the text to find, the line `=======`, the new text, and the line "
                            "`>>>>>>> REPLACE`")
        raise EditError("the answer has no SEARCH/REPLACE block")
    if markers != 2 * len(blocks):
        raise EditError(f"the answer has {len(blocks)} complete SEARCH/REPLACE block(s) but {markers} markers: "
                        "a block is incomplete (missing `=======` or `>>>>>>> REPLACE`?)")
    for i, b in enumerate(blocks, 1):
        if not b.search.strip():
            raise EditError(f"block {i}: the SEARCH part is empty; copy the lines to replace from the program")
    return blocks


def apply_blocks(source: str, blocks: list[Block]) -> str:
    """``source`` with every block applied in order, or an ``EditError`` naming every block
    that does not match (with the nearest text of the program, to copy from)."""
    text = source
    problems = []
    for i, block in enumerate(blocks, 1):
        try:
            text = _apply(text, block)
        except EditError as e:
            problems.append(f"block {i}: {e}")
    if problems:
        raise EditError("the edit was not applied (blocks apply all or nothing):\n" + "\n".join(problems))
    if text == source:
        raise EditError("the blocks change nothing: each REPLACE equals its SEARCH")
    return text


def _apply(text: str, block: Block) -> str:
    search, replace = block.search, block.replace
    count = text.count(search)
    if count == 1:
        return text.replace(search, replace, 1)
    if count > 1:
        at = _match_lines(text, search)
        raise EditError(f"the SEARCH text occurs {count} times (at lines {', '.join(map(str, at))}); include "
                        "more surrounding lines so that it matches one place only")
    lines = text.splitlines(keepends=True)
    spans = _loose_matches(lines, search)
    if len(spans) > 1:
        raise EditError(f"the SEARCH text matches {len(spans)} places (at lines "
                        f"{', '.join(str(a + 1) for a, _ in spans)}) once whitespace is ignored; include more lines")
    if not spans:
        raise EditError("the SEARCH text is not in the program" + _nearest(lines, search))
    a, b = spans[0]
    new = _reindent(replace, delta=_indent(lines[a]) - _indent(_first_nonblank(search)))
    if new and not new.endswith("\n") and b < len(lines):
        new += "\n"
    return "".join(lines[:a]) + new + "".join(lines[b:])


def _norm(line: str) -> str:
    return " ".join(line.split())


def _loose_matches(lines: list[str], search: str) -> list[tuple[int, int]]:
    """Spans [a, b) of ``lines`` whose non-blank lines equal the SEARCH's non-blank lines,
    whitespace ignored."""
    want = [_norm(s) for s in search.splitlines() if s.strip()]
    have = [(i, _norm(s)) for i, s in enumerate(lines) if s.strip()]
    spans = []
    for k in range(len(have) - len(want) + 1):
        if all(have[k + j][1] == w for j, w in enumerate(want)):
            spans.append((have[k][0], have[k + len(want) - 1][0] + 1))
    return spans


def _indent(line: str) -> int:
    expanded = line.expandtabs(4)
    return len(expanded) - len(expanded.lstrip(" "))


def _first_nonblank(text: str) -> str:
    return next((s for s in text.splitlines() if s.strip()), "")


def _reindent(text: str, delta: int) -> str:
    if delta == 0:
        return text
    out = []
    for line in text.splitlines(keepends=True):
        if not line.strip():
            out.append(line)
            continue
        body = line.expandtabs(4)
        if delta > 0:
            out.append(" " * delta + body)
        else:
            out.append(body[min(-delta, _indent(body)):])
    return "".join(out)


def _match_lines(text: str, search: str) -> list[int]:
    out, start = [], 0
    while (i := text.find(search, start)) >= 0:
        out.append(text.count("\n", 0, i) + 1)
        start = i + 1
    return out


def _nearest(lines: list[str], search: str) -> str:
    """The window of the program most like the SEARCH text, to show the model what is there."""
    want = [s for s in search.splitlines() if s.strip()]
    if not want or not lines:
        return ""
    size = len(want)
    best, best_at = 0.0, 0
    target = "\n".join(_norm(s) for s in want)
    for a in range(max(1, len(lines) - size + 1)):
        window = "\n".join(_norm(s) for s in lines[a:a + size])
        ratio = difflib.SequenceMatcher(None, window, target, autojunk=False).ratio()
        if ratio > best:
            best, best_at = ratio, a
    if best < 0.5:
        return "; nothing in it resembles it: copy the lines to replace verbatim from the program"
    snippet = "".join(lines[best_at:best_at + size]).rstrip("\n")
    return (f"; the most similar lines (from line {best_at + 1}) are:\n```\n{snippet}\n```\n"
            "copy the SEARCH text verbatim from the program")


def extract_code(answer: str) -> str:
    """The first fenced code block of an answer."""
    m = _FENCE.search(answer)
    if m is None:
        raise EditError("the answer has no fenced ``` code block")
    return m[2]


def extract_program(answer: str) -> str:
    """The complete program of a rewrite: the longest fenced python block defining ``forward``."""
    blocks = [m[2] for m in _FENCE.finditer(answer) if m[1].lower() in ("", "python", "py", "python3")]
    programs = [b for b in blocks if re.search(r"^def forward\s*\(", b, re.MULTILINE)]
    if programs:
        return max(programs, key=len)
    if answer.count("```") % 2 == 1:
        raise EditError("the answer has an unterminated ``` block: the program must end with a closing ```")
    if blocks:
        raise EditError("no fenced python block defines `forward(q, k, v, causal, sm_scale)` at top level: "
                        "reply with the complete program, not a fragment")
    raise EditError("the answer has no fenced ```python block with the complete program")


def summary(answer: str, limit: int = 300) -> str:
    """The model's one-line account of its change: a ``Summary:`` line, else its first line of prose."""
    m = _SUMMARY.search(answer)
    if m:
        return m[1].strip()[:limit]
    prose = _FENCE.sub("", _BLOCK.sub("", answer))
    return next((s.strip() for s in prose.splitlines() if s.strip()), "")[:limit]
