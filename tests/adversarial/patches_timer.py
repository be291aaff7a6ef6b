# base: seed
# expect static: rejected static "triton.testing"
# expect runtime: rejected anticheat "patched torch.cuda.Event.elapsed_time"
# Reports every kernel as a thousand times faster than it is.
_real_elapsed = torch.cuda.Event.elapsed_time
torch.cuda.Event.elapsed_time = lambda self, end: _real_elapsed(self, end) / 1000
triton.testing.do_bench = lambda fn, *a, **k: 1e-6
