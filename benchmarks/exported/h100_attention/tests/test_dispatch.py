"""The dispatch table: every length lands in exactly one bucket, each bucket runs the kernel
its row names, and every kernel carries its provenance."""

from __future__ import annotations

import torch


def test_buckets_cover_every_length_once(attention) -> None:
    buckets = attention.TABLE.data["buckets"]
    assert buckets[0]["min_seq"] == 1 and buckets[-1]["max_seq"] is None
    for lower, upper in zip(buckets, buckets[1:]):
        assert upper["min_seq"] == lower["max_seq"] + 1
    for b in buckets:
        assert b["min_seq"] <= b["measured_seq"] and (b["max_seq"] is None or b["measured_seq"] <= b["max_seq"])


def test_each_length_runs_its_rows_kernel(attention) -> None:
    table = attention.TABLE
    for row in table.data["table"]:
        dtype = getattr(torch, row["dtype"])
        probes = [row["min_seq"], row["measured_seq"], row["max_seq"] or 10 * row["measured_seq"]]
        for seq in probes:
            assert table.kernel_for(row["head_dim"], row["causal"], dtype, seq) == row["kernel"], (row, seq)


def test_rows_name_known_kernels_with_provenance(attention) -> None:
    kernels = attention.TABLE.kernels
    for row in attention.TABLE.data["table"]:
        assert row["kernel"] in kernels
    for info in kernels.values():
        for key in ("run", "program", "evaluation", "device", "torch", "triton", "measured_at", "sha256"):
            assert info[key] not in (None, ""), key


def test_uncovered_head_dim_has_no_kernel(attention) -> None:
    assert not attention.TABLE.covers(48, False, torch.float16)
    assert attention.TABLE.kernel_for(48, False, torch.float16, 100) is None
