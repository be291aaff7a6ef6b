"""Trials in Triton's CPU interpreter: the untrusted simulation path.

There is no binary to replay here, so the sandbox hands back the outputs it computed and the
parent compares them with its own float64 reference. A candidate's Python controls that
process and could fake those outputs; this path exists so that searches can be simulated and
the harness tested without a GPU, and it never produces a timing.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from harness.compare import compare_outputs
from harness.protocol import Malformed, read_tensor
from harness.task import Determinism, Trial
from harness.trials import TrialRunner
from harness.verdict import ShapeResult, Stage, Timing


class SimulatedTrials(TrialRunner):
    def __init__(self, ctx: Any, *, repeat_calls: int) -> None:
        super().__init__(ctx)
        self.repeat_calls = repeat_calls

    def _run(self, trial: Trial, *, seed: int | None = None, repeat: int = 1, refill: bool = False) -> list[torch.Tensor]:
        ctx = self.ctx
        ctx.tags += 1
        seed = ctx.seed() if seed is None else seed
        refill_seed = ctx.seed() if refill else None
        resp = ctx.ask({"op": "run", "tag": f"t{ctx.tags}", "case": trial.case, "seed": seed, "repeat": repeat,
                        "refill_seed": refill_seed}, trial.label)
        # The inputs as the last call saw them: refilled ones for a refill trial.
        pristine = ctx.task.make_inputs(trial.case, seed if refill_seed is None else refill_seed, "cpu")
        specs = ctx.task.outputs(trial.case)
        try:
            for name, desc, want in zip(ctx.task.signature.inputs, resp.get("inputs") or [], pristine):
                got = read_tensor(ctx.sandbox.io, desc, max_bytes=want.numel() * want.element_size())
                if got.shape != want.shape or not torch.equal(got.view(torch.uint8), want.contiguous().view(torch.uint8)):
                    raise ctx.reject(f"{trial.label}: forward modified its input {name}", Stage.ANTICHEAT)
            descs = resp.get("outs")
            if not isinstance(descs, list) or len(descs) != len(specs):
                raise Malformed(f"{len(specs)} outputs were expected")
            outs = [read_tensor(ctx.sandbox.io, d, max_bytes=math.prod(s.shape) * 8) for d, s in zip(descs, specs)]
        except Malformed as e:
            raise ctx.reject(f"{trial.label}: its process handed back a malformed tensor: {e}") from None
        for f in ctx.sandbox.io.iterdir():
            f.unlink()
        cmp = compare_outputs(outs, ctx.task.reference(pristine, trial.case), specs)
        ctx.results.append(ShapeResult(trial.label, trial.case, cmp.rel_err, cmp.max_abs_err, cmp.ok, cmp.note))
        if not cmp.ok:
            where = "smoke test" if ctx.stage is Stage.COMPILE else trial.label
            raise ctx.reject(f"{where}: {cmp.note}")
        return outs

    def trial(self, trial: Trial) -> None:
        self._run(trial)

    def determinism(self, trial: Trial) -> None:
        seed = self.ctx.seed()
        runs = [self._run(Trial(f"{trial.label} (determinism {i + 1}/3)", trial.case), seed=seed) for i in range(3)]
        if self.ctx.task.determinism is not Determinism.BITWISE:
            return  # each run passed its comparison with the reference
        for i in (1, 2):
            if not all(torch.equal(a.view(torch.uint8), b.view(torch.uint8)) for a, b in zip(runs[0], runs[i])):
                raise self.ctx.reject(f"{trial.label}: run {i + 1} differs bitwise from run 1 on the same inputs")

    def consistency(self, heavy: list[Trial]) -> None:
        for trial in heavy:
            self._run(Trial(f"{trial.label} ({self.repeat_calls} calls)", trial.case), repeat=self.repeat_calls)
            self._run(Trial(f"{trial.label} (inputs refilled in place)", trial.case), refill=True)

    def time(self, cases: list[dict[str, Any]]) -> list[Timing]:
        raise NotImplementedError("the simulation path never times: its numbers would come from the candidate")
