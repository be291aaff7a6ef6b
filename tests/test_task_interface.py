"""The task interface as data: a signature the gate and prompts use, outputs compared each with
its own tolerance, and plans that carry several outputs in the task's order."""

from __future__ import annotations

import torch

from harness.compare import compare_outputs
from harness.plan import Limits, parse_plan, plan_json
from harness.recorder import Recording
from harness.static_gate import check_source
from harness.task import OutputSpec, Signature, Tolerance

BWD = Signature(("q", "k", "v", "o", "do", "lse"), ("causal: bool", "sm_scale: float"), ("dq", "dk", "dv"))
LOOSE, TIGHT = Tolerance(rel=1e-1, atol=1e-1, rtol=1e-1), Tolerance(rel=1e-6, atol=1e-6, rtol=1e-6)


def test_a_signature_reads_as_the_entry_point_it_describes() -> None:
    assert BWD.text() == "forward(q, k, v, o, do, lse, causal: bool, sm_scale: float) -> (dq, dk, dv)"
    assert BWD.arity() == 8


def test_the_static_gate_asks_for_the_tasks_own_parameters() -> None:
    source = "import triton\n@triton.jit\ndef k(x):\n    pass\ndef forward(q, k, v, causal, sm_scale):\n    pass\n"
    assert check_source(source).ok
    gate = check_source(source, BWD)
    assert not gate.ok and "must take (q, k, v, o, do, lse, causal, sm_scale)" in gate.reason


def test_each_output_is_compared_with_its_own_tolerance_and_a_failure_names_it() -> None:
    ref = [torch.ones(4, 4, dtype=torch.float64) for _ in range(2)]
    outs = [r + 1e-3 for r in ref]
    specs = [OutputSpec("dk", (4, 4), "float32", LOOSE), OutputSpec("dv", (4, 4), "float32", TIGHT)]
    cmp = compare_outputs(outs, ref, specs)
    assert not cmp.ok and cmp.note.startswith("dv: relative error")
    assert compare_outputs(outs, ref, [specs[0], specs[0]]).ok


def test_a_plan_keeps_several_outputs_in_order_through_its_wire_format() -> None:
    sig = (("Q", "*fp16"), ("A", "*fp16"), ("B", "*fp16"))
    q = torch.randn(8, 8).half()
    a, b = torch.empty(8, 8).half(), torch.empty(8, 8).half()
    rec = Recording([q], ["q"])
    rec.launch("a" * 64, sig, (1, 1, 1), (q, a, b))
    plan, _ = rec.finish([b, a], ("dk", "dv"))
    again = parse_plan(plan_json(plan), Limits())
    assert again == plan and [o.buffer for o in plan.outputs] == [2, 1]
