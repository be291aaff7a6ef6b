"""The cascade: static gate, compile and smoke, shape sweep, numerical stability, determinism,
anti-cheat, timing. One disposable sandbox per candidate, and on a GPU one disposable judge
beside it: the sandbox runs the candidate's Python and records what it launches, the judge
replays those launches on inputs of its own and computes every verdict and every timing.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.device import Platform, detect
from harness.gpulock import GpuLock
from harness.judge import Judge
from harness.plan import Limits
from harness.protocol import Malformed
from harness.replayed import ReplayTrials
from harness.sandbox import Sandbox, SandboxDied, SandboxTimeout
from harness.simulated import SimulatedTrials
from harness.static_gate import check_source
from harness.task import Task, Trial, get_task
from harness.trials import Context, Rejected, TrialRunner, quoted
from harness.verdict import Outcome, Stage, Timing, Verdict


@dataclass
class CheckOptions:
    timing: bool = True
    isolate: bool = True
    static_gate: bool = True  # turned off only by tests of the run-time defences
    load_timeout_s: float = 120.0
    request_timeout_s: float = 180.0
    total_timeout_s: float = 900.0
    rep_ms: float = 100.0  # per contender and shape: how much of their time to sample
    min_reps: int = 25
    max_reps: int = 400
    consistency_calls: int = 16  # extra recorded calls of each benchmark shape (GPU)
    repeat_calls: int = 20  # repeated calls of the simulation path's anti-cheat trial
    max_output_bytes: int = 1 << 20
    triton_cache: Path | None = None  # a compile cache shared across checks: trusted kernels only
    judge_cache: Path | None = None  # where judges keep Triton's launchers (default: the user cache)
    limits: Limits = Limits()
    seed: int | None = None
    shapes: list[dict[str, Any]] | None = None  # a run's own benchmark shapes (Task.with_shapes)
    # The last stage to run (e.g. Stage.COMPILE: static gate, compile and smoke only, the cheap
    # check an LLM's repair loop runs locally); a candidate that gets there passes "so far".
    stop_after: Stage | None = None


@dataclass
class Contest:
    """Two candidates timed in turns: per benchmark shape its ``label`` and the ``candidate``'s
    and ``rival``'s milliseconds; no shapes, and a ``reason``, when it could not be measured."""

    shapes: list[dict[str, Any]]
    mode: str
    device: str
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Stopped(Exception):
    """The check reached ``CheckOptions.stop_after``."""


class Checker:
    """Checks candidates for one task on this machine's platform; reusable across candidates
    and safe to call from several threads at once (they share the GPU for correctness trials
    and take turns for timing)."""

    def __init__(self, task: Task | str = "mha_fwd", options: CheckOptions | None = None,
                 platform: Platform | None = None) -> None:
        self.opt = options or CheckOptions()
        self.task = get_task(task, self.opt.shapes) if isinstance(task, str) else task
        self.platform = platform or detect()
        self.gpu = GpuLock()

    @property
    def replayed(self) -> bool:
        return self.platform.mode == "gpu"

    @property
    def timing_enabled(self) -> bool:
        return self.opt.timing and self.replayed

    def check(self, source: str) -> Verdict:
        start = time.monotonic()
        verdict = Verdict(Outcome.PASSED, Stage.DONE, "", self.platform.mode, device=self.platform.name,
                          torch_version=self.platform.torch_version, triton_version=self.platform.triton_version)
        stage = [Stage.STATIC]
        timings: list[Timing] = []
        sandbox: Sandbox | None = None
        judge: Judge | None = None
        ctx: Context | None = None
        try:
            if self.opt.static_gate:
                gate = check_source(source, self.task.signature)
                if not gate.ok:
                    raise Rejected(Outcome.REJECTED, Stage.STATIC, gate.reason)
            self._stop_after(Stage.STATIC)
            stage[0] = Stage.COMPILE
            sandbox = Sandbox(self.task.name, self.platform.device, isolate=self.opt.isolate,
                              triton_cache=self.opt.triton_cache)
            (sandbox.scratch / "candidate.py").write_text(source)
            (sandbox.scratch / "candidate.py").chmod(0o644)
            if self.replayed:
                judge = Judge(self.task.name, cache=self.opt.judge_cache)
            ctx = Context(self.task, sandbox, random.Random(self.opt.seed), self.gpu, start + self.opt.total_timeout_s,
                          self.opt.request_timeout_s, self.opt.max_output_bytes, self.opt.total_timeout_s)
            started = time.monotonic()
            self._start(sandbox, judge, verdict)
            ctx.add("start", time.monotonic() - started)
            self._run_stages(ctx, judge, stage, timings)
        except _Stopped:
            verdict.stage, verdict.reason = stage[0], f"stopped after the {stage[0].value} stage, as asked"
        except Rejected as r:
            verdict.outcome, verdict.stage, verdict.reason = r.outcome, r.stage, r.reason
        except Malformed as m:
            verdict.outcome, verdict.stage = Outcome.REJECTED, stage[0]
            verdict.reason = f"its process answered out of protocol: {m}"
        except SandboxDied as d:
            verdict.outcome, verdict.stage, verdict.reason = Outcome.CRASHED, stage[0], str(d)
        except SandboxTimeout as t:
            verdict.outcome, verdict.stage = Outcome.TIMEOUT, stage[0]
            verdict.reason = f"{t} during the {stage[0].value} stage: the candidate hangs or is far too slow"
        except Exception as e:  # the harness's own failure: the only retryable outcome
            verdict.outcome, verdict.stage = Outcome.ERROR, stage[0]
            verdict.reason = f"harness error during the {stage[0].value} stage: {type(e).__name__}: {e}"
        finally:
            if sandbox is not None:
                verdict.log = sandbox.log()
                hello = sandbox.hello
                verdict.sandbox = list(hello.get("isolation", [])) + [f"missing: {m}" for m in hello.get("missing", [])]
                sandbox.close()
            if judge is not None:
                judge.close()
        if ctx is not None:
            verdict.shape_results = ctx.results
            verdict.phases = dict(ctx.phases)
        verdict.timings = timings
        verdict.add_intervals()
        verdict.duration_s = time.monotonic() - start
        return verdict

    def duel(self, candidate: str, rival: str) -> Contest:
        """Candidate and rival timed in turns on every benchmark shape by one judge, each recorded
        afresh in a sandbox of its own (their Python runs only there); a failure of either is the
        contest's ``reason``."""
        if not self.timing_enabled:
            return Contest([], self.platform.mode, self.platform.name, "this machine does not time on a GPU")
        start = time.monotonic()
        sandboxes: list[Sandbox] = []
        judge = Judge(self.task.name, cache=self.opt.judge_cache)
        try:
            runners = []
            for source in (candidate, rival):
                sandbox = Sandbox(self.task.name, self.platform.device, isolate=self.opt.isolate,
                                  triton_cache=self.opt.triton_cache)
                sandboxes.append(sandbox)
                (sandbox.scratch / "candidate.py").write_text(source)
                (sandbox.scratch / "candidate.py").chmod(0o644)
                ctx = Context(self.task, sandbox, random.Random(self.opt.seed), self.gpu,
                              start + self.opt.total_timeout_s, self.opt.request_timeout_s,
                              self.opt.max_output_bytes, self.opt.total_timeout_s)
                if runners:
                    sandbox.start()
                else:  # the judge starts beside the first sandbox
                    self._start(sandbox, judge, Verdict(Outcome.PASSED, Stage.TIMING, "", self.platform.mode))
                resp = sandbox.request({"op": "load", "path": "candidate.py"}, ctx.remaining(self.opt.load_timeout_s))
                if not resp.get("ok"):
                    raise Rejected(Outcome.REJECTED, Stage.COMPILE,
                                   f"importing a contender failed: {quoted(resp.get('error'))}")
                runners.append(ReplayTrials(ctx, judge, limits=self.opt.limits, consistency_calls=0,
                                            rep_ms=self.opt.rep_ms, min_reps=self.opt.min_reps,
                                            max_reps=self.opt.max_reps))
            shapes = runners[0].duel(runners[1], self.task.benchmark_cases())
            return Contest(shapes, self.platform.mode, self.platform.name)
        except Rejected as r:
            return Contest([], self.platform.mode, self.platform.name, r.reason)
        except (Malformed, SandboxDied, SandboxTimeout, RuntimeError) as e:
            return Contest([], self.platform.mode, self.platform.name, f"{type(e).__name__}: {e}"[:2000])
        finally:
            for sandbox in sandboxes:
                sandbox.close()
            judge.close()

    def _start(self, sandbox: Sandbox, judge: Judge | None, verdict: Verdict) -> None:
        """Both processes start together (each imports torch and initialises the GPU)."""
        failure: list[BaseException] = []

        def start_judge() -> None:
            try:
                assert judge is not None
                judge.start()
            except BaseException as e:
                failure.append(e)

        thread = threading.Thread(target=start_judge, daemon=True) if judge is not None else None
        if thread is not None:
            thread.start()
        try:
            hello = sandbox.start()
        except (SandboxDied, SandboxTimeout, Malformed) as e:
            raise RuntimeError(f"the sandbox failed to start: {e}\n{sandbox.log()[-2000:]}") from None
        finally:
            if thread is not None:
                thread.join()
        if failure:
            e = failure[0]
            detail = judge.log()[-2000:] if judge is not None else ""
            raise RuntimeError(f"the judge failed to start: {e}\n{detail}") from None
        verdict.device = hello.get("device_name", verdict.device)
        if judge is not None:
            verdict.cudnn_version = str(judge.hello.get("cudnn", ""))

    def _stop_after(self, stage: Stage) -> None:
        if self.opt.stop_after is stage:
            raise _Stopped

    def _run_stages(self, ctx: Context, judge: Judge | None, stage: list[Stage], timings: list[Timing]) -> None:
        runner: TrialRunner
        if judge is not None:
            runner = ReplayTrials(ctx, judge, limits=self.opt.limits, consistency_calls=self.opt.consistency_calls,
                                  rep_ms=self.opt.rep_ms, min_reps=self.opt.min_reps, max_reps=self.opt.max_reps)
        else:
            runner = SimulatedTrials(ctx, repeat_calls=self.opt.repeat_calls)

        since = [time.monotonic()]

        def enter(s: Stage) -> None:
            now = time.monotonic()
            ctx.add(f"stage {stage[0].value}", now - since[0])
            since[0] = now
            stage[0] = ctx.stage = s

        resp = ctx.sandbox.request({"op": "load", "path": "candidate.py"}, ctx.remaining(self.opt.load_timeout_s))
        if not resp.get("ok"):
            raise Rejected(Outcome.REJECTED, Stage.COMPILE, f"importing the candidate failed: {quoted(resp.get('error'))}")
        mode = self.platform.mode
        sweep = self.task.sweep(mode)
        benchmark = [Trial(self.task.label(c), c) for c in self.task.benchmark_cases()] if self.replayed else []
        runner.trial(sweep[0])  # compile and smoke
        self._stop_after(Stage.COMPILE)
        enter(Stage.SWEEP)
        for trial in sweep[1:] + benchmark:
            runner.trial(trial)
        self._stop_after(Stage.SWEEP)
        enter(Stage.STABILITY)
        for trial in self.task.stability_trials(mode):
            runner.trial(trial)
        self._stop_after(Stage.STABILITY)
        enter(Stage.DETERMINISM)
        runner.determinism(sweep[-1])
        self._stop_after(Stage.DETERMINISM)
        enter(Stage.ANTICHEAT)
        runner.consistency(benchmark or [sweep[-1]])
        self._stop_after(Stage.ANTICHEAT)
        if self.timing_enabled:
            enter(Stage.TIMING)
            timings += runner.time(self.task.benchmark_cases())
        enter(Stage.DONE)

