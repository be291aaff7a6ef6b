"""A kernel's tunables, found in its source and rewritten in place.

Tunables are integer constants named like launch parameters (BLOCK_M, BLOCK_N, num_warps,
num_stages, ...) or like the seed's constexpr switches (WARP_SPEC, TMA, ...) wherever a kernel
author puts them: dict literals (``TUNABLES = {(128, "causal", 4096): {"BLOCK_M": 128, ...}}``),
keyword arguments (``num_warps=8``) or module-level assignments (``BLOCK_M = 128``). A dict
entry is named by its key: ``128`` -> "128", ``(128, "causal", 4096)`` -> "128,causal,4096".
Rewrites replace the digits only, so comments and layout survive.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

# Legal values per tunable, in order: mutation moves along these ladders. A value is legal on its
# own; whether a whole entry can compile is evolve/feasibility.py's question.
LADDERS: dict[str, tuple[int, ...]] = {
    "BLOCK_M": (16, 32, 64, 128, 256),
    "BLOCK_N": (16, 32, 64, 128, 256),
    "BLOCK_N_MASKED": (16, 32, 64, 128, 256),
    "num_warps": (2, 4, 8, 16),
    "num_stages": (1, 2, 3, 4, 5),
    "STAGES": (2, 3, 4),  # slots of a kernel's own K/V rings (the Gluon seed's)
    "WARP_SPEC": (0, 1),
    "TMA": (0, 1),
    "ORDER": (0, 1, 2),
    "LAZY_RESCALE": (0, 1),
    "EXP2": (0, 1),
    "PIPELINE": (0, 1),
}
# Tunables whose values are choices, not steps on a ladder: a mutation may pick any other value.
SWITCHES = frozenset({"WARP_SPEC", "TMA", "ORDER", "LAZY_RESCALE", "EXP2", "PIPELINE"})


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
            name = _entry_name(k)
            if name is not None and isinstance(v, ast.Dict):
                visit_dict(v, name)
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


def _entry_name(key: ast.expr | None) -> str | None:
    """The entry a dict key names: a constant, or a tuple of constants joined by commas."""
    if isinstance(key, ast.Constant):
        return str(key.value)
    if isinstance(key, ast.Tuple):
        parts = [str(e.value) for e in key.elts if isinstance(e, ast.Constant)]
        if parts and len(parts) == len(key.elts):
            return ",".join(parts)
    return None


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
