# base: seed
# expect gpu: rejected compile "NaN"
# Library attention again, this time written by torch (guard popped) into a buffer that a
# do-nothing Triton kernel is handed, so the output looks as if a launch wrote it. The replay
# runs only the do-nothing kernel: the output stays poison.
_find = torch._utils._import_dotted_name
_no_modes = _find("torch.utils._python_dispatch._disable_current_modes")
_sdpa = _find("torch.nn.functional.scaled_dot_product_attention")


@triton.jit
def _touch(Out):
    pass


def forward(q, k, v, causal, sm_scale):
    out = torch.empty_like(q)
    _touch[(1,)](out)
    with _no_modes():
        out.copy_(_sdpa(q, k, v, is_causal=causal, scale=sm_scale))
    return out
