"""The dispatch tables: every length of every (direction, group, head_dim, causal) lands in
exactly one bucket, each bucket runs what its row names (a kernel, or torch's default SDPA where
that was as fast or faster), grouped-query rows are found by their group only, and every row
and kernel carries its provenance."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import qkv


def test_buckets_cover_every_length_once(attention) -> None:
    families: dict[tuple, list[dict]] = {}
    for b in attention.TABLE.data["buckets"]:
        families.setdefault((b["direction"], b["group"], b["head_dim"], b["causal"]), []).append(b)
    rows = {(r["direction"], r["group"], r["head_dim"], r["causal"]) for r in attention.TABLE.data["table"]}
    assert set(families) == rows
    for buckets in families.values():
        assert buckets[0]["min_seq"] == 1 and buckets[-1]["max_seq"] is None
        for lower, upper in zip(buckets, buckets[1:]):
            assert upper["min_seq"] == lower["max_seq"] + 1
        for b in buckets:
            assert b["min_seq"] <= b["measured_seq"] and (b["max_seq"] is None or b["measured_seq"] <= b["max_seq"])


def test_each_length_runs_its_rows_choice(attention) -> None:
    table = attention.TABLE
    for row in table.data["table"]:
        dtype = getattr(torch, row["dtype"])
        d, causal, group, direction = row["head_dim"], row["causal"], row["group"], row["direction"]
        probes = [row["min_seq"], row["measured_seq"], row["max_seq"] or 10 * row["measured_seq"]]
        for seq in probes:
            route = table.route_for(d, causal, dtype, seq, group, direction)
            assert route is not None and route.kernel == row["kernel"], (row, seq)
            if direction == "forward":
                assert table.runs_default(d, causal, dtype, seq, group) == row["routed_to_default"]
            else:
                assert table.backward_kernel(d, causal, dtype, seq, group) == row["kernel"]


def test_grouped_query_rows_are_keyed_by_their_group(attention) -> None:
    """A group's rows serve that group only; no other group inherits them."""
    table = attention.TABLE
    for row in table.data["table"]:
        dtype = getattr(torch, row["dtype"])
        measured = {r["group"] for r in table.data["table"]
                    if (r["direction"], r["head_dim"], r["causal"], r["dtype"]) ==
                    (row["direction"], row["head_dim"], row["causal"], row["dtype"])}
        for group in set(range(1, 9)) - measured:
            assert table.route_for(row["head_dim"], row["causal"], dtype, row["min_seq"], group, row["direction"]) is None
    assert {r["group"] for r in table.data["table"] if r["direction"] == "backward"} <= {1}


def test_only_confirmed_rows_run_kernels(attention) -> None:
    """A row runs its kernel only when its whole interval over torch's default lies above 1."""
    for row in attention.TABLE.data["table"]:
        assert row["routed_to_default"] == (row["kernel"] is None)
        if row["kernel"]:
            assert row["baseline"].startswith("sdpa default") and row["speedup_low"] > 1.0, row
            assert attention.TABLE.kernels[row["kernel"]]["direction"] == row["direction"], row


def test_rows_name_known_kernels_with_provenance(attention) -> None:
    kernels = attention.TABLE.kernels
    for row in attention.TABLE.data["table"]:
        assert row["kernel"] is None or row["kernel"] in kernels
        assert row["program"] and row["run"] and row["why"] and row["archived"]["evaluation"]
    for info in kernels.values():
        for key in ("run", "program", "evaluation", "device", "torch", "triton", "measured_at", "sha256", "task",
                    "entry"):
            assert info[key] not in (None, ""), key


def test_uncovered_head_dim_has_no_route(attention) -> None:
    assert not attention.TABLE.covers(48, False, torch.float16)
    assert attention.TABLE.route_for(48, False, torch.float16, 100) is None


def _default_rows(attention, device: str, dtypes: list[torch.dtype]) -> list[dict]:
    usable = {str(d).removeprefix("torch.") for d in dtypes}
    rows = [r for r in attention.TABLE.data["table"]
            if r["routed_to_default"] and r["dtype"] in usable and r["direction"] == "forward"]
    if not rows:
        pytest.skip("every forward bucket runs a kernel")
    return rows


def _inputs(row: dict, device: str) -> list[torch.Tensor]:
    return qkv((1, row["group"], row["min_seq"], row["head_dim"]), getattr(torch, row["dtype"]), device,
               group=row["group"])


def test_default_rows_call_torchs_sdpa(attention, device, dtypes, sdpa_calls) -> None:
    """In strict mode too, and with the result torch's SDPA gives."""
    for row in _default_rows(attention, device, dtypes):
        q, k, v = _inputs(row, device)
        gqa = row["group"] > 1
        before = len(sdpa_calls)
        out = attention.scaled_dot_product_attention(q, k, v, is_causal=row["causal"], enable_gqa=gqa, strict=True)
        assert len(sdpa_calls) == before + 1, row
        torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=row["causal"],
                                                                       enable_gqa=gqa))


def test_default_rows_call_torchs_sdpa_when_compiled(attention, device, dtypes, sdpa_calls) -> None:
    row = _default_rows(attention, device, dtypes)[0]
    q, k, v = _inputs(row, device)
    gqa = row["group"] > 1
    compiled = torch.compile(lambda q, k, v: attention.scaled_dot_product_attention(q, k, v, is_causal=row["causal"],
                                                                                    enable_gqa=gqa, strict=True),
                             fullgraph=True, backend="aot_eager")
    out = compiled(q, k, v)
    assert sdpa_calls, "the compiled call did not reach torch's SDPA"
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=row["causal"], enable_gqa=gqa))
