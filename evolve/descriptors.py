"""Behaviour descriptors: *how* a kernel works, read from its source (KernelFoundry's lesson:
not how long its text is). They place a kernel in the MAP-Elites grid and are all the
simulated cost model (harness/cost_model.py) knows of a kernel.

A kernel of the seed's lineage says how it works in its TUNABLES: tile sizes and constexpr
switches of one reference entry are read as they are, even where the source also holds the
code a switch turns off. Where an entry lacks a switch (a kernel written another way), a
pattern over the source stands in for it.
"""

from __future__ import annotations

import math
import re

from evolve import tunables

# The entry whose tunables describe a kernel: the benchmark's longest causal shape at head_dim
# 128 (per-shape tables), else head_dim 128 (tables by head_dim only), else the first entry.
REFERENCE_ENTRIES = ("128,causal,16384", "128")
DEFAULTS = {"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 4, "num_stages": 2}
# Bits of the grid's ``features`` axis: the switch value that means the feature, and the pattern
# standing in for the switch in kernels without it.
FEATURES: dict[str, tuple[str, int, re.Pattern[str]]] = {
    "tma": ("TMA", 1, re.compile(r"make_tensor_descriptor|TensorDescriptor|_experimental_descriptor")),
    "warp_specialize": ("WARP_SPEC", 1, re.compile(r"warp_specialize\s*=\s*True")),
    "persistent": ("ORDER", 2, re.compile(r"num_programs\s*\(|NUM_SMS")),
}
EXP2 = re.compile(r"\bexp2\s*\(")


def reference_entry(source: str) -> dict[str, int]:
    """The reference entry's tunables by name; {} for a kernel with none (or that does not parse)."""
    try:
        found = tunables.entries(tunables.find(source))
    except SyntaxError:
        return {}
    entry = next((found[name] for name in REFERENCE_ENTRIES if name in found), None)
    if entry is None:
        entry = next(iter(found.values()), {})
    return {name: t.value for name, t in entry.items()}


def describe(source: str) -> dict[str, float]:
    """Grid axes: ``tile`` = log2(BLOCK_M·BLOCK_N), ``warps`` = log2(num_warps), ``stages`` =
    num_stages (a kernel's own ``STAGES`` where it has them), ``features`` = bit mask of TMA, warp specialisation and a persistent grid. For
    the cost model also ``masked_tile`` = log2(BLOCK_M·BLOCK_N_MASKED), ``order`` (0 launch
    order, 1 longest rows first, 2 persistent), ``lazy_rescale`` and ``exp2`` (0/1)."""
    entry = reference_entry(source)
    value = {name: entry.get(name, default) for name, default in DEFAULTS.items()}
    mask = 0
    for bit, (switch, on, pattern) in enumerate(FEATURES.values()):
        if (entry[switch] == on) if switch in entry else bool(pattern.search(source)):
            mask |= 1 << bit
    tile = math.log2(value["BLOCK_M"] * value["BLOCK_N"])
    return {
        "tile": tile,
        "warps": math.log2(value["num_warps"]),
        "stages": float(entry.get("STAGES", value["num_stages"])),
        "features": float(mask),
        "masked_tile": math.log2(value["BLOCK_M"] * entry["BLOCK_N_MASKED"]) if "BLOCK_N_MASKED" in entry else tile,
        "order": float(entry.get("ORDER", 2 if mask & 4 else 0)),
        "lazy_rescale": float(entry.get("LAZY_RESCALE", 0)),
        "exp2": float(entry["EXP2"] if "EXP2" in entry else bool(EXP2.search(source))),
    }
