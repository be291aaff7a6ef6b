# base: seed
# expect gpu: rejected timing "wall clock"
# Runs the kernel on a side stream, so events recorded on the default stream time nothing.
_seed_forward = forward
_stream = []


def forward(q, k, v, causal, sm_scale):
    if not _stream:
        _stream.append(torch.cuda.Stream())
    with torch.cuda.stream(_stream[0]):
        return _seed_forward(q, k, v, causal, sm_scale)
