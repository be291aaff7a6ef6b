"""Compile the seed (seeds/mha_fwd.py) for sm_90 under its switch settings and tile sizes, and
hold evolve/feasibility.py to what the compiler does. Run it with the GPU machine's Triton:

    /tmp/t36/bin/python tests/honest/compile_seed.py seed       # the seed as committed, every variant
    /tmp/t36/bin/python tests/honest/compile_seed.py switches   # every combination of the switches
    /tmp/t36/bin/python tests/honest/compile_seed.py sample 40  # 40 entries drawn as TunableReset draws them

Not a pytest module. It reuses compile_check.py's stand-in sm_90 driver (no GPU, no launch) and
writes one configuration into every TUNABLES entry before calling the seed's own ``forward`` on
meta tensors (head_dim 64 and 128, causal and not, bf16). It fails when a configuration the rule
calls feasible does not compile, or needs more shared memory than the rule estimates; it also
lists configurations the rule refuses although they would compile (it may err that way only).
"""

from __future__ import annotations

import importlib.util
import itertools
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from tests.honest import compile_check as cc  # noqa: E402  (sets up the environment Triton reads)

# isort: split
import torch  # noqa: E402
from triton.runtime import driver  # noqa: E402

from evolve import feasibility, tunables  # noqa: E402

SEED_PATH = HERE.parents[1] / "seeds" / "mha_fwd.py"
SHAPES = [(64, False), (64, True), (128, False), (128, True)]  # (head_dim, causal)


def load_seed():
    spec = importlib.util.spec_from_file_location("seed_under_test", SEED_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seed_values(seed) -> dict[str, int]:
    return dict(seed.TUNABLES[(128, "causal", 16384)])


def switch_configs(base: dict[str, int]) -> list[dict[str, int]]:
    names = sorted(n for n in tunables.SWITCHES if n in base)
    out = []
    for combo in itertools.product(*(tunables.LADDERS[n] for n in names)):
        for masked in (base["BLOCK_N"], base["BLOCK_N"] // 2):
            cfg = {**base, **dict(zip(names, combo)), "BLOCK_N_MASKED": masked}
            out.append(cfg)
            if cfg["WARP_SPEC"]:
                out.append({**cfg, "num_warps": 4})  # refused by the rule: shown to fail
    return out


def sampled_configs(base: dict[str, int], n: int, rng: random.Random) -> list[dict[str, int]]:
    """Entries drawn from the ladders: every other one feasible by the rule, the rest drawn
    regardless of it (mostly refused: to check that it refuses only what cannot compile)."""
    out: list[dict[str, int]] = []
    while len(out) < n:
        cfg = {name: rng.choice(tunables.LADDERS[name]) for name in base}
        if feasibility.feasible(cfg, 128) or len(out) % 2:
            out.append(cfg)
    return out


def compile_one(seed, cfg: dict[str, int] | None, head_dim: int, causal: bool, seq: int = 4096) -> dict:
    if cfg is not None:
        for key in seed.TUNABLES:
            seed.TUNABLES[key] = dict(cfg)
    q, k, v = (torch.empty((1, 2, seq, head_dim), dtype=torch.bfloat16, device="meta") for _ in range(3))
    start = len(cc.COMPILED)
    try:
        seed.forward(q, k, v, causal, 0.125)
    except Exception as e:  # noqa: BLE001
        text = str(e).strip().splitlines()
        return {"ok": False, "error": f"{type(e).__name__}: {text[-1] if text else ''}"[:160]}
    kernels = cc.COMPILED[start:]
    return {"ok": True, "shared": max((x["shared"] for x in kernels), default=None),
            "regs": max((x["regs"] for x in kernels), default=None),
            "spills": max((x["spills"] for x in kernels), default=None),
            "ptx": kernels[0]["ptx"] if kernels else "(cached)"}


def label(cfg: dict[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in cfg.items())


def check(seed, configs: list[dict[str, int]]) -> int:
    failures, refused_but_built, counts = [], [], {"compiled": 0, "refused and failed": 0}
    for cfg in configs:
        for head_dim, causal in SHAPES:
            t0 = time.monotonic()
            got = compile_one(seed, cfg, head_dim, causal)
            estimate = feasibility.shared_bytes(cfg, head_dim)
            why = feasibility.problems(cfg, head_dim)
            where = f"D{head_dim} {'causal' if causal else 'full'} {label(cfg)}"
            if got["ok"]:
                counts["compiled"] += 1
                shared = got["shared"]
                print(f"ok   {where}: shared={shared} est={estimate} regs={got['regs']} spill={got['spills']} "
                      f"[{got['ptx']}] {time.monotonic() - t0:.1f}s", flush=True)
                if shared is not None and shared > estimate:
                    failures.append(f"{where}: {shared} B of shared memory, estimated {estimate}")
                if why:
                    refused_but_built.append(f"{where}: {'; '.join(why)}")
            else:
                print(f"FAIL {where}: {got['error']}{' (refused: ' + '; '.join(why) + ')' if why else ''}", flush=True)
                if why:
                    counts["refused and failed"] += 1
                else:
                    failures.append(f"{where}: feasible by the rule, but {got['error']}")
    print(f"{counts['compiled']} compiled, {counts['refused and failed']} refused by the rule and failed to compile, "
          f"{len(refused_but_built)} refused although they compile")
    for line in refused_but_built:
        print(f"   refused but compiles: {line}")
    print("FAILED:\n   " + "\n   ".join(failures) if failures else "the rule held for every configuration")
    return 1 if failures else 0


def check_seed_as_committed(seed) -> int:
    """The seed's own entries, for every variant compile_check.py compiles honest candidates at."""
    failed = 0
    for where, error, kernels in cc.compiled_per_case(seed, cc.variants()):
        if error is not None:
            print(f"FAIL {where}: {type(error).__name__}: {str(error)[:300]}")
            failed += 1
            continue
        for x in kernels:
            print(f"ok   {where}: shared={x['shared']} regs={x['regs']} spill={x['spills']} [{x['ptx']}]")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    driver.set_active(cc._FakeCudaDriver())
    cc._record_compiles()
    seed = load_seed()
    base = seed_values(seed)
    mode = argv[0] if argv else "seed"
    if mode == "seed":
        return check_seed_as_committed(seed)
    if mode == "switches":
        return check(seed, switch_configs(base))
    if mode == "sample":
        return check(seed, sampled_configs(base, int(argv[1]) if len(argv) > 1 else 20, random.Random(0)))
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
