# base: seed
# expect static: rejected anticheat "patched torch.allclose"
# Makes every comparison in its own process succeed, then returns garbage. Comparisons happen
# in the parent, so this could not help it; the patch is reported all the same.
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None


def forward(q, k, v, causal, sm_scale):
    return torch.zeros_like(q)
