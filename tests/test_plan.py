"""Launch plans: recording maps launches onto buffers, plans survive serialization, and what the
child hands back is validated before the judge sees any of it.

The recorder's bookkeeping runs on CPU tensors here (their storages have addresses too); the
interception of real Triton launches and the replay are GPU tests (tests/test_replay_gpu.py).
"""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from harness.plan import (
    Descriptor,
    Fill,
    KernelSpec,
    Limits,
    MalformedPlan,
    Pointer,
    Scalar,
    Snapshot,
    check_launches,
    difference,
    kernel_json,
    parse_kernel,
    parse_plan,
    plan_json,
)
from harness.recorder import Recording, RecordingError
from harness.task import returned

SIG = (("Q", "*fp16"), ("K", "*fp16"), ("V", "*fp16"), ("Out", "*fp16"), ("T", "*fp32"), ("scale", "fp32"),
       ("N", "i32"), ("BLOCK", "constexpr"))
SHA = "a" * 64


def poisoned(*shape: int, dtype: torch.dtype = torch.float16) -> torch.Tensor:
    t = torch.empty(*shape, dtype=dtype)
    t.view(torch.uint8).fill_(0xFF)
    return t


def inputs() -> list[torch.Tensor]:
    return [torch.randn(2, 3, 8, 16).half() for _ in range(3)]


def record(ins: list[torch.Tensor], out: torch.Tensor, table: torch.Tensor, scale: float = 0.125) -> Recording:
    rec = Recording(ins, ["q", "k", "v"])
    q, k, v = ins
    rec.launch(SHA, SIG, (4, 6, 1), (q, k, v, out, table, scale, 8, 64))
    rec.launch(SHA, SIG, (1, 1, 1), (q[1], k, v, out[1], table, scale, 8, 64))  # views: offsets into buffers
    return rec


def test_buffers_are_numbered_inputs_first_then_by_first_use_with_offsets_for_views() -> None:
    ins, out, table = inputs(), poisoned(2, 3, 8, 16), torch.arange(10, dtype=torch.float32)
    plan, snapshots = record(ins, out, table).finish([out])
    assert [b.input for b in plan.buffers] == [0, 1, 2, None, None]
    assert plan.launches[0].args[:5] == tuple(Pointer(i, 0) for i in range(5))
    assert plan.launches[1].args[0] == Pointer(0, 3 * 8 * 16 * 2) and plan.launches[1].args[3] == Pointer(3, 768)
    assert plan.launches[0].args[5:] == (Scalar(0.125), Scalar(8), None)
    assert plan.buffers[3].init == Fill(0xFFFFFFFF)  # the allocator's poison: nothing written yet
    assert isinstance(plan.buffers[4].init, Snapshot)  # a table whose contents matter, kept byte for byte
    assert snapshots[plan.buffers[4].init.sha256] == table.numpy().tobytes()
    assert plan.outputs[0].buffer == 3 and plan.outputs[0].shape == (2, 3, 8, 16) and plan.outputs[0].dtype == "float16"


def test_a_buffer_is_captured_as_it_was_before_its_first_launch() -> None:
    ins, out = inputs(), poisoned(2, 3, 8, 16)
    table = torch.zeros(16, dtype=torch.float32)
    rec = Recording(ins, ["q", "k", "v"])
    rec.launch(SHA, SIG, (1, 1, 1), (*ins, out, table, 1.0, 8, 64))
    table.fill_(3.0)  # what the launch "wrote"; the replay must start from zeros again
    plan, _ = rec.finish([out])
    assert plan.buffers[4].init == Fill(0)


def test_two_recordings_of_the_same_behaviour_are_equal_whatever_the_addresses() -> None:
    out, out2 = poisoned(2, 3, 8, 16), poisoned(2, 3, 8, 16)
    first = record(inputs(), out, torch.arange(10.0)).finish([out])[0]
    second = record(inputs(), out2, torch.arange(10.0)).finish([out2])[0]
    assert difference(first, second) is None


def test_recordings_that_differ_name_the_first_difference() -> None:
    out, out2, out3 = poisoned(2, 3, 8, 16), poisoned(2, 3, 8, 16), poisoned(2, 3, 8, 16)
    base = record(inputs(), out, torch.arange(10.0)).finish([out])[0]
    other_scale = record(inputs(), out2, torch.arange(10.0), scale=0.5).finish([out2])[0]
    assert "argument 5 of launch 1 differs (0.125 vs 0.5)" in (difference(base, other_scale) or "")
    ins = inputs()
    once = Recording(ins, ["q", "k", "v"])
    once.launch(SHA, SIG, (4, 6, 1), (*ins, out3, torch.arange(10.0), 0.125, 8, 64))
    assert "2 launches in one recording, 1 in another" in (difference(base, once.finish([out3])[0]) or "")


def test_forward_must_return_a_tensor_its_launches_were_given_and_not_an_input() -> None:
    ins = inputs()
    rec = Recording(ins, ["q", "k", "v"])
    out = poisoned(2, 3, 8, 16)
    rec.launch(SHA, SIG, (1, 1, 1), (*ins, out, torch.arange(10.0), 1.0, 8, 64))
    with pytest.raises(RecordingError, match="none of its kernel launches was given"):
        rec.finish([poisoned(2, 3, 8, 16)])
    with pytest.raises(RecordingError, match=r"\(a view of\) its input k"):
        rec.finish([ins[1][:, :1]])
    assert "not a plain torch.Tensor" in returned([out], ("o",))  # type: ignore[operator]
    assert "a tuple of 3 tensors (dq, dk, dv)" in returned(out, ("dq", "dk", "dv"))  # type: ignore[operator]
    assert returned((out, out), ("a", "b")) == [out, out]


def test_a_pointer_that_is_not_a_tensor_cannot_be_recorded() -> None:
    rec = Recording(inputs(), ["q", "k", "v"])
    with pytest.raises(RecordingError, match="not a torch tensor"):
        rec.launch(SHA, SIG, (1, 1, 1), (12345, 0, 0, 0, 0, 1.0, 8, 64))


def test_storages_that_overlap_become_one_buffer() -> None:
    ins = inputs()
    arena = poisoned(4096, dtype=torch.uint8)
    a = torch.empty(0, dtype=torch.uint8).set_(arena.untyped_storage(), 0, (2048,))
    # A second storage over the same memory, as an allocator reusing freed memory would make.
    b = torch.frombuffer(memoryview(arena.numpy()), dtype=torch.uint8)[1024:3072]
    rec = Recording(ins, ["q", "k", "v"])
    sig = (("A", "*u8"), ("B", "*u8"))
    rec.launch(SHA, sig, (1, 1, 1), (a, b))
    plan, _ = rec.finish([a])
    assert len(plan.buffers) == 4 and plan.launches[0].args == (Pointer(3, 0), Pointer(3, 1024))


def test_a_plan_survives_serialization_and_validation() -> None:
    out = poisoned(2, 3, 8, 16)
    plan, snaps = record(inputs(), out, torch.arange(10.0)).finish([out])
    again = parse_plan(json.loads(json.dumps(plan_json(plan))), Limits())
    assert again == plan
    check_launches(again, {SHA: KernelSpec(SHA, "k", SIG, {})})


def spec_json() -> dict:
    return {"name": "_attn_fwd", "signature": [[n, t] for n, t in SIG] + [["pair", ["i32", "*bf16"]]],
            "metadata": {"name": "_attn_fwd", "num_warps": 8, "num_ctas": 1, "shared": 65536,
                         "global_scratch_size": 0, "global_scratch_align": 1,
                         "target": {"backend": "cuda", "arch": 90, "warp_size": 32}}}


def test_kernel_specs_are_validated_and_round_trip() -> None:
    spec = parse_kernel(spec_json(), SHA)
    assert spec.signature[-1] == ("pair", ["i32", "*bf16"]) and parse_kernel(kernel_json(spec), SHA) == spec
    for bad, why in [
        ({"signature": [["Q", "*fp16; system(\"x\")"]]}, "bad parameter type"),
        ({"signature": [["Q", "int"]]}, "bad parameter type"),
        ({"name": "x y"}, "identifier"),
        ({"metadata": {**spec_json()["metadata"], "num_warps": 1000}}, "out of range"),
        ({"metadata": {**spec_json()["metadata"], "target": {"backend": "hip", "arch": 90, "warp_size": 32}}}, "CUDA"),
        ({"extra": 1}, "keys among"),
    ]:
        with pytest.raises(MalformedPlan, match=why):
            parse_kernel({**spec_json(), **bad}, SHA)
    with pytest.raises(MalformedPlan, match="sha256"):
        parse_kernel(spec_json(), "not-a-hash")


def good_plan() -> dict:
    return {"buffers": [{"nbytes": 1024, "input": i, "input_offset": 0, "init": None} for i in range(3)]
            + [{"nbytes": 1024, "input": None, "input_offset": 0, "init": {"fill": 0xFFFFFFFF}}],
            "launches": [{"kernel": SHA, "grid": [4, 1, 1],
                          "args": [{"p": [0, 0]}, {"p": [1, 0]}, {"p": [2, 0]}, {"p": [3, 0]}, {"p": [3, 512]},
                                   {"f": 0.5}, {"i": 8}, None]}],
            "outputs": [{"buffer": 3, "offset": 0, "shape": [2, 256], "strides": [256, 1], "dtype": "float16"}]}


@pytest.mark.parametrize(("edit", "why"), [
    (lambda p: p["buffers"].pop(), "pointer buffer must be an integer"),
    (lambda p: p["outputs"][0].update(buffer=0), "lies in an input's buffer"),
    (lambda p: p["outputs"][0].update(shape=[4, 256]), "does not lie within its buffer"),
    (lambda p: p["outputs"][0].update(dtype="int64"), "output dtype"),
    (lambda p: p["buffers"][3].update(nbytes=1 << 50), "buffer size"),
    (lambda p: p["buffers"][3].update(init=None), "need one"),
    (lambda p: p["buffers"][0].update(input=1), "exactly one buffer"),
    (lambda p: p["buffers"][3].update(init={"snapshot": "../../etc/passwd"}), "snapshot hash"),
    (lambda p: p["launches"][0].update(grid=[1, 1 << 20, 1]), "CUDA's limits"),
    (lambda p: p["launches"][0]["args"].append({"p": [9, 0]}), "pointer buffer"),
    (lambda p: p["launches"][0]["args"].append({"f": float("inf")}), "finite"),
    (lambda p: p["launches"][0]["args"].append({"i": True}), "integer argument"),
    (lambda p: p["launches"][0]["args"].append({"p": [0, 0], "i": 1}), "exactly one kind"),
    (lambda p: p.update(extra=1), "keys among"),
    (lambda p: p.update(launches=[p["launches"][0]] * 65), "at most 64 launches"),
])
def test_a_malformed_plan_is_refused_with_a_reason(edit, why) -> None:  # type: ignore[no-untyped-def]
    plan = good_plan()
    edit(plan)
    with pytest.raises(MalformedPlan, match=why):
        parse_plan(plan, Limits())


def test_launches_must_fit_the_kernel_they_name() -> None:
    spec = KernelSpec(SHA, "k", SIG, {})
    plan = parse_plan(good_plan(), Limits())
    check_launches(plan, {SHA: spec})
    with pytest.raises(MalformedPlan, match="not handed over"):
        check_launches(plan, {})
    for i, arg, why in [(5, {"i": 1}, "does not fit its type fp32"), (0, {"f": 1.0}, "does not fit"),
                        (7, {"i": 3}, "constexpr"), (3, {"p": [3, 4096]}, "outside its buffer")]:
        bad = good_plan()
        bad["launches"][0]["args"][i] = arg
        with pytest.raises(MalformedPlan, match=why):
            check_launches(parse_plan(bad, Limits()), {SHA: spec})


def test_a_tensor_descriptor_must_lie_wholly_inside_its_buffer() -> None:
    sig = (("desc", "tensordesc<fp16[16, 64]>"),)
    spec = KernelSpec(SHA, "k", sig, {})
    inside = Descriptor(Pointer(3, 0), (8, 64), (64, 1), (16, 64), "zero")
    outside = Descriptor(Pointer(3, 0), (9, 64), (64, 1), (16, 64), "zero")  # 9 rows of 128 bytes > 1024
    for d, ok in ((inside, True), (outside, False)):
        plan = parse_plan(good_plan(), Limits())
        plan = type(plan)(plan.buffers, (type(plan.launches[0])(SHA, (1, 1, 1), (d,)),), plan.outputs)
        plan = parse_plan(plan_json(plan), Limits())
        if ok:
            check_launches(plan, {SHA: spec})
        else:
            with pytest.raises(MalformedPlan, match="outside its buffer"):
                check_launches(plan, {SHA: spec})


def test_snapshot_names_are_their_contents_hash() -> None:
    table = torch.arange(10.0)
    ins, out = inputs(), poisoned(2, 3, 8, 16)
    plan, snaps = record(ins, out, table).finish([out])
    (sha, raw), = snaps.items()
    assert hashlib.sha256(raw).hexdigest() == sha == plan.snapshots().pop()
