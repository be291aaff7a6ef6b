"""The dispatch table: every length lands in exactly one bucket, each bucket runs what its row
names (a kernel, or torch's default SDPA where that was as fast or faster), and every row and
kernel carries its provenance."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import qkv


def test_buckets_cover_every_length_once(attention) -> None:
    buckets = attention.TABLE.data["buckets"]
    assert buckets[0]["min_seq"] == 1 and buckets[-1]["max_seq"] is None
    for lower, upper in zip(buckets, buckets[1:]):
        assert upper["min_seq"] == lower["max_seq"] + 1
    for b in buckets:
        assert b["min_seq"] <= b["measured_seq"] and (b["max_seq"] is None or b["measured_seq"] <= b["max_seq"])


def test_each_length_runs_its_rows_choice(attention) -> None:
    table = attention.TABLE
    for row in table.data["table"]:
        dtype = getattr(torch, row["dtype"])
        probes = [row["min_seq"], row["measured_seq"], row["max_seq"] or 10 * row["measured_seq"]]
        for seq in probes:
            route = table.route_for(row["head_dim"], row["causal"], dtype, seq)
            assert route is not None and route.kernel == row["kernel"], (row, seq)
            assert table.runs_default(row["head_dim"], row["causal"], dtype, seq) == row["routed_to_default"]


def test_only_confirmed_rows_run_kernels(attention) -> None:
    """A row runs its kernel only when its whole interval over torch's default lies above 1."""
    for row in attention.TABLE.data["table"]:
        assert row["routed_to_default"] == (row["kernel"] is None)
        if row["kernel"]:
            assert row["baseline"].startswith("sdpa default") and row["speedup_low"] > 1.0, row


def test_rows_name_known_kernels_with_provenance(attention) -> None:
    kernels = attention.TABLE.kernels
    for row in attention.TABLE.data["table"]:
        assert row["kernel"] is None or row["kernel"] in kernels
        assert row["program"] and row["run"] and row["why"] and row["archived"]["evaluation"]
    for info in kernels.values():
        for key in ("run", "program", "evaluation", "device", "torch", "triton", "measured_at", "sha256"):
            assert info[key] not in (None, ""), key


def test_uncovered_head_dim_has_no_route(attention) -> None:
    assert not attention.TABLE.covers(48, False, torch.float16)
    assert attention.TABLE.route_for(48, False, torch.float16, 100) is None


def _default_rows(attention, device: str, dtypes: list[torch.dtype]) -> list[dict]:
    usable = {str(d).removeprefix("torch.") for d in dtypes}
    rows = [r for r in attention.TABLE.data["table"] if r["routed_to_default"] and r["dtype"] in usable]
    if not rows:
        pytest.skip("every bucket runs a kernel")
    return rows


def test_default_rows_call_torchs_sdpa(attention, device, dtypes, sdpa_calls) -> None:
    """In strict mode too, and with the result torch's SDPA gives."""
    for row in _default_rows(attention, device, dtypes):
        q, k, v = qkv((1, 1, row["min_seq"], row["head_dim"]), getattr(torch, row["dtype"]), device)
        before = len(sdpa_calls)
        out = attention.scaled_dot_product_attention(q, k, v, is_causal=row["causal"], strict=True)
        assert len(sdpa_calls) == before + 1, row
        torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=row["causal"]))


def test_default_rows_call_torchs_sdpa_when_compiled(attention, device, dtypes, sdpa_calls) -> None:
    row = _default_rows(attention, device, dtypes)[0]
    q, k, v = qkv((1, 1, row["min_seq"], row["head_dim"]), getattr(torch, row["dtype"]), device)
    compiled = torch.compile(lambda q, k, v: attention.scaled_dot_product_attention(q, k, v, is_causal=row["causal"],
                                                                                    strict=True),
                             fullgraph=True, backend="aot_eager")
    out = compiled(q, k, v)
    assert sdpa_calls, "the compiled call did not reach torch's SDPA"
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=row["causal"]))
