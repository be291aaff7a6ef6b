"""Behaviour descriptors: *how* a kernel works, read from its source (KernelFoundry's lesson:
not how long its text is). They place a kernel in the MAP-Elites grid."""

from __future__ import annotations

import math
import re

from evolve import tunables

# The entry whose tunables describe a kernel: the head_dim the benchmark weighs most.
REFERENCE_ENTRY = "128"
FEATURES = {
    "tma": re.compile(r"make_tensor_descriptor|TensorDescriptor|_experimental_descriptor"),
    "warp_specialize": re.compile(r"warp_specialize\s*=\s*True"),
    "persistent": re.compile(r"num_programs\s*\(|NUM_SMS"),
}
DEFAULTS = {"BLOCK_M": 64, "BLOCK_N": 64, "num_warps": 4, "num_stages": 2}


def describe(source: str) -> dict[str, float]:
    """``tile`` = log2(BLOCK_M·BLOCK_N), ``warps`` = log2(num_warps), ``stages`` = num_stages,
    ``features`` = bit mask of TMA, warp specialisation and a persistent grid."""
    try:
        found = tunables.entries(tunables.find(source))
    except SyntaxError:
        found = {}
    entry = found.get(REFERENCE_ENTRY) or next(iter(found.values()), {})
    value = {name: entry[name].value if name in entry else default for name, default in DEFAULTS.items()}
    mask = sum(1 << i for i, rx in enumerate(FEATURES.values()) if rx.search(source))
    return {
        "tile": math.log2(value["BLOCK_M"] * value["BLOCK_N"]),
        "warps": math.log2(value["num_warps"]),
        "stages": float(value["num_stages"]),
        "features": float(mask),
    }
