"""``attn_bwd``: multi-head attention backward, the gradients dq, dk, dv of ``mha_fwd``'s output.

Inputs q, k, v, o, do are (batch, heads, seq, head_dim) in the case's dtype, lse is (batch,
heads, seq) float32: what a flash forward hands its backward, o = softmax(q kᵀ · sm_scale,
causal mask j > i) v and lse the natural-log logsumexp of each row of the scaled, masked
scores. o and lse are derived from q, k, v (never drawn), so that the sandboxed child and the
trusted parent make them bit for bit alike: by SDPA's flash forward on a GPU, by a float64
forward on the CPU. A case is an ``mha_fwd`` case, plus do_scale (small values make every
gradient small, where zeros would slip under an absolute tolerance).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from harness.task import Determinism, OutputSpec, Signature, Tolerance, Trial, register
from harness.tasks.mha_fwd import (
    DTYPES,
    MhaForward,
    _exact_fp32,
    case,
    default_backend,
    exact_dtype,
    gpu_sweep,
    masked_scores,
    row_blocks,
    sm_scale_of,
)

# Per dtype; atol is in units of each gradient's natural size (``_units``). Measured with the
# seed's arithmetic (fp16 in the interpreter, bf16 emulated on the CPU at the GPU sweep's shapes):
# the relative error is ~3e-4 (fp16) and ~2.5e-3 (bf16) on plain cases. Large logits make P nearly
# one-hot, where dS = P (dP - rowsum(dO o)) cancels and the rounding of the given o to the dtype
# dominates: there the worst of hundreds of draws was 2.4e-3 (fp16, N 256) and 1.1e-2 (bf16,
# N 1000), with elements off by up to 4e-3 (fp16) and 2.4e-2 (bf16) units beyond rtol.
# fp32 leaves room for TF32 products on a GPU.
TOLERANCES = {
    "float32": Tolerance(rel=2e-3, atol=2e-3, rtol=2e-3),
    "float16": Tolerance(rel=1e-2, atol=1e-2, rtol=2e-2),
    "bfloat16": Tolerance(rel=3e-2, atol=6e-2, rtol=5e-2),
}


def _units(c: dict[str, Any]) -> tuple[float, float, float]:
    """The size dq, dk and dv scale with: dq = dS k · sm_scale and dk = dSᵀ q · sm_scale with
    dS ~ dO vᵀ, dv = Pᵀ dO; sm_scale · sqrt(head_dim) is 1 at the default scale. An absolute
    tolerance in these units stays meaningful for small gradients (v_scale, do_scale)."""
    do = c.get("do_scale", 1.0)
    qk = c.get("qk_scale", 1.0) * c.get("v_scale", 1.0) * do * sm_scale_of(c) * math.sqrt(c["head_dim"])
    return qk, qk, do


def naive_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool,
                  sm_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """o [B, H, N, D] and the natural-log lse [B, H, N] of the scaled scores, in q's precision."""
    B, H, N, _ = q.shape
    o, lse = torch.empty_like(q), torch.empty(q.shape[:3], dtype=q.dtype, device=q.device)
    with _exact_fp32():
        for b in range(B):
            for r0, r1, keys in row_blocks(N, H, causal):
                s = masked_scores(q[b, :, r0:r1], k[b, :, :keys], r0, causal, sm_scale)
                lse[b, :, r0:r1] = torch.logsumexp(s, dim=-1)
                o[b, :, r0:r1] = torch.matmul(torch.softmax(s, dim=-1), v[b, :, :keys])
    return o, lse


def naive_attention_backward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, do: torch.Tensor, causal: bool,
                             sm_scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The plain definition, in the inputs' precision: q, k, v, do [B, H, N, D] -> dq, dk, dv.

    S = q kᵀ · sm_scale (masked), P = softmax(S), dV = Pᵀ dO, dP = dO Vᵀ, dS = P ∘ (dP - rowsum(dO ∘ O))
    with O = P V computed here, dQ = dS K · sm_scale, dK = dSᵀ Q · sm_scale; by row blocks, dk and dv
    summed over them.
    """
    B, H, N, _ = q.shape
    dq, dk, dv = torch.empty_like(q), torch.zeros_like(k), torch.zeros_like(v)
    with _exact_fp32():
        for b in range(B):
            for r0, r1, keys in row_blocks(N, H, causal):
                qb, kb, vb, dob = q[b, :, r0:r1], k[b, :, :keys], v[b, :, :keys], do[b, :, r0:r1]
                p = torch.softmax(masked_scores(qb, kb, r0, causal, sm_scale), dim=-1)  # [H, rows, keys]
                delta = (dob * torch.matmul(p, vb)).sum(-1, keepdim=True)  # [H, rows, 1]
                dv[b, :, :keys] += torch.matmul(p.transpose(-1, -2), dob)
                ds = p * (torch.matmul(dob, vb.transpose(-1, -2)) - delta)
                dq[b, :, r0:r1] = torch.matmul(ds, kb) * sm_scale
                dk[b, :, :keys] += torch.matmul(ds.transpose(-1, -2), qb) * sm_scale
    return dq, dk, dv


def derived(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool,
            sm_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """o (q's dtype) and lse (float32) as the forward saves them: SDPA's flash forward on a GPU
    where it takes the case, else the exact forward rounded (rounding float64 makes the child's
    and the parent's values equal whatever their thread counts)."""
    if q.is_cuda:
        try:
            o, lse = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v, 0.0, causal, False,
                                                                        scale=sm_scale)[:2]
            # Contiguous, as every input is: a replay lays the inputs out so (flash may hand o back
            # as a view of (B, N, H, D) memory, and lse padded).
            return o.contiguous(), lse[..., : q.shape[2]].contiguous()
        except RuntimeError:  # fp32, a head_dim or a GPU that flash does not take
            pass
    exact = exact_dtype(q)
    o, lse = naive_forward(q.to(exact), k.to(exact), v.to(exact), causal, sm_scale)
    return o.to(q.dtype), lse.to(torch.float32)


def sdpa_backward(inputs: list[torch.Tensor], c: dict[str, Any],
                  backend: str | None) -> tuple[str, Callable[[], tuple[torch.Tensor, ...]]]:
    """SDPA's forward run once under ``backend`` (None: the one SDPA picks), and a call of its
    backward with the case's do: what a user's ``.backward(do)`` runs, timed alone. Returns
    the backend's name and the call."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v, _, do, _ = inputs
    causal, scale = bool(c["causal"]), sm_scale_of(c)
    # Copies, not detached views: randomize() writes the inputs in place, which would trip
    # autograd's check that saved tensors are unchanged.
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    if backend is None:
        name = default_backend(*leaves, causal, scale)
        chosen: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    else:
        name = backend.lower().removesuffix("_attention")
        chosen = sdpa_kernel([getattr(SDPBackend, backend)])
    with chosen:
        out = torch.nn.functional.scaled_dot_product_attention(*leaves, is_causal=causal, scale=scale)
    return name, lambda: torch.autograd.grad(out, leaves, do, retain_graph=True)


def _sdpa(backend: str) -> Callable[[list[torch.Tensor], dict[str, Any]], Any]:
    """One of SDPA's backends as a baseline of benchmarks: each call runs its forward too (the
    interface has no set-up step); ``default_baseline`` times the backward alone."""
    return lambda inputs, c: sdpa_backward(inputs, c, backend)[1]()


@register
class AttnBackward(MhaForward):
    name = "attn_bwd"
    description = "multi-head attention backward: q, k, v, o, do (B, H, N, D), lse (B, H, N), causal flag, sm_scale"
    signature = Signature(("q", "k", "v", "o", "do", "lse"), ("causal: bool", "sm_scale: float"), ("dq", "dk", "dv"))
    determinism = Determinism.WITHIN_TOLERANCE  # backward kernels may sum dq with atomics

    def label(self, c: dict[str, Any]) -> str:
        head = super().label(c)
        return head + (f" do x{c['do_scale']:g}" if c.get("do_scale", 1.0) != 1.0 else "")

    def _values(self, c: dict[str, Any], seed: int, device: str) -> list[torch.Tensor]:
        shape = (c["batch"], c["heads"], c["seq"], c["head_dim"])
        g = torch.Generator(device=device).manual_seed(seed)
        dtype = DTYPES[c["dtype"]]
        q, k, v, do = ((torch.randn(shape, generator=g, device=device, dtype=torch.float32) * s).to(dtype)
                       for s in self._scales(c))
        o, lse = derived(q, k, v, bool(c["causal"]), sm_scale_of(c))
        return [q, k, v, o, do, lse]

    @staticmethod
    def _scales(c: dict[str, Any]) -> tuple[float, float, float, float]:
        """Standard deviations of the drawn inputs q, k, v, do."""
        qk = c.get("qk_scale", 1.0)
        return qk, qk, c.get("v_scale", 1.0), c.get("do_scale", 1.0)

    def randomize(self, inputs: list[torch.Tensor], c: dict[str, Any], generator: torch.Generator) -> None:
        q, k, v, o, do, lse = inputs
        for t, s in zip((q, k, v, do), self._scales(c)):
            t.normal_(0.0, s, generator=generator)
        o_new, lse_new = derived(q, k, v, bool(c["causal"]), sm_scale_of(c))
        o.copy_(o_new)
        lse.copy_(lse_new)

    def call(self, forward: Callable[..., Any], inputs: list[torch.Tensor], c: dict[str, Any]) -> Any:
        return forward(*inputs, bool(c["causal"]), float(sm_scale_of(c)))

    def outputs(self, c: dict[str, Any]) -> list[OutputSpec]:
        shape = (c["batch"], c["heads"], c["seq"], c["head_dim"])
        tol = TOLERANCES[c["dtype"]]
        return [OutputSpec(name, shape, c["dtype"], Tolerance(tol.rel, tol.atol * unit, tol.rtol))
                for name, unit in zip(self.signature.outputs, _units(c))]

    def reference(self, inputs: list[torch.Tensor], c: dict[str, Any]) -> list[torch.Tensor]:
        q, k, v, _, do, _ = (t.to(exact_dtype(t)) for t in inputs)
        return list(naive_attention_backward(q, k, v, do, bool(c["causal"]), sm_scale_of(c)))

    def flops(self, c: dict[str, Any]) -> float:
        return 2.5 * super().flops(c)  # five N x N products to the forward's two

    def sweep(self, mode: str) -> list[Trial]:
        if mode == "interpreter":
            cases = [
                case(1, 2, 17, 64, False, "float16"),  # smoke
                case(2, 2, 1, 64, True, "float16"),
                case(2, 3, 37, 64, True, "float16", sm_scale=0.3),
                case(1, 2, 45, 128, True, "float16"),
                case(1, 2, 33, 32, False, "float16"),
                case(1, 1, 29, 32, True, "float32", sm_scale=0.05),
                # Several tiles each way: loops past the diagonal and a ragged last tile.
                case(1, 1, 150, 64, True, "float16"),
                case(1, 1, 200, 32, False, "float32"),
                case(1, 2, 40, 64, False, "float16", v_scale=1e-3),
                case(1, 2, 40, 64, True, "float16", do_scale=1e-3),
            ]
        else:
            # No seq 1: with one key, dq and dk are exactly zero (the softmax of one logit has no
            # gradient), so any rounding is an infinite relative error; 2 is the shortest that is not.
            cases = [*gpu_sweep(shortest=2), case(2, 2, 1000, 64, True, "bfloat16", do_scale=1e-3)]
        return [Trial(self.label(c), c) for c in cases]

    def stability_trials(self, mode: str) -> list[Trial]:
        # Logits spread ~150 (qk_scale 12, as mha_fwd's). Nearly one-hot rows have tiny exact dq
        # and dk, so their norm rests on the few rows with two close keys: at N 33 an honest
        # kernel's relative error reached 0.8 in one draw of 200; from N 128 on it stays near 2e-3.
        n, dtype = (256, "float16") if mode == "interpreter" else (1000, "bfloat16")
        cases = [case(1, 2, n, 64, causal, dtype, qk_scale=12.0) for causal in (False, True)]
        return [Trial(self.label(c), c) for c in cases]

    def baselines(self) -> dict[str, Callable[[list[torch.Tensor], dict[str, Any]], Any]]:
        return {"sdpa_flash": _sdpa("FLASH_ATTENTION"), "sdpa_cudnn": _sdpa("CUDNN_ATTENTION"),
                "sdpa_efficient": _sdpa("EFFICIENT_ATTENTION")}

    def default_baseline(self, inputs: list[torch.Tensor], c: dict[str, Any]) -> tuple[str, Callable[[], Any]]:
        name, run = sdpa_backward(inputs, c, None)
        return f"sdpa default ({name}) backward", run

    def seed_path(self) -> Path:
        return Path(__file__).resolve().parents[2] / "seeds" / "attn_bwd.py"
