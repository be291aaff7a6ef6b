"""Trials on a GPU by trusted replay: the sandbox records, the judge replays, checks and times.

For each case the candidate's ``forward`` is called once to compile (and autotune), then
recorded twice: on fresh tensors, and on the same tensors refilled in place with other values.
The two plans must agree (a plan that depends on the data, or on whether the tensors are the
same objects, is rejected). The first is handed, validated, to the judge, which replays it on
inputs of its own and compares its output with a reference it computes afterwards. Later, many
more calls are recorded in shuffled order and must launch exactly what the first ones did, so
that a candidate cannot change its behaviour once it has been checked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from harness.judge import Judge, JudgeFailed
from harness.plan import (
    KernelSpec,
    Limits,
    MalformedPlan,
    Plan,
    check_launches,
    difference,
    kernel_json,
    parse_kernel,
    parse_plan,
    plan_json,
)
from harness.protocol import Malformed, read_regular
from harness.sandbox import SandboxTimeout
from harness.task import Determinism, Trial
from harness.timing import median
from harness.trials import Context, Rejected, TrialRunner, unlocked
from harness.verdict import Outcome, ShapeResult, Stage, Timing


class ReplayTrials(TrialRunner):
    def __init__(self, ctx: Context, judge: Judge, *, limits: Limits, consistency_calls: int, rep_ms: float,
                 min_reps: int, max_reps: int) -> None:
        super().__init__(ctx)
        self.judge, self.limits = judge, limits
        self.consistency_calls, self.rep_ms, self.min_reps, self.max_reps = consistency_calls, rep_ms, min_reps, max_reps
        self.specs: dict[str, KernelSpec] = {}
        self.loaded: set[str] = set()
        self.plans: dict[str, tuple[dict[str, Any], Plan]] = {}  # by case label: (case, plan)
        self.warm: set[str] = set()
        self.calls = 0

    # -- recording ---------------------------------------------------------------------
    def _record(self, case: dict[str, Any], reuse: bool, label: str) -> Plan:
        self.calls += 1
        msg = {"op": "call", "case": case, "seed": self.ctx.seed(), "record": True, "reuse": reuse}
        resp = self.ctx.ask(msg, label, self.ctx.gpu.shared)
        try:
            for sha, spec_json in _dict(resp.get("kernels")).items():
                if sha not in self.specs:
                    self._take_kernel(sha, spec_json)
            plan = parse_plan(resp.get("plan"), self.limits)
            check_launches(plan, self.specs)
            self._take_snapshots(plan)
        except (MalformedPlan, Malformed) as e:
            raise self.ctx.reject(f"{label}: its recorded launches are not a valid plan: {e}", Stage.ANTICHEAT) from None
        specs = self.ctx.task.outputs(case)
        if len(plan.outputs) != len(specs):
            raise self.ctx.reject(f"{label}: its plan has {len(plan.outputs)} outputs, the task {len(specs)}",
                                  Stage.ANTICHEAT)
        for spec, out in zip(specs, plan.outputs):
            if out.shape != spec.shape or out.dtype != spec.dtype:
                raise self.ctx.reject(f"{label}: forward returned as {spec.name} a {out.dtype} tensor of shape "
                                      f"{out.shape}, expected {spec.dtype} of shape {spec.shape}")
        return plan

    def _take_kernel(self, sha: str, spec_json: Any) -> None:
        spec = parse_kernel(spec_json, sha)
        binary = read_regular(self.ctx.sandbox.io, f"k_{sha}.bin", self.limits.kernel_bytes)
        if hashlib.sha256(binary).hexdigest() != sha:
            raise Malformed(f"kernel {spec.name}'s binary does not match its hash")
        self.judge.hand_over(f"k_{sha}.bin", binary)
        self.specs[sha] = spec

    def _take_snapshots(self, plan: Plan) -> None:
        total = 0
        for b in plan.buffers:
            sha = getattr(b.init, "sha256", None)
            if sha is None:
                continue
            total += b.nbytes
            if total > self.limits.snapshot_bytes:
                raise MalformedPlan(f"its buffers hold over {self.limits.snapshot_bytes >> 20} MiB of data before the "
                                    "first launch (only constant fills are free): allocate scratch inside forward")
            name = f"s_{sha}.bin"
            if name not in self.judge.handed:
                raw = read_regular(self.ctx.sandbox.io, name, self.limits.snapshot_bytes, expect=b.nbytes)
                if hashlib.sha256(raw).hexdigest() != sha:
                    raise Malformed("a buffer snapshot does not match its hash")
                self.judge.hand_over(name, raw)

    def plan(self, trial: Trial) -> Plan:
        """The trial's validated plan, recorded (twice, compared) the first time it is asked for."""
        case, label = trial.case, trial.label
        if label in self.plans:
            return self.plans[label][1]
        variant = self.ctx.task.variant(case)
        if variant not in self.warm:  # compilation is CPU work: keep it out of the GPU lock
            self.ctx.ask({"op": "call", "case": case, "seed": self.ctx.seed(), "record": False}, label)
            self.warm.add(variant)
        else:
            self.ctx.ask({"op": "call", "case": case, "seed": self.ctx.seed(), "record": False}, label, self.ctx.gpu.shared)
        first = self._record(case, False, label)
        second = self._record(case, True, f"{label}, called again on the same tensors refilled")
        diff = difference(first, second)
        if diff is not None:
            raise self.ctx.reject(f"{label}: what forward launches depends on the inputs' values or identity "
                                  f"(the same tensors refilled with other values): {diff}", Stage.ANTICHEAT)
        self._load(first)
        self.plans[label] = (case, first)
        return first

    def _load(self, plan: Plan) -> None:
        new = {sha: kernel_json(self.specs[sha]) for sha in plan.kernels() - self.loaded}
        if new:
            self._judge({"op": "kernels", "kernels": new}, "loading its kernels", Stage.COMPILE)
            self.loaded |= set(new)

    def _judge(self, msg: dict[str, Any], label: str, stage: Stage | None = None,
               lock: Callable[[], AbstractContextManager[None]] | None = None) -> dict[str, Any]:
        """One request to the judge under ``lock`` (default: the GPU shared with other checks)."""
        try:
            with self.ctx.locked(lock or self.ctx.gpu.shared, "judge"):
                return self.judge.request(msg, self.ctx.remaining())
        except JudgeFailed as e:
            where = stage or self.ctx.stage
            if e.kind == "candidate":
                raise Rejected(Outcome.REJECTED, where, f"{label}: {e}") from None
            if e.kind == "crash":
                raise Rejected(Outcome.CRASHED, where, f"{label}: {e}") from None
            if e.kind == "timeout":
                raise SandboxTimeout(f"{label}: {e}") from None
            raise RuntimeError(f"the judge failed: {e}") from None

    # -- the interface -----------------------------------------------------------------
    def _check(self, trial: Trial, runs: int) -> dict[str, Any]:
        plan = self.plan(trial)
        resp = self._judge({"op": "check", "plan": plan_json(plan), "case": trial.case, "seed": self.ctx.seed(),
                            "runs": runs}, trial.label)
        for name, intact in zip(self.ctx.task.signature.inputs, resp["inputs_intact"]):
            if not intact:
                raise self.ctx.reject(f"{trial.label}: its kernels modified the input {name}", Stage.ANTICHEAT)
        if not resp["guards_intact"]:
            raise self.ctx.reject(f"{trial.label}: its kernels wrote outside the buffers they were given",
                                  Stage.ANTICHEAT)
        return resp

    def trial(self, trial: Trial) -> None:
        resp = self._check(trial, 1)
        self.ctx.results.append(ShapeResult(trial.label, trial.case, resp["rel_err"], resp["max_abs_err"],
                                            resp["passed"], resp["note"]))
        if not resp["passed"]:
            where = "smoke test" if self.ctx.stage is Stage.COMPILE else trial.label
            raise self.ctx.reject(f"{where}: {resp['note']}")

    def determinism(self, trial: Trial) -> None:
        resp = self._check(trial, 3)
        if not resp["passed"]:
            raise self.ctx.reject(f"{trial.label}: one of three replays on the same inputs is wrong: {resp['note']}")
        if self.ctx.task.determinism is Determinism.BITWISE and not resp["bitwise_equal"]:
            raise self.ctx.reject(f"{trial.label}: three replays on the same inputs are not bitwise equal")

    def consistency(self, heavy: list[Trial]) -> None:
        """Every recorded case twice more and each of ``heavy`` ``consistency_calls`` times, in
        shuffled order, alternating fresh and reused tensors."""
        many = {t.label for t in heavy}
        calls = [label for label in self.plans for _ in range(self.consistency_calls if label in many else 2)]
        self.ctx.rng.shuffle(calls)
        for i, label in enumerate(calls):
            case, first = self.plans[label]
            plan = self._record(case, bool(i % 2), f"{label} (call {self.calls + 1} of forward)")
            diff = difference(first, plan)
            if diff is not None:
                raise self.ctx.reject(f"{label}: call {self.calls} of forward launched something else than its "
                                      f"first recorded calls: {diff}", Stage.ANTICHEAT)

    def _staged(self, cases: list[dict[str, Any]], *, baseline: bool) -> list[Trial]:
        """Every case recorded and (``baseline``) the baseline's one-time set-up done in the
        judge, under the shared lock, so that the exclusive hold that follows is spent timing."""
        trials = [Trial(self.ctx.task.label(case), case) for case in cases]
        for trial in trials:
            self.plan(trial)
            if baseline:
                self._judge({"op": "warm", "case": trial.case}, trial.label)
        return trials

    def _verified(self) -> list[dict[str, Any]]:
        """The checks of the outputs kept by the timings just done (the judge's ``verify``),
        made under the shared lock once the exclusive hold is over."""
        return list(self._judge({"op": "verify"}, "checking the outputs of timed calls")["checked"])

    def time(self, cases: list[dict[str, Any]]) -> list[Timing]:
        """All shapes timed in one exclusive hold of the GPU: each hold first waits for every
        shared use in flight to end, and the other checks stop while it is wanted."""
        out = []
        trials = self._staged(cases, baseline=True)
        with self.ctx.locked(self.ctx.gpu.exclusive, "gpu exclusive"):
            resps = [self._judge({"op": "time", "plan": plan_json(self.plan(t)), "case": t.case, "seed": self.ctx.seed(),
                                  "rep_ms": self.rep_ms, "min_reps": self.min_reps, "max_reps": self.max_reps},
                                 t.label, lock=unlocked) for t in trials]
        for trial, resp, checked in zip(trials, resps, self._verified()):
            case, label = trial.case, trial.label
            if not checked["passed"]:
                raise self.ctx.reject(f"{label}: the output of a timed call, drawn at random, is wrong: "
                                      f"{checked['note']}")
            if not resp["guards_intact"]:
                raise self.ctx.reject(f"{label}: its kernels wrote outside their buffers while timed", Stage.ANTICHEAT)
            ours, theirs = resp["samples"], resp["baseline_samples"]
            ms, base = median(ours), median(theirs)
            flops = self.ctx.task.flops(case)
            out.append(Timing(case, ms, base, resp["baseline"], flops / (ms * 1e-3) / 1e12,
                              flops / (base * 1e-3) / 1e12, samples=ours, baseline_samples=theirs))
        return out


    def duel(self, rival: ReplayTrials, cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """This candidate's plans and ``rival``'s (recorded in its own sandbox, loaded into the
        same judge) timed in turns on each case: ``label``, ``candidate`` and ``rival`` ms."""
        out = []
        trials = self._staged(cases, baseline=False)
        for trial in trials:
            rival.plan(trial)
        with self.ctx.locked(self.ctx.gpu.exclusive, "gpu exclusive"):
            resps = [self._judge({"op": "duel", "plans": [plan_json(self.plan(t)), plan_json(rival.plan(t))],
                                  "case": t.case, "seed": self.ctx.seed(), "rep_ms": self.rep_ms,
                                  "min_reps": self.min_reps, "max_reps": self.max_reps}, t.label, lock=unlocked)
                     for t in trials]
        verified = self._verified()
        for i, (trial, resp) in enumerate(zip(trials, resps)):
            for who, checked in zip(("candidate", "rival"), verified[2 * i: 2 * i + 2]):
                if not checked["passed"]:
                    raise self.ctx.reject(f"{trial.label}: the {who}'s output of a timed call, drawn at random, "
                                          f"is wrong: {checked['note']}")
            if not resp["guards_intact"]:
                raise self.ctx.reject(f"{trial.label}: kernels wrote outside their buffers while timed", Stage.ANTICHEAT)
            out.append({"label": trial.label, "candidate": resp["samples"][0], "rival": resp["samples"][1]})
        return out


def _dict(x: Any) -> dict[str, Any]:
    if not isinstance(x, dict):
        raise Malformed("a recording without its kernel table")
    return x
