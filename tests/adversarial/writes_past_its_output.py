# base: seed
# expect gpu: rejected anticheat "wrote outside the buffers"
# Computes the right answer, then scribbles just past the end of its output buffer (where a
# harness that kept its reference beside the output would find it, or corrupt it). The judge
# surrounds every buffer with guard bands and checks them after each replay.
_seed_forward = forward


@triton.jit
def _scribble(Out, n):
    offs = tl.arange(0, 256)
    tl.store(Out + n + 4096 + offs, tl.full([256], 7.0, tl.float32).to(Out.dtype.element_ty))


def forward(q, k, v, causal, sm_scale):
    out = _seed_forward(q, k, v, causal, sm_scale)
    _scribble[(1,)](out, out.numel())
    return out
