"""The sandboxed side: load the candidate and call its ``forward`` as the parent asks. It
judges nothing.

On a GPU a call is recorded (``harness.recorder``): what comes back is the launch plan, and
the trusted judge replays it elsewhere. In Triton's CPU interpreter there are no binaries to
replay, so ``run`` hands back the output itself: that is the simulation path, which trusts
what this process says and is used only where nothing is timed.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
import triton

from harness.cpu_share import share_cpu
from harness.guard import ComputeGuard, ComputeViolation, is_active
from harness.isolation import Report
from harness.plan import kernel_json, plan_json
from harness.protocol import Channel, write_tensor
from harness.recorder import Recorder, RecordingError
from harness.task import Task, get_task, returned

_TRACE_LIMIT = 4000
_KEPT_INPUTS = 16  # input sets kept for "reuse" calls, by case


class Runner:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.task: Task = get_task(cfg["task"])
        self.device: str = cfg["device"]
        self.io = Path("io")
        self.guard = ComputeGuard(replayed=self.device == "cuda")
        self.forward: Any = None
        self.recorder: Recorder | None = None
        if self.device == "cuda":
            self.recorder = Recorder()
            self.recorder.install()
        self._inputs: OrderedDict[str, list[torch.Tensor]] = OrderedDict()
        self._written: set[str] = set()

    def _sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def _call(self, inputs: list[torch.Tensor], case: dict[str, Any]) -> Any:
        self.guard.inputs = inputs
        with self.guard:
            out = self.task.call(self.forward, inputs, case)
            if not is_active(self.guard):
                self.guard.violations.append("the compute guard was removed from the dispatch stack")
        return out

    def _inputs_for(self, case: dict[str, Any], seed: int, reuse: bool) -> list[torch.Tensor]:
        """Fresh tensors, or (``reuse``) the ones of this case's last call refilled in place with
        other values: a candidate that caches by object or pointer shows a different plan."""
        key = self.task.label(case)
        if reuse and key in self._inputs:
            inputs = self._inputs[key]
            self._inputs.move_to_end(key)
            self.task.refill_inputs(inputs, case, seed)
            return inputs
        inputs = self.task.make_inputs(case, seed, self.device)
        self._inputs[key] = inputs
        while len(self._inputs) > _KEPT_INPUTS:
            self._inputs.popitem(last=False)
        return inputs

    def _write_once(self, name: str, data: bytes) -> str:
        if name not in self._written:
            (self.io / name).write_bytes(data)
            self._written.add(name)
        return name

    # -- operations ----------------------------------------------------------------------
    def load(self, req: dict[str, Any]) -> dict[str, Any]:
        spec = importlib.util.spec_from_file_location("candidate", Path(req["path"]))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["candidate"] = module
        spec.loader.exec_module(module)
        forward = getattr(module, "forward", None)
        if not callable(forward):
            return {"ok": False, "kind": "contract", "error": "the module has no callable `forward`"}
        self.forward = forward
        return {"ok": True}

    def call(self, req: dict[str, Any]) -> dict[str, Any]:
        """One call of forward on a GPU; recorded unless this is the warm-up that compiles."""
        assert self.recorder is not None
        case = req["case"]
        inputs = self._inputs_for(case, req["seed"], bool(req.get("reuse")))
        if not req.get("record"):
            self._call(inputs, case)
            self._sync()
            return {"ok": True, "problems": list(self.guard.violations)}
        sig = self.task.signature
        with self.recorder.recording(inputs, list(sig.inputs)) as rec:
            out = self._call(inputs, case)
        self._sync()
        if self.guard.violations:
            return {"ok": True, "problems": list(self.guard.violations)}
        outs = returned(out, sig.outputs)
        if isinstance(outs, str):
            raise RecordingError(outs)
        plan, snapshots = rec.finish(outs, sig.outputs)
        for sha, raw in snapshots.items():
            self._write_once(f"s_{sha}.bin", raw)
        kernels = {}
        for sha in plan.kernels():
            if f"k_{sha}.bin" not in self._written:
                self._write_once(f"k_{sha}.bin", self.recorder.binary(sha))
                kernels[sha] = kernel_json(next(s for s, _ in self.recorder.kernels.values() if s.sha256 == sha))
        return {"ok": True, "plan": plan_json(plan), "kernels": kernels, "problems": []}

    def run(self, req: dict[str, Any]) -> dict[str, Any]:
        """The simulation path: call forward (``repeat`` times, then once more on inputs refilled
        in place if asked) and hand back its output for the parent to compare."""
        case, tag = req["case"], req["tag"]
        inputs = self.task.make_inputs(case, req["seed"], self.device)
        out = None
        for _ in range(req.get("repeat", 1)):
            out = self._call(inputs, case)
        if req.get("refill_seed") is not None:
            self.task.refill_inputs(inputs, case, req["refill_seed"])
            out = self._call(inputs, case)
        outs = returned(out, self.task.signature.outputs)
        problems = list(self.guard.violations) + (
            [outs] if isinstance(outs, str) else _output_problems(self.task, outs, inputs, case))
        resp: dict[str, Any] = {"ok": True, "problems": problems}
        if not problems:
            resp["outs"] = [write_tensor(self.io, f"{tag}_out{i}.bin", t) for i, t in enumerate(outs)]  # type: ignore[arg-type]
            resp["inputs"] = [write_tensor(self.io, f"{tag}_in{i}.bin", t) for i, t in enumerate(inputs)]
        return resp


def _output_problems(task: Task, outs: list[torch.Tensor], inputs: list[torch.Tensor],
                     case: dict[str, Any]) -> list[str]:
    problems = []
    for spec, out in zip(task.outputs(case), outs):
        if tuple(out.shape) != spec.shape:
            problems.append(f"output {spec.name} shape {tuple(out.shape)} != expected {spec.shape}")
        if str(out.dtype).removeprefix("torch.") != spec.dtype:
            problems.append(f"output {spec.name} dtype {out.dtype} != expected {spec.dtype}")
        lo, hi = _span(out)
        for name, t in zip(task.signature.inputs, inputs):
            a, b = _span(t)
            if lo < b and a < hi:
                problems.append(f"output {spec.name} shares memory with input {name}")
    return problems


def _span(t: torch.Tensor) -> tuple[int, int]:
    storage = t.untyped_storage()
    return storage.data_ptr(), storage.data_ptr() + storage.nbytes()


def _describe(e: BaseException) -> dict[str, Any]:
    kind = "error"
    if isinstance(e, ComputeViolation):
        kind = "violation"
    elif isinstance(e, RecordingError):
        kind = "recording"
    elif type(e).__module__.startswith(("triton.compiler", "triton.runtime.errors")) or \
            type(e).__name__ in {"CompilationError", "OutOfResources", "CompileTimeAssertionFailure"}:
        kind = "compile"
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    return {"ok": False, "kind": kind, "error": f"{type(e).__name__}: {e}"[:2000], "traceback": tb[-_TRACE_LIMIT:]}


def serve(cfg: dict[str, Any], report: Report) -> None:
    chan = Channel(cfg["req_fd"], cfg["resp_fd"])
    Path("io").mkdir(exist_ok=True)
    if share_cpu(cfg["device"] == "cuda"):
        report.done.append("blocking-gpu-waits")
    runner = Runner(cfg)
    name = torch.cuda.get_device_name() if runner.device == "cuda" else "cpu (triton interpreter)"
    chan.send({"hello": {"isolation": report.done, "missing": report.missing, "device_name": name,
                         "torch": torch.__version__, "triton": triton.__version__}})
    ops = {"load": runner.load, "call": runner.call, "run": runner.run}
    while True:
        req = chan.recv()
        op = req.get("op")
        if op == "exit":
            chan.send({"ok": True})
            os._exit(0)
        try:
            resp = ops[op](req)
        except BaseException as e:  # the candidate may raise anything, SystemExit included
            resp = _describe(e)
        chan.send(resp)
