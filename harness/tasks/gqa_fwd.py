"""``gqa_fwd``: grouped-query attention forward. q is (batch, heads, seq, head_dim); k and v are
(batch, kv_heads, seq, head_dim) with heads = g · kv_heads; query head h attends with k/v head
h // g, as SDPA's ``enable_gqa`` does (g = 1 is MHA, kv_heads = 1 is MQA). A case is an
``mha_fwd`` case with ``kv_heads`` added; everything else (scales, tolerance, FLOPs over the
query heads) is ``mha_fwd``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from harness.task import Trial, register
from harness.tasks.mha_fwd import (
    DTYPES,
    MhaForward,
    case,
    default_backend,
    exact_dtype,
    naive_attention,
    sdpa,
    sm_scale_of,
)

# (heads, kv_heads) of the benchmark: Llama 3 (8B at head_dim 128, 1B and 3B at 64) and Mistral 7B.
BENCHMARK_HEADS = (32, 8)


def gqa_case(batch: int, heads: int, kv_heads: int, seq: int, head_dim: int, causal: bool, dtype: str,
             **extra: Any) -> dict[str, Any]:
    return case(batch, heads, seq, head_dim, causal, dtype, kv_heads=kv_heads, **extra)


@register
class GqaForward(MhaForward):
    name = "gqa_fwd"
    description = "grouped-query attention forward: q (B, H, N, D), k and v (B, Hkv, N, D), causal flag, sm_scale"

    def label(self, c: dict[str, Any]) -> str:
        head = super().label(c)
        return head.replace(f" H{c['heads']} ", f" H{c['heads']}/{c['kv_heads']} ", 1)

    def variant(self, c: dict[str, Any]) -> str:
        return f"{super().variant(c)} g{c['heads'] // c['kv_heads']}"

    def _values(self, c: dict[str, Any], seed: int, device: str) -> list[torch.Tensor]:
        g = torch.Generator(device=device).manual_seed(seed)
        dtype = DTYPES[c["dtype"]]
        shapes = [(c["batch"], h, c["seq"], c["head_dim"]) for h in (c["heads"], c["kv_heads"], c["kv_heads"])]
        scales = (c.get("qk_scale", 1.0), c.get("qk_scale", 1.0), c.get("v_scale", 1.0))
        return [(torch.randn(shape, generator=g, device=device, dtype=torch.float32) * s).to(dtype)
                for shape, s in zip(shapes, scales)]

    def reference(self, inputs: list[torch.Tensor], c: dict[str, Any]) -> list[torch.Tensor]:
        group = c["heads"] // c["kv_heads"]
        q, k, v = (t.to(exact_dtype(t)) for t in inputs)
        k, v = (t.repeat_interleave(group, dim=1) for t in (k, v))
        return [naive_attention(q, k, v, bool(c["causal"]), sm_scale_of(c))]

    def sweep(self, mode: str) -> list[Trial]:
        if mode == "interpreter":
            cases = [
                gqa_case(1, 4, 2, 17, 64, False, "float16"),  # smoke
                gqa_case(2, 4, 1, 37, 64, True, "float16", sm_scale=0.3),  # MQA
                gqa_case(1, 6, 2, 45, 128, True, "float16"),
                gqa_case(1, 8, 1, 29, 32, False, "float32", sm_scale=0.05),
                gqa_case(1, 2, 2, 70, 64, False, "float16"),  # g = 1: plain MHA
                gqa_case(1, 8, 2, 300, 64, False, "float16"),
                gqa_case(1, 4, 2, 40, 64, True, "float16", v_scale=1e-3),
            ]
        else:
            cases = [gqa_case(2, 8, 2, 127, 64, False, "bfloat16")]  # smoke
            for d in (64, 128):
                for causal in (False, True):
                    for n, b, (h, kv) in ((1, 2, (4, 1)), (17, 2, (8, 2)), (127, 2, (6, 3)), (1000, 2, (8, 1)),
                                          (4097, 1, (8, 4))):
                        extra = {"sm_scale": 0.3} if n == 1000 and causal else {}
                        cases.append(gqa_case(b, h, kv, n, d, causal, "bfloat16", **extra))
            cases += [
                gqa_case(2, 8, 8, 1000, 64, False, "float16"),
                gqa_case(1, 32, 8, 4097, 128, True, "float16"),
                gqa_case(2, 4, 2, 1000, 128, False, "bfloat16", v_scale=1e-3),
            ]
        return [Trial(self.label(c), c) for c in cases]

    def stability_trials(self, mode: str) -> list[Trial]:
        n, dtype = (33, "float16") if mode == "interpreter" else (1000, "bfloat16")
        cases = [gqa_case(1, 4, 1, n, 64, causal, dtype, qk_scale=12.0) for causal in (False, True)]
        return [Trial(self.label(c), c) for c in cases]

    SHAPE_FIELDS = (*MhaForward.SHAPE_FIELDS, "kv_heads")

    def benchmark_case(self, shape: dict[str, Any]) -> dict[str, Any]:
        c = super().benchmark_case(shape)
        if c["heads"] % c["kv_heads"]:
            raise ValueError(f"heads {c['heads']} is not a multiple of kv_heads {c['kv_heads']}")
        return c

    def default_benchmark(self) -> list[dict[str, Any]]:
        h, kv = BENCHMARK_HEADS
        return [gqa_case(16384 // n, h, kv, n, d, causal, "bfloat16")
                for d in (64, 128) for n in (1024, 4096, 16384) for causal in (False, True)]

    def baselines(self) -> dict[str, Callable[[list[torch.Tensor], dict[str, Any]], torch.Tensor]]:
        return {"sdpa_flash": sdpa("FLASH_ATTENTION", gqa=True), "sdpa_cudnn": sdpa("CUDNN_ATTENTION", gqa=True),
                "sdpa_efficient": sdpa("EFFICIENT_ATTENTION", gqa=True)}

    def default_baseline(self, inputs: list[torch.Tensor], c: dict[str, Any]) -> tuple[str, Callable[[], Any]]:
        q, k, v = inputs
        causal, scale = bool(c["causal"]), sm_scale_of(c)
        return f"sdpa default ({default_backend(q, k, v, causal, scale, gqa=True)})", lambda: (
            torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale, enable_gqa=True))
