"""A kernel's tunables, found in its source and rewritten in place.

Tunables are integer constants named like launch parameters (BLOCK_M, BLOCK_N, num_warps,
num_stages, ...) wherever a kernel author puts them: dict literals (``TUNABLES = {128:
{"BLOCK_M": 128, ...}}``), keyword arguments (``num_warps=8``) or module-level assignments
(``BLOCK_M = 128``). Rewrites replace the digits only, so comments and layout survive.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

# Legal values per tunable, in order: mutation moves along these ladders.
LADDERS: dict[str, tuple[int, ...]] = {
    "BLOCK_M": (16, 32, 64, 128, 256),
    "BLOCK_N": (16, 32, 64, 128, 256),
    "num_warps": (2, 4, 8, 16),
    "num_stages": (1, 2, 3, 4, 5),
}


@dataclass(frozen=True)
class Tunable:
    name: str
    value: int
    entry: str  # which group it belongs to: the dict key it sits under, or "" at top level
    line: int
    col: int
    end_col: int


def find(source: str) -> list[Tunable]:
    """Every tunable constant in ``source`` (which must parse), in source order."""
    tree = ast.parse(source)
    found: list[Tunable] = []

    def add(name: str, node: ast.AST, entry: str) -> None:
        if (name in LADDERS and isinstance(node, ast.Constant) and type(node.value) is int
                and node.lineno == node.end_lineno):
            found.append(Tunable(name, node.value, entry, node.lineno, node.col_offset, node.end_col_offset or 0))

    def visit_dict(d: ast.Dict, entry: str) -> None:
        for k, v in zip(d.keys, d.values):
            if isinstance(k, ast.Constant) and isinstance(v, ast.Dict):
                visit_dict(v, str(k.value))
            elif isinstance(k, ast.Constant) and isinstance(k.value, str):
                add(k.value, v, entry)

    nested = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict) and id(node) not in nested:
            for sub in ast.walk(node):
                if sub is not node and isinstance(sub, ast.Dict):
                    nested.add(id(sub))
            visit_dict(node, "")
        elif isinstance(node, ast.keyword) and node.arg:
            add(node.arg, node.value, "")
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            add(node.targets[0].id, node.value, "")
    return sorted(found, key=lambda t: (t.line, t.col))


def entries(tunables: list[Tunable]) -> dict[str, dict[str, Tunable]]:
    """Tunables grouped by entry; within an entry the first occurrence of a name wins."""
    out: dict[str, dict[str, Tunable]] = {}
    for t in tunables:
        out.setdefault(t.entry, {}).setdefault(t.name, t)
    return out


def rewrite(source: str, changes: dict[Tunable, int]) -> str:
    lines = source.splitlines(keepends=True)
    for t, value in sorted(changes.items(), key=lambda kv: (kv[0].line, kv[0].col), reverse=True):
        line = lines[t.line - 1]
        # ast offsets are in UTF-8 bytes; tunables sit in ASCII code, but be exact anyway.
        raw = line.encode()
        lines[t.line - 1] = (raw[: t.col] + str(value).encode() + raw[t.end_col:]).decode()
    return "".join(lines)
