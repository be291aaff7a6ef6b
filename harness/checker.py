"""The cascade: static gate, compile and smoke, shape sweep, numerical stability, determinism,
anti-cheat, timing. One disposable sandbox per candidate; every verdict is computed here, in
the parent, from tensors the child hands back and references the parent computes itself.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.compare import compare
from harness.device import Platform, detect, matmul_peak_tflops
from harness.gpulock import GpuLock
from harness.protocol import read_tensor
from harness.sandbox import Sandbox, SandboxDied, SandboxTimeout
from harness.static_gate import check_source
from harness.task import Task, Trial, get_task
from harness.verdict import Outcome, ShapeResult, Stage, Timing, Verdict


@dataclass
class CheckOptions:
    timing: bool = True
    isolate: bool = True
    static_gate: bool = True  # turned off only by tests of the run-time defences
    load_timeout_s: float = 120.0
    request_timeout_s: float = 180.0
    total_timeout_s: float = 900.0
    warmup_ms: float = 20.0
    rep_ms: float = 80.0
    repeat_calls: int = 20
    peak_tflops: float | None = None  # None: measure once on this GPU
    peak_margin: float = 1.15  # a kernel may beat the measured matmul a little, never by more
    wallclock_ratio: float = 0.4  # event time below this fraction of wall time means tampering
    max_output_bytes: int = 1 << 20
    rechecks_after_timing: int = 3
    triton_cache: Path | None = None  # a compile cache shared across checks: trusted kernels only
    seed: int | None = None
    # The last stage to run (e.g. Stage.COMPILE: static gate, compile and smoke only, the cheap
    # check an LLM's repair loop runs locally); a candidate that gets there passes "so far".
    stop_after: Stage | None = None


class _Stopped(Exception):
    """The check reached ``CheckOptions.stop_after``."""


class Rejected(Exception):
    """A candidate failed a check: carries the verdict's outcome, stage and reason."""

    def __init__(self, outcome: Outcome, stage: Stage, reason: str) -> None:
        super().__init__(reason)
        self.outcome, self.stage, self.reason = outcome, stage, reason


@dataclass
class _State:
    stage: Stage = Stage.STATIC
    results: list[ShapeResult] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=list)
    tags: int = 0
    compiled: set[str] = field(default_factory=set)


class Checker:
    """Checks candidates for one task on this machine's platform; reusable across candidates
    and safe to call from several threads at once (they share the GPU for correctness trials
    and take turns for timing)."""

    def __init__(self, task: Task | str = "mha_fwd", options: CheckOptions | None = None,
                 platform: Platform | None = None) -> None:
        self.task = get_task(task) if isinstance(task, str) else task
        self.opt = options or CheckOptions()
        self.platform = platform or detect()
        self.gpu = GpuLock()
        self._baseline: Any = None

    @property
    def timing_enabled(self) -> bool:
        return self.opt.timing and self.platform.mode == "gpu"

    def check(self, source: str) -> Verdict:
        start = time.monotonic()
        st = _State()
        rng = random.Random(self.opt.seed)
        sandbox: Sandbox | None = None
        verdict = Verdict(Outcome.PASSED, Stage.DONE, "", self.platform.mode, device=self.platform.name,
                          torch_version=self.platform.torch_version, triton_version=self.platform.triton_version)
        try:
            if self.opt.static_gate:
                gate = check_source(source)
                if not gate.ok:
                    raise Rejected(Outcome.REJECTED, Stage.STATIC, gate.reason)
            self._stop_after(st)
            st.stage = Stage.COMPILE
            sandbox = Sandbox(self.task.name, self.platform.device, isolate=self.opt.isolate,
                              triton_cache=self.opt.triton_cache)
            (sandbox.scratch / "candidate.py").write_text(source)
            (sandbox.scratch / "candidate.py").chmod(0o644)
            deadline = start + self.opt.total_timeout_s
            self._run_stages(sandbox, st, rng, deadline, verdict)
        except _Stopped:
            verdict.stage, verdict.reason = st.stage, f"stopped after the {st.stage.value} stage, as asked"
        except Rejected as r:
            verdict.outcome, verdict.stage, verdict.reason = r.outcome, r.stage, r.reason
        except SandboxDied as d:
            verdict.outcome, verdict.stage, verdict.reason = Outcome.CRASHED, st.stage, str(d)
        except SandboxTimeout as t:
            verdict.outcome, verdict.stage = Outcome.TIMEOUT, st.stage
            verdict.reason = f"{t} during the {st.stage.value} stage: the candidate hangs or is far too slow"
        except Exception as e:  # the harness's own failure: the only retryable outcome
            verdict.outcome, verdict.stage = Outcome.ERROR, st.stage
            verdict.reason = f"harness error during the {st.stage.value} stage: {type(e).__name__}: {e}"
        finally:
            if sandbox is not None:
                verdict.log = sandbox.log()
                hello = sandbox.hello
                verdict.sandbox = list(hello.get("isolation", [])) + [f"missing: {m}" for m in hello.get("missing", [])]
                sandbox.close()
        verdict.shape_results, verdict.timings = st.results, st.timings
        verdict.duration_s = time.monotonic() - start
        return verdict

    # -- stages --------------------------------------------------------------------------
    def _run_stages(self, sb: Sandbox, st: _State, rng: random.Random, deadline: float, verdict: Verdict) -> None:
        def remaining(limit: float) -> float:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SandboxTimeout(f"the check ran past its {self.opt.total_timeout_s:g} s limit")
            return min(limit, left)

        try:
            hello = sb.start()
        except (SandboxDied, SandboxTimeout) as e:
            raise RuntimeError(f"the sandbox failed to start: {e}\n{sb.log()[-2000:]}") from None
        verdict.device = hello.get("device_name", verdict.device)
        resp = sb.request({"op": "load", "path": "candidate.py"}, remaining(self.opt.load_timeout_s))
        if not resp.get("ok"):
            raise Rejected(Outcome.REJECTED, Stage.COMPILE, f"importing the candidate failed: {resp.get('error')}")
        self._raise_on_failure(resp, st, "import", sb)

        def run(trial: Trial, **extra: Any) -> torch.Tensor:
            return self._trial(sb, st, rng, trial, remaining(self.opt.request_timeout_s), **extra)

        sweep = self.task.sweep(self.platform.mode)
        run(sweep[0])  # compile and smoke
        self._stop_after(st)
        st.stage = Stage.SWEEP
        for trial in sweep[1:]:
            run(trial)
        self._stop_after(st)
        st.stage = Stage.STABILITY
        for trial in self.task.stability_trials(self.platform.mode):
            run(trial)
        self._stop_after(st)

        st.stage = Stage.DETERMINISM
        trial = sweep[-1]
        seed = rng.getrandbits(31)
        outs = [run(Trial(f"{trial.label} (determinism {i + 1}/3)", trial.case), seed=seed) for i in range(3)]
        for i in (1, 2):
            if not torch.equal(outs[0].view(torch.uint8), outs[i].view(torch.uint8)):
                raise Rejected(Outcome.REJECTED, Stage.DETERMINISM,
                               f"{trial.label}: run {i + 1} differs bitwise from run 1 on the same inputs")
        self._stop_after(st)

        st.stage = Stage.ANTICHEAT
        run(Trial(f"{trial.label} ({self.opt.repeat_calls} calls)", trial.case), repeat=self.opt.repeat_calls)
        run(Trial(f"{trial.label} (inputs refilled in place)", trial.case), refill=True)
        self._stop_after(st)

        if self.timing_enabled:
            st.stage = Stage.TIMING
            cases = self.task.benchmark_cases()
            # Outputs are re-checked after timing on a few shapes the candidate cannot predict.
            recheck = set(rng.sample(range(len(cases)), k=min(self.opt.rechecks_after_timing, len(cases))))
            for i, case in enumerate(cases):
                self._time_case(sb, st, rng, case, i in recheck, remaining)
        st.stage = Stage.DONE

    def _stop_after(self, st: _State) -> None:
        if self.opt.stop_after is st.stage:
            raise _Stopped

    def _trial(self, sb: Sandbox, st: _State, rng: random.Random, trial: Trial, timeout: float, *,
               seed: int | None = None, repeat: int = 1, refill: bool = False) -> torch.Tensor:
        """Run one trial in the child and judge it here; returns the output for further checks."""
        st.tags += 1
        seed = rng.getrandbits(31) if seed is None else seed
        refill_seed = rng.getrandbits(31) if refill else None
        case = trial.case
        numel = math.prod(self.task.output_spec(case)[0])
        back: Any = "full" if numel <= 1 << 22 else {"seed": rng.getrandbits(31), "count": 1 << 16}
        req = {"op": "run", "tag": f"t{st.tags}", "case": case, "seed": seed, "repeat": repeat,
               "refill_seed": refill_seed, "inputs_back": back}
        variant = self.task.variant(case)
        if variant not in st.compiled:  # JIT compilation is CPU work: keep it out of the GPU lock
            self._raise_on_failure(sb.request({"op": "warm", "case": case, "seed": rng.getrandbits(31)}, timeout),
                                   st, trial.label, sb)
            st.compiled.add(variant)
        with self.gpu.shared():
            resp = sb.request(req, timeout)
        self._raise_on_failure(resp, st, trial.label, sb)

        # The inputs as the last call saw them: refilled ones for a refill trial.
        pristine = self.task.make_inputs(case, seed if refill_seed is None else refill_seed, self.platform.device)
        expected = pristine
        if isinstance(back, dict):  # the same sample the child took
            g = torch.Generator().manual_seed(back["seed"])
            expected = [t.reshape(-1)[torch.randint(0, t.numel(), (back["count"],), generator=g).to(t.device)]
                        for t in pristine]
        for name, desc, want in zip("qkv", resp.get("inputs", []), expected):
            got = read_tensor(sb.io, desc).to(want.device)
            if got.shape != want.shape or not torch.equal(got.view(torch.uint8), want.contiguous().view(torch.uint8)):
                raise Rejected(Outcome.REJECTED, Stage.ANTICHEAT, f"{trial.label}: forward modified its input {name}")
        out = read_tensor(sb.io, resp["out"]).to(self.platform.device)
        for f in sb.io.iterdir():
            f.unlink()
        ref = self.task.reference(pristine, case)
        cmp = compare(out, ref, self.task.tolerance(case["dtype"]))
        st.results.append(ShapeResult(trial.label, case, cmp.rel_err, cmp.max_abs_err, cmp.ok, cmp.note))
        if not cmp.ok:
            where = "smoke test" if st.stage is Stage.COMPILE else trial.label
            raise Rejected(Outcome.REJECTED, st.stage, f"{where}: {cmp.note}")
        return out

    def _raise_on_failure(self, resp: dict[str, Any], st: _State, label: str, sb: Sandbox) -> None:
        if sb.output_bytes > self.opt.max_output_bytes:
            raise Rejected(Outcome.REJECTED, st.stage,
                           f"{label}: output flood: wrote {sb.output_bytes / 1e6:.1f} MB to stdout/stderr "
                           f"(limit {self.opt.max_output_bytes / 1e6:.1f} MB)")
        if not resp.get("ok"):
            kind, error = resp.get("kind"), resp.get("error", "unknown error")
            if kind == "violation":
                raise Rejected(Outcome.REJECTED, Stage.ANTICHEAT, f"{label}: {error}")
            stage = Stage.COMPILE if kind == "compile" else st.stage
            raise Rejected(Outcome.REJECTED, stage, f"{label}: {error}")
        if resp.get("problems"):
            raise Rejected(Outcome.REJECTED, Stage.ANTICHEAT, f"{label}: {'; '.join(resp['problems'])}")

    def _time_case(self, sb: Sandbox, st: _State, rng: random.Random, case: dict[str, Any],
                   recheck: bool, remaining: Any) -> None:
        from harness.baseline import Baseline
        from harness.timing import Bench, median

        label = self.task.label(case)
        with self.gpu.exclusive():
            if self._baseline is None:
                self._baseline = Baseline(self.task, Bench(), self.platform.device)
            backend, base = self._baseline.samples(case, self.opt.warmup_ms, self.opt.rep_ms)
            resp = sb.request({"op": "time", "case": case, "seed": rng.getrandbits(31),
                               "warmup_ms": self.opt.warmup_ms, "rep_ms": self.opt.rep_ms},
                              remaining(self.opt.request_timeout_s))
            self._raise_on_failure(resp, st, label, sb)
            samples = [float(s) for s in resp["samples"]]
            ms = median(samples)
            self._wallclock_check(sb, st, rng, case, ms, label, remaining)
        base_ms = median(base)
        flops = self.task.flops(case)
        peak = self.opt.peak_tflops or matmul_peak_tflops()
        floor_ms = flops / (peak * self.opt.peak_margin * 1e12) * 1e3
        if not ms >= floor_ms:
            raise Rejected(Outcome.REJECTED, Stage.TIMING,
                           f"{label}: {ms:.4f} ms is below the physical floor of {floor_ms:.4f} ms "
                           f"({peak:.0f} TFLOP/s): the timer was tampered with")
        if recheck:
            self._trial(sb, st, rng, Trial(f"{label} (after timing)", case), remaining(self.opt.request_timeout_s))
        st.timings.append(Timing(case, ms, base_ms, backend, flops / (ms * 1e-3) / 1e12,
                                 flops / (base_ms * 1e-3) / 1e12))

    def _wallclock_check(self, sb: Sandbox, st: _State, rng: random.Random, case: dict[str, Any],
                         ms: float, label: str, remaining: Any) -> None:
        """Time back-to-back calls from out here: GPU events the candidate could have fooled must
        agree with the wall clock within ``wallclock_ratio``."""
        n = max(3, min(500, math.ceil(50.0 / max(ms, 1e-3))))
        resp = sb.request({"op": "prepare_batch", "case": case, "seed": rng.getrandbits(31)},
                          remaining(self.opt.request_timeout_s))
        self._raise_on_failure(resp, st, label, sb)
        t0 = time.perf_counter()
        resp = sb.request({"op": "run_batch", "n": n}, remaining(self.opt.request_timeout_s))
        wall_ms = (time.perf_counter() - t0) * 1e3 / n
        self._raise_on_failure(resp, st, label, sb)
        if ms < self.opt.wallclock_ratio * wall_ms:
            raise Rejected(Outcome.REJECTED, Stage.TIMING,
                           f"{label}: the GPU timer says {ms:.4f} ms per call but {n} calls took "
                           f"{wall_ms:.4f} ms each by the wall clock: the timing was tampered with")
