# base: seed
# expect static: crashed compile "killed by SIG"
# expect gpu: rejected compile "illegal memory access"
# A load far outside any allocation: a segfault in the interpreter, an illegal address on a GPU.


@triton.jit
def _wild(X, Out):
    tl.store(Out, tl.load(X + 1_000_000_000_000))


def forward(q, k, v, causal, sm_scale):
    out = torch.empty_like(q)
    _wild[(1,)](q, out)
    return out
