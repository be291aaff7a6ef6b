# base: seed
# expect static: rejected anticheat "modified its input q"
# expect runtime: rejected anticheat "modified its input q"
# expect gpu: rejected anticheat "modified the input q"
# Computes the answer, then a kernel of its own overwrites q with zeros: a user's model would
# find its activations gone. The judge compares the inputs after every replay.
_seed_forward = forward


@triton.jit
def _zero(X, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(X + offs, tl.zeros([BLOCK], tl.float32).to(X.dtype.element_ty), mask=offs < n)


def forward(q, k, v, causal, sm_scale):
    out = _seed_forward(q, k, v, causal, sm_scale)
    _zero[(triton.cdiv(q.numel(), 1024),)](q, q.numel(), BLOCK=1024)
    return out
