# base: seed
# expect static: rejected static "import of 'time'"
# expect runtime: passed done ""
# expect gpu: passed done ""
# expect gpu-fitness: near-seed
# Patches every timer it can reach in its own process, the judge's own timing code included
# (imported here by name), to report kernels a thousand times faster. Timing happens in the
# judge, another process: the seed's kernel is measured as it is, and the patches gain nothing.
import time

import triton.testing

_timing = torch._utils._import_dotted_name("importlib.import_module")("harness.timing")
_real_elapsed = torch.cuda.Event.elapsed_time
torch.cuda.Event.elapsed_time = lambda self, end: _real_elapsed(self, end) / 1000
_timing.interleaved = lambda contenders, **kw: [[1e-6] * 25 for _ in contenders]
_timing.median = lambda samples: 1e-6
triton.testing.do_bench = lambda fn, *a, **k: 1e-6
_real_perf_counter = time.perf_counter
time.perf_counter = lambda: _real_perf_counter() / 1000
