# base: seed
# expect gpu: passed done ""
# expect gpu-fitness: near-seed
# Runs the kernel on a side stream, so events recorded on the default stream would time nothing.
# The judge replays its launches on its own stream and times them there: the seed's speed.
_seed_forward = forward
_stream = []


def forward(q, k, v, causal, sm_scale):
    if not _stream:
        _stream.append(torch.cuda.Stream())
    with torch.cuda.stream(_stream[0]):
        return _seed_forward(q, k, v, causal, sm_scale)
