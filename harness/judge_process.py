"""The trusted judge: checks and times recorded plans, and never runs a candidate's Python.

``python -m harness.judge_process CONFIG_JSON``, spawned fresh for every check (a kernel that
faults poisons this process's CUDA context for good, so it is thrown away with the check). It
reads only files the trusted parent validated and wrote into its work directory, makes its own
inputs from seeds the sandboxed child never sees, computes each reference after the candidate's
kernels have run, and times candidate and baseline interleaved in one time window.

Answers are JSON lines. A failure is ``{"ok": false, "kind": K, "error": ...}`` with K one of
``candidate`` (its kernels or plan failed), ``crash`` (a CUDA error: this process is done for)
and ``harness`` (our own failure, retryable).
"""

from __future__ import annotations

import json
import random
import sys
import traceback
from pathlib import Path
from typing import Any

import torch
import triton

from harness.compare import compare_outputs
from harness.cpu_share import share_cpu
from harness.plan import Limits, MalformedPlan, check_launches, parse_kernel, parse_plan
from harness.protocol import Channel
from harness.replay import CandidateFault, Kernels, Replay
from harness.task import Task, get_task
from harness.timing import Contender, graphed, interleaved


class CandidateCrash(CandidateFault):
    """A CUDA error while the candidate's kernels ran: the context is lost."""


def _sync_after_candidate() -> None:
    try:
        torch.cuda.synchronize()
    except Exception as e:
        raise CandidateCrash(f"its kernels failed on the GPU: {type(e).__name__}: {str(e)[:300]}") from None


class Referee:
    def __init__(self, task: Task, workdir: Path) -> None:
        self.task, self.workdir = task, workdir
        self.kernels = Kernels(workdir / "loaded")
        self.limits = Limits()
        self._snapshots: dict[str, bytes] = {}
        # Timed outputs awaiting their check: (case, input tensors to refill, generator state, output).
        self._unverified: list[tuple[dict[str, Any], list[torch.Tensor], torch.Tensor, list[torch.Tensor]]] = []

    def _replay(self, plan_json: Any, like: list[torch.Tensor], rng: random.Random) -> Replay:
        plan = parse_plan(plan_json, self.limits)
        check_launches(plan, self.kernels.specs)
        for sha in plan.snapshots():
            if sha not in self._snapshots:
                self._snapshots[sha] = (self.workdir / f"s_{sha}.bin").read_bytes()
        return Replay(plan, self.kernels, self._snapshots, like, guard_byte=rng.randrange(1, 255))

    def kernels_op(self, req: dict[str, Any]) -> dict[str, Any]:
        info = {}
        for sha, spec_json in req["kernels"].items():
            spec = parse_kernel(spec_json, sha)
            info[sha] = self.kernels.load(spec, (self.workdir / f"k_{sha}.bin").read_bytes())
        return {"ok": True, "kernels": info}

    def check(self, req: dict[str, Any]) -> dict[str, Any]:
        """Replay on fresh inputs ``runs`` times; compare every run's outputs with the reference
        (computed afterwards), and say whether the runs agree bit for bit."""
        case, rng = req["case"], random.Random(req["seed"])
        made = self.task.make_inputs(case, rng.getrandbits(31), "cuda")
        replay = self._replay(req["plan"], made, rng)
        runs: list[list[torch.Tensor]] = []
        for _ in range(int(req.get("runs", 1))):
            replay.reset()
            for view, t in zip(replay.inputs, made):
                view.copy_(t)
            replay.launch()
            _sync_after_candidate()
            runs.append([o.contiguous().clone() for o in replay.outputs])
        intact = [bool(torch.equal(v.view(torch.uint8), t.view(torch.uint8))) for v, t in zip(replay.inputs, made)]
        guards = replay.guards_intact()
        refs, specs = self.task.reference(made, case), self.task.outputs(case)
        checked = [compare_outputs(outs, refs, specs) for outs in runs]
        cmp = next((c for c in checked if not c.ok), checked[0])  # every run against the reference
        same = all(torch.equal(a.view(torch.uint8), b.view(torch.uint8)) for outs in runs[1:] for a, b in zip(runs[0], outs))
        return {"ok": True, "passed": cmp.ok, "rel_err": cmp.rel_err, "max_abs_err": cmp.max_abs_err,
                "note": cmp.note, "inputs_intact": intact, "guards_intact": guards, "bitwise_equal": same}

    def warm(self, req: dict[str, Any]) -> dict[str, Any]:
        """The default baseline run once on the case's shape: its one-time set-up in this process
        (cuDNN builds and caches an execution plan per shape) then happens outside the exclusive
        hold of the GPU that timing takes."""
        case = req["case"]
        _, baseline = self.task.default_baseline(self.task.make_inputs(case, 0, "cuda"), case)
        baseline()
        torch.cuda.synchronize()
        return {"ok": True}

    def time(self, req: dict[str, Any]) -> dict[str, Any]:
        """The candidate's plan and the default baseline in turns (see ``_contest``)."""
        r = self._contest(req, [req["plan"]], with_baseline=True)
        return {**r, "samples": r["samples"][0]}

    def duel(self, req: dict[str, Any]) -> dict[str, Any]:
        """Two candidates' plans in turns (a candidate against the elite it would displace)."""
        return self._contest(req, req["plans"], with_baseline=False)

    def _contest(self, req: dict[str, Any], plans: list[Any], *, with_baseline: bool) -> dict[str, Any]:
        """``plans`` (and the baseline) interleaved, each on inputs refreshed before every call.
        The output of one turn of each plan, drawn at random, is kept with the state of the
        generator that made its inputs, for ``verify`` to check after the timing: the timing
        holds the GPU alone, and the reference need not."""
        case, rng = req["case"], random.Random(req["seed"])
        gen = torch.Generator(device="cuda").manual_seed(rng.getrandbits(31))
        replays: list[Replay] = []
        contenders: list[Contender] = []
        graphs: list[bool] = []
        for i, plan in enumerate(plans):
            replay = self._replay(plan, self.task.make_inputs(case, rng.getrandbits(31), "cuda"), rng)

            def prepare(replay: Replay = replay) -> None:
                replay.reset()
                self.task.randomize(replay.inputs, case, gen)

            prepare()
            replay.launch()
            _sync_after_candidate()
            run = graphed(replay.launch)
            replays.append(replay)
            contenders.append(Contender(f"plan {i}", run or replay.launch, prepare))
            graphs.append(run is not None)
        name = ""
        if with_baseline:
            theirs = self.task.make_inputs(case, rng.getrandbits(31), "cuda")
            name, baseline = self.task.default_baseline(theirs, case)
            run = graphed(baseline)
            contenders.append(Contender(name, run or baseline, lambda: self.task.randomize(theirs, case, gen)))
            graphs.append(run is not None)
        draws = [rng.random() for _ in replays]
        states: dict[int, torch.Tensor] = {}
        outputs: dict[int, list[torch.Tensor]] = {}

        def before(turn: int, who: int, turns: int) -> None:
            if who < len(replays) and turn == int(draws[who] * turns):
                states[who] = gen.get_state()

        def after(turn: int, who: int, turns: int) -> None:
            if who in states and who not in outputs:
                outputs[who] = [o.clone() for o in replays[who].outputs]

        samples = interleaved(contenders, rep_ms=float(req["rep_ms"]), min_reps=int(req["min_reps"]),
                              max_reps=int(req["max_reps"]), before=before, after=after)
        _sync_after_candidate()
        for i, replay in enumerate(replays):
            inputs = [torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=t.device) for t in replay.inputs]
            self._unverified.append((case, inputs, states[i], outputs[i]))
        return {"ok": True, "samples": samples[:len(replays)], "baseline_samples": samples[-1] if with_baseline else [],
                "baseline": name, "graphs": graphs, "guards_intact": all(r.guards_intact() for r in replays)}

    def verify(self, req: dict[str, Any]) -> dict[str, Any]:
        """Every output kept by the timings since the last ``verify``, in their order, compared
        with the reference on its inputs made again from the generator's saved state."""
        checked = []
        gen = torch.Generator(device="cuda")
        for case, inputs, state, outs in self._unverified:
            gen.set_state(state)
            self.task.randomize(inputs, case, gen)
            cmp = compare_outputs(outs, self.task.reference(inputs, case), self.task.outputs(case))
            checked.append({"passed": cmp.ok, "rel_err": cmp.rel_err, "note": cmp.note})
        self._unverified.clear()
        return {"ok": True, "checked": checked}


def main() -> None:
    cfg = json.loads(sys.argv[1])
    chan = Channel(cfg["req_fd"], cfg["resp_fd"])
    blocking = share_cpu(cuda=True)
    torch.cuda.init()
    triton.set_allocator(lambda size, align, stream: torch.empty(size, dtype=torch.int8, device="cuda"))
    referee = Referee(get_task(cfg["task"]), Path(cfg["workdir"]))
    chan.send({"hello": {"device_name": torch.cuda.get_device_name(), "torch": torch.__version__,
                         "triton": triton.__version__, "cudnn": torch.backends.cudnn.version(), "blocking_gpu_waits": blocking}})
    ops = {"kernels": referee.kernels_op, "check": referee.check, "warm": referee.warm, "time": referee.time,
           "duel": referee.duel, "verify": referee.verify}
    while True:
        req = chan.recv()
        if req.get("op") == "exit":
            return
        try:
            resp = ops[req["op"]](req)
        except CandidateCrash as e:
            resp = {"ok": False, "kind": "crash", "error": str(e)}
        except (CandidateFault, MalformedPlan) as e:
            resp = {"ok": False, "kind": "candidate", "error": str(e)}
        except Exception as e:
            resp = {"ok": False, "kind": "harness", "error": f"{type(e).__name__}: {e}",
                    "traceback": traceback.format_exc()[-4000:]}
        chan.send(resp)


if __name__ == "__main__":
    main()
