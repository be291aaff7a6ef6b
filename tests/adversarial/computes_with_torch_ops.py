# base: seed
# expect static: rejected anticheat "aten."
# expect gpu: rejected anticheat "aten."
# Attention from elementwise torch ops, named nowhere the static gate looks: the dispatcher
# guard sees the arithmetic anyway.


def forward(q, k, v, causal, sm_scale):
    s = (q.unsqueeze(-2) * k.unsqueeze(-3)).sum(-1) * sm_scale
    if causal:
        n = q.shape[-2]
        s = s.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    p = (s - s.amax(-1, keepdim=True)).exp()
    return ((p / p.sum(-1, keepdim=True)).unsqueeze(-1) * v.unsqueeze(-3)).sum(-2).to(q.dtype)
