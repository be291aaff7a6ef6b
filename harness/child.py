"""The sandboxed side: load the candidate, run it on inputs it is told to make, hand back
what it returned. It judges nothing: every verdict is computed by the parent.

Everything the checks depend on (torch, the task, the timer's CUDA primitives, the compute
guard) is imported before the candidate, so later monkeypatching cannot reach it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import torch
import triton

from harness.guard import ComputeGuard, ComputeViolation, is_active
from harness.isolation import Report
from harness.protocol import Channel, write_tensor
from harness.task import Task, get_task

_TRACE_LIMIT = 4000
# What a cheat would patch to fake a timing or a comparison. The harness does not rely on
# these (it times with C primitives and compares in another process); patching them is still
# reported, since no honest kernel has a reason to.
WATCHED = (
    "torch.cuda.Event.elapsed_time", "torch.cuda.Event.record", "torch.cuda.synchronize",
    "torch.cuda.current_stream", "torch.allclose", "torch.equal", "torch.testing.assert_close",
    "torch.Tensor.__eq__", "torch.Tensor.equal", "time.perf_counter", "time.time",
    "triton.testing.do_bench", "json.dumps",
)


def _resolve(path: str) -> Any:
    import importlib

    parts = path.split(".")
    obj: Any = importlib.import_module(parts[0])
    for p in parts[1:]:
        obj = getattr(obj, p, None)
    return obj


def _snapshot() -> dict[str, Any]:
    import json  # noqa: F401  (watched)
    import time  # noqa: F401  (watched)

    import triton.testing  # noqa: F401  (watched)

    return {name: _resolve(name) for name in WATCHED}


class Runner:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.task: Task = get_task(cfg["task"])
        self.device: str = cfg["device"]
        self.io = Path("io")
        self.guard = ComputeGuard()
        self.forward: Any = None
        self.bench = None
        self.calls = 0
        if self.device == "cuda":
            from harness.timing import Bench

            self.bench = Bench()
        self._batch: tuple[list[torch.Tensor], dict[str, Any]] | None = None
        self._watched = _snapshot()

    # -- helpers -----------------------------------------------------------------------
    def _sync(self) -> None:
        if self.bench is not None:
            self.bench.synchronize()

    def _poison(self, nbytes: int) -> None:
        """Leave NaN bit patterns in the allocator's free blocks: an output the kernel never
        writes then reads as NaN, not as whatever a previous tensor left there."""
        if self.device == "cuda":
            block = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
            block.fill_(0xFF)
            del block

    def _call(self, inputs: list[torch.Tensor], case: dict[str, Any]) -> Any:
        self.calls += 1
        with self.guard:
            out = self.task.call(self.forward, inputs, case)
            if not is_active(self.guard):
                self.guard.violations.append("the compute guard was removed from the dispatch stack")
        return out

    def _tampering(self) -> list[str]:
        return [f"the candidate patched {name}" for name, obj in self._watched.items() if _resolve(name) is not obj]

    def _problems(self, out: Any, inputs: list[torch.Tensor], case: dict[str, Any]) -> list[str]:
        problems = list(self.guard.violations) + self._tampering()
        shape, dtype = self.task.output_spec(case)
        if type(out) is not torch.Tensor:
            return problems + [f"forward returned {type(out).__name__}, not a plain torch.Tensor"]
        if tuple(out.shape) != tuple(shape):
            problems.append(f"output shape {tuple(out.shape)} != expected {tuple(shape)}")
        if str(out.dtype).removeprefix("torch.") != dtype:
            problems.append(f"output dtype {out.dtype} != expected {dtype}")
        if out.device.type != inputs[0].device.type:
            problems.append(f"output on {out.device}, inputs on {inputs[0].device}")
        lo, hi = _span(out)
        for name, t in zip("qkv", inputs):
            a, b = _span(t)
            if lo < b and a < hi:
                problems.append(f"output shares memory with input {name}")
        return problems

    def _send_inputs(self, inputs: list[torch.Tensor], spec: Any, tag: str) -> list[Any]:
        if spec == "full":
            return [write_tensor(self.io, f"{tag}_in{i}.bin", t) for i, t in enumerate(inputs)]
        if isinstance(spec, dict):  # a sample at indices drawn from the parent's seed
            g = torch.Generator().manual_seed(spec["seed"])
            out = []
            for i, t in enumerate(inputs):
                idx = torch.randint(0, t.numel(), (spec["count"],), generator=g).to(t.device)
                out.append(write_tensor(self.io, f"{tag}_in{i}.bin", t.reshape(-1)[idx]))
            return out
        return []

    # -- operations ----------------------------------------------------------------------
    def load(self, req: dict[str, Any]) -> dict[str, Any]:
        path = Path(req["path"])
        spec = importlib.util.spec_from_file_location("candidate", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["candidate"] = module
        spec.loader.exec_module(module)
        forward = getattr(module, "forward", None)
        if not callable(forward):
            return {"ok": False, "kind": "contract", "error": "the module has no callable `forward`"}
        self.forward = forward
        return {"ok": True, "problems": self._tampering()}

    def run(self, req: dict[str, Any]) -> dict[str, Any]:
        case, tag = req["case"], req["tag"]
        inputs = self.task.make_inputs(case, req["seed"], self.device)
        shape, _ = self.task.output_spec(case)
        self._poison(2 * inputs[0].numel() * inputs[0].element_size())
        out = None
        for _ in range(req.get("repeat", 1)):
            out = self._call(inputs, case)
        if req.get("refill_seed") is not None:
            self.task.refill_inputs(inputs, case, req["refill_seed"])
            out = self._call(inputs, case)
        self._sync()
        problems = self._problems(out, inputs, case)
        resp: dict[str, Any] = {"ok": True, "problems": problems}
        if type(out) is torch.Tensor and tuple(out.shape) == tuple(shape):
            resp["out"] = write_tensor(self.io, f"{tag}_out.bin", out)
        resp["inputs"] = self._send_inputs(inputs, req.get("inputs_back"), tag)
        return resp

    def warm(self, req: dict[str, Any]) -> dict[str, Any]:
        """One call on the case's inputs, so the compile happens outside the GPU lock."""
        case = req["case"]
        self._call(self.task.make_inputs(case, req["seed"], self.device), case)
        self._sync()
        return {"ok": True, "problems": list(self.guard.violations) + self._tampering()}

    def time(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.bench is None:
            return {"ok": False, "kind": "error", "error": "timing needs a GPU"}
        case = req["case"]
        inputs = self.task.make_inputs(case, req["seed"], self.device)
        samples = self.bench.samples(lambda: self._call(inputs, case), req["warmup_ms"], req["rep_ms"])
        return {"ok": True, "samples": samples, "problems": list(self.guard.violations) + self._tampering()}

    def prepare_batch(self, req: dict[str, Any]) -> dict[str, Any]:
        """Make inputs and warm up, so that ``run_batch`` does nothing but the calls."""
        case = req["case"]
        self._batch = (self.task.make_inputs(case, req["seed"], self.device), case)
        self._call(*self._batch)
        self._sync()
        return {"ok": True}

    def run_batch(self, req: dict[str, Any]) -> dict[str, Any]:
        """``n`` calls back to back, then a device-wide sync: the parent times this from outside."""
        for _ in range(req["n"]):
            self._call(*self._batch)
        self._sync()
        return {"ok": True, "problems": list(self.guard.violations) + self._tampering()}


def _span(t: torch.Tensor) -> tuple[int, int]:
    storage = t.untyped_storage()
    start = storage.data_ptr()
    return start, start + storage.nbytes()


def _describe(e: BaseException) -> dict[str, Any]:
    kind = "error"
    if isinstance(e, ComputeViolation):
        kind = "violation"
    elif type(e).__module__.startswith(("triton.compiler", "triton.runtime.errors")) or \
            type(e).__name__ in {"CompilationError", "OutOfResources", "CompileTimeAssertionFailure"}:
        kind = "compile"
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    return {"ok": False, "kind": kind, "error": f"{type(e).__name__}: {e}"[:2000], "traceback": tb[-_TRACE_LIMIT:]}


def serve(cfg: dict[str, Any], report: Report) -> None:
    chan = Channel(cfg["req_fd"], cfg["resp_fd"])
    Path("io").mkdir(exist_ok=True)
    runner = Runner(cfg)
    name = torch.cuda.get_device_name() if runner.device == "cuda" else "cpu (triton interpreter)"
    chan.send({"hello": {"isolation": report.done, "missing": report.missing, "device_name": name,
                         "torch": torch.__version__, "triton": triton.__version__}})
    ops = {"load": runner.load, "warm": runner.warm, "run": runner.run, "time": runner.time,
           "prepare_batch": runner.prepare_batch, "run_batch": runner.run_batch}
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
