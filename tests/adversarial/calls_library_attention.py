# base: seed
# expect static: rejected static "library fallback"
# expect runtime: rejected anticheat "aten._scaled_dot_product"
# expect gpu: rejected anticheat "aten._scaled_dot_product"
_seed_forward = forward


def forward(q, k, v, causal, sm_scale):
    _seed_forward(q, k, v, causal, sm_scale)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=sm_scale)
