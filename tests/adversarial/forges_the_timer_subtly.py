# base: seed
# expect static: rejected static "import of 'time'"
# expect runtime: passed done ""
# expect gpu: passed done ""
# expect gpu-fitness: below-seed
# An honest but slow kernel (small tiles, shallow pipeline) whose process makes every timer it
# can reach report three quarters of the real time: enough, against the first judge, to rank
# above the seed. Timed by the judge, it is as slow as it is.
import time

TUNABLES = {
    64: {"BLOCK_M": 64, "BLOCK_N": 32, "num_warps": 4, "num_stages": 1},
    128: {"BLOCK_M": 64, "BLOCK_N": 32, "num_warps": 4, "num_stages": 1},
}
_real_elapsed = torch.cuda.Event.elapsed_time
torch.cuda.Event.elapsed_time = lambda self, end: 0.75 * _real_elapsed(self, end)
_real_perf_counter = time.perf_counter
_t0 = _real_perf_counter()
time.perf_counter = lambda: _t0 + 0.75 * (_real_perf_counter() - _t0)
