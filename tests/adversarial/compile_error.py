# base: seed
# expect static: rejected compile "does_not_exist"
# expect gpu: rejected compile "does_not_exist"


@triton.jit
def _broken(X, Out, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    tl.store(Out + offs, tl.does_not_exist(tl.load(X + offs)))


def forward(q, k, v, causal, sm_scale):
    out = torch.empty_like(q)
    _broken[(1,)](q, out, BLOCK=16)
    return out
