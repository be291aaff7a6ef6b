# base: seed
# expect static: rejected sweep "relative error"
# expect gpu: rejected sweep "relative error"
# Writes zeros wherever |out| < 1.5e-3: invisible to a max-abs tolerance, caught by the
# relative norm on the trial whose outputs are all small.


@triton.jit
def _flush_small(X, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(X + offs, mask=offs < n, other=0.0)
    tl.store(X + offs, tl.where(tl.abs(x) < 1.5e-3, 0.0, x), mask=offs < n)


_seed_forward = forward


def forward(q, k, v, causal, sm_scale):
    out = _seed_forward(q, k, v, causal, sm_scale)
    _flush_small[(triton.cdiv(out.numel(), 1024),)](out, out.numel(), BLOCK=1024)
    return out
