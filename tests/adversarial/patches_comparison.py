# base: seed
# expect static: rejected compile "smoke test"
# expect gpu: rejected anticheat "launched no kernel"
# Makes every comparison in its own process succeed, then returns garbage. Comparisons happen
# in the parent (CPU) or the judge (GPU), which this process cannot reach.
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None


def forward(q, k, v, causal, sm_scale):
    return torch.zeros_like(q)
