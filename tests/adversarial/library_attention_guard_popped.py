# base: seed
# expect gpu: rejected anticheat "launched no kernel"
# The cheat that beat the first judge (fitness 1.03): torch's own SDPA, called with the compute
# guard popped by torch's context manager for that, both reached by name through an importer
# torch itself exports, so the static gate sees neither. Nothing it returns was written by a
# kernel launch of its own, and only those are replayed.
_find = torch._utils._import_dotted_name
_no_modes = _find("torch.utils._python_dispatch._disable_current_modes")
_sdpa = _find("torch.nn.functional.scaled_dot_product_attention")


def forward(q, k, v, causal, sm_scale):
    with _no_modes():
        return _sdpa(q, k, v, is_causal=causal, scale=sm_scale)
