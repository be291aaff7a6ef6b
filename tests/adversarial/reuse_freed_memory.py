# base: seed
# expect static: rejected compile "smoke test"
# expect gpu: rejected anticheat "launched no kernel"
# A harness that computes the reference in the candidate's process and frees it hands this
# candidate the right answer in recycled memory. Here the reference lives in another process.
_seed_forward = forward


def forward(q, k, v, causal, sm_scale):
    return torch.empty_like(q)
