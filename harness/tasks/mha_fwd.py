"""``mha_fwd``: multi-head attention forward, softmax(q kᵀ · sm_scale, causal mask j > i) v.

Inputs q, k, v are (batch, heads, seq, head_dim) in one dtype. A case is a dict with keys
batch, heads, seq, head_dim, causal, dtype, sm_scale (None: 1/sqrt(head_dim)), and the input
scales qk_scale (large values push logits into the hundreds) and v_scale (small values make
outputs small, where zeros would slip under an absolute tolerance).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import torch

from harness.task import OutputSpec, Signature, Task, Tolerance, Trial, register

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}

_DEFAULT_CASE: dict[str, Any] = {"sm_scale": None, "qk_scale": 1.0, "v_scale": 1.0}


def case(batch: int, heads: int, seq: int, head_dim: int, causal: bool, dtype: str, **extra: Any) -> dict[str, Any]:
    return {
        **_DEFAULT_CASE,
        "batch": batch,
        "heads": heads,
        "seq": seq,
        "head_dim": head_dim,
        "causal": causal,
        "dtype": dtype,
        **extra,
    }


# Scaled to what rounding P to the input dtype before the second product costs.
TOLERANCES = {
    "float32": Tolerance(rel=2e-3, atol=2e-3, rtol=2e-3),
    "float16": Tolerance(rel=5e-3, atol=5e-3, rtol=1e-2),
    "bfloat16": Tolerance(rel=2.5e-2, atol=3e-2, rtol=5e-2),
}


def exact_dtype(t: torch.Tensor) -> torch.dtype:
    """What references compute in: float64 on the CPU, float32 (TF32 off) on a GPU."""
    return torch.float64 if t.device.type == "cpu" else torch.float32


def sm_scale_of(c: dict[str, Any]) -> float:
    return c["sm_scale"] if c.get("sm_scale") is not None else 1.0 / math.sqrt(c["head_dim"])


@contextmanager
def _exact_fp32() -> Iterator[None]:
    """TF32 would put the reference's own error near 1e-3, the size of what we test for."""
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


def row_blocks(n: int, heads: int, causal: bool) -> Iterator[tuple[int, int, int]]:
    """(first row, end row, keys seen) of query-row blocks whose [heads, rows, keys] score matrix
    stays under ~1 GiB for long sequences; with the causal mask a block needs only the keys up to
    its last row (the others get no weight)."""
    rows = max(1, min(n, (1 << 28) // max(1, heads * n)))
    for r0 in range(0, n, rows):
        r1 = min(n, r0 + rows)
        yield r0, r1, r1 if causal else n


def masked_scores(q: torch.Tensor, k: torch.Tensor, r0: int, causal: bool, sm_scale: float) -> torch.Tensor:
    """Scaled scores of rows r0.. (q: [H, rows, D]) against keys k ([H, keys, D]), masked."""
    s = torch.matmul(q * sm_scale, k.transpose(-1, -2))  # [H, rows, keys]
    if causal:
        i = torch.arange(r0, r0 + q.shape[1], device=q.device)[:, None]
        j = torch.arange(k.shape[1], device=q.device)[None, :]
        s.masked_fill_(j > i, float("-inf"))
    return s


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, sm_scale: float) -> torch.Tensor:
    """The plain definition, in the inputs' precision. q, k, v: [B, H, N, D] -> [B, H, N, D]."""
    B, H, N, D = q.shape
    out = torch.empty_like(q)
    with _exact_fp32():
        for b in range(B):
            for r0, r1, keys in row_blocks(N, H, causal):
                s = masked_scores(q[b, :, r0:r1], k[b, :, :keys], r0, causal, sm_scale)
                out[b, :, r0:r1] = torch.matmul(torch.softmax(s, dim=-1), v[b, :, :keys])
    return out


def gpu_sweep(shortest: int) -> list[dict[str, Any]]:
    """The GPU correctness sweep: a smoke case, head_dim 64 and 128 causal and not from
    ``shortest`` to 4097 keys in bf16, then fp16, head_dim 32 and a tiny-v case."""
    cases = [case(2, 3, 127, 64, False, "bfloat16")]  # smoke
    for d in (64, 128):
        for causal in (False, True):
            for n, b, h in ((shortest, 2, 3), (17, 2, 3), (127, 2, 3), (1000, 2, 3), (4097, 1, 2)):
                extra = {"sm_scale": 0.3} if n == 1000 and causal else {}
                cases.append(case(b, h, n, d, causal, "bfloat16", **extra))
    return cases + [
        case(2, 3, 1000, 64, False, "float16"),
        case(1, 4, 4097, 128, True, "float16"),
        case(3, 2, 127, 128, False, "float16", sm_scale=0.05),
        case(2, 3, 1000, 32, True, "float16"),
        case(2, 3, 17, 32, False, "bfloat16"),
        case(2, 2, 1000, 128, False, "bfloat16", v_scale=1e-3),
    ]


def sdpa(backend_name: str, gqa: bool = False) -> Callable[[list[torch.Tensor], dict[str, Any]], torch.Tensor]:
    """One of SDPA's backends as a baseline (``gqa``: k and v may have fewer heads than q)."""
    def run(inputs: list[torch.Tensor], c: dict[str, Any]) -> torch.Tensor:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        q, k, v = inputs
        with sdpa_kernel([getattr(SDPBackend, backend_name)]):
            return torch.nn.functional.scaled_dot_product_attention(
                q, k, v, is_causal=c["causal"], scale=sm_scale_of(c), enable_gqa=gqa
            )

    return run


def default_backend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, scale: float,
                    gqa: bool = False) -> str:
    """Which of SDPA's backends plain ``F.scaled_dot_product_attention`` picks for these inputs."""
    from torch.nn.attention import SDPBackend

    try:
        choice = torch._fused_sdp_choice(q, k, v, None, 0.0, causal, scale=scale, enable_gqa=gqa)
        return SDPBackend(choice).name.lower().removesuffix("_attention")
    except (AttributeError, RuntimeError, TypeError, ValueError):  # a private helper: name it only where torch tells
        return "backend unknown"


@register
class MhaForward(Task):
    name = "mha_fwd"
    description = "multi-head attention forward: q, k, v (B, H, N, D), causal flag, sm_scale"
    signature = Signature(("q", "k", "v"), ("causal: bool", "sm_scale: float"), ("o",))

    def label(self, c: dict[str, Any]) -> str:
        parts = [f"B{c['batch']} H{c['heads']} N{c['seq']} D{c['head_dim']}", c["dtype"]]
        if c["causal"]:
            parts.append("causal")
        if c.get("sm_scale") is not None:
            parts.append(f"scale={c['sm_scale']:g}")
        if c.get("qk_scale", 1.0) != 1.0:
            parts.append(f"logits x{c['qk_scale'] ** 2:g}")
        if c.get("v_scale", 1.0) != 1.0:
            parts.append(f"v x{c['v_scale']:g}")
        return " ".join(parts)

    def variant(self, c: dict[str, Any]) -> str:
        return f"D{c['head_dim']} {c['dtype']}{' causal' if c['causal'] else ''}"

    def _values(self, c: dict[str, Any], seed: int, device: str) -> list[torch.Tensor]:
        shape = (c["batch"], c["heads"], c["seq"], c["head_dim"])
        g = torch.Generator(device=device).manual_seed(seed)
        dtype = DTYPES[c["dtype"]]
        scales = (c.get("qk_scale", 1.0), c.get("qk_scale", 1.0), c.get("v_scale", 1.0))
        return [
            (torch.randn(shape, generator=g, device=device, dtype=torch.float32) * s).to(dtype)
            for s in scales
        ]

    def make_inputs(self, c: dict[str, Any], seed: int, device: str) -> list[torch.Tensor]:
        return self._values(c, seed, device)

    def refill_inputs(self, inputs: list[torch.Tensor], c: dict[str, Any], seed: int) -> None:
        for dst, src in zip(inputs, self._values(c, seed, inputs[0].device.type)):
            dst.copy_(src)

    def randomize(self, inputs: list[torch.Tensor], c: dict[str, Any], generator: torch.Generator) -> None:
        scales = (c.get("qk_scale", 1.0), c.get("qk_scale", 1.0), c.get("v_scale", 1.0))
        for t, s in zip(inputs, scales):
            t.normal_(0.0, s, generator=generator)

    def call(self, forward: Callable[..., Any], inputs: list[torch.Tensor], c: dict[str, Any]) -> Any:
        q, k, v = inputs
        return forward(q, k, v, bool(c["causal"]), float(sm_scale_of(c)))

    def outputs(self, c: dict[str, Any]) -> list[OutputSpec]:
        return [OutputSpec("o", (c["batch"], c["heads"], c["seq"], c["head_dim"]), c["dtype"], TOLERANCES[c["dtype"]])]

    def reference(self, inputs: list[torch.Tensor], c: dict[str, Any]) -> list[torch.Tensor]:
        q, k, v = (t.to(exact_dtype(t)) for t in inputs)
        return [naive_attention(q, k, v, bool(c["causal"]), sm_scale_of(c))]

    def flops(self, c: dict[str, Any]) -> float:
        f = 4.0 * c["batch"] * c["heads"] * c["seq"] ** 2 * c["head_dim"]
        return f / 2 if c["causal"] else f

    def sweep(self, mode: str) -> list[Trial]:
        if mode == "interpreter":
            cases = [
                case(1, 2, 17, 64, False, "float16"),  # smoke
                case(2, 2, 1, 64, True, "float16"),
                case(2, 3, 37, 64, True, "float16", sm_scale=0.3),
                case(1, 2, 70, 128, False, "float16"),
                case(2, 1, 45, 128, True, "float16"),
                case(1, 2, 33, 32, True, "float16"),
                case(1, 1, 29, 32, False, "float32", sm_scale=0.05),
                # Long enough that a kernel attending only to nearby keys (a window) fails.
                case(1, 1, 300, 64, False, "float16"),
                case(1, 1, 520, 32, True, "float32"),
                case(1, 2, 40, 64, False, "float16", v_scale=1e-3),
            ]
        else:
            cases = gpu_sweep(shortest=1)
        return [Trial(self.label(c), c) for c in cases]

    def stability_trials(self, mode: str) -> list[Trial]:
        n, dtype = (33, "float16") if mode == "interpreter" else (1000, "bfloat16")
        # qk_scale 12 puts the logits' spread near 12² · sm_scale · sqrt(D) ≈ 150 for D = 64.
        cases = [
            case(1, 2, n, 64, False, dtype, qk_scale=12.0),
            case(1, 2, n, 64, True, dtype, qk_scale=12.0),
        ]
        return [Trial(self.label(c), c) for c in cases]

    def default_benchmark(self) -> list[dict[str, Any]]:
        out = []
        for d in (64, 128):
            for n in (1024, 4096, 16384):
                for causal in (False, True):
                    out.append(case(16384 // n, 2048 // d, n, d, causal, "bfloat16"))
        return out

    SHAPE_FIELDS: ClassVar[tuple[str, ...]] = ("batch", "heads", "seq", "head_dim", "causal", "dtype")

    def benchmark_case(self, shape: dict[str, Any]) -> dict[str, Any]:
        fields = ", ".join(self.SHAPE_FIELDS)
        unknown = sorted(set(shape) - set(self.SHAPE_FIELDS))
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}; a shape has {fields} (dtype: bfloat16)")
        missing = [k for k in self.SHAPE_FIELDS if k not in shape and k != "dtype"]
        if missing:
            raise ValueError(f"missing field(s) {', '.join(missing)}; a shape has {fields}")
        for k in self.SHAPE_FIELDS:
            if k in ("causal", "dtype") or k not in shape:
                continue
            if type(shape[k]) is not int or shape[k] < 1:
                raise ValueError(f"{k} must be a positive integer, not {shape[k]!r}")
        if not 1 <= shape["head_dim"] <= 256:
            raise ValueError(f"head_dim {shape['head_dim']} is outside 1-256")
        if type(shape["causal"]) is not bool:
            raise ValueError(f"causal must be true or false, not {shape['causal']!r}")
        dtype = shape.get("dtype", "bfloat16")
        if dtype not in ("bfloat16", "float16"):
            raise ValueError(f"dtype {dtype!r}: bfloat16 or float16")
        return case(**{**shape, "dtype": dtype})

    def baselines(self) -> dict[str, Callable[[list[torch.Tensor], dict[str, Any]], torch.Tensor]]:
        return {"sdpa_flash": sdpa("FLASH_ATTENTION"), "sdpa_cudnn": sdpa("CUDNN_ATTENTION"),
                "sdpa_efficient": sdpa("EFFICIENT_ATTENTION")}

    def default_baseline(self, inputs: list[torch.Tensor], c: dict[str, Any]) -> tuple[str, Callable[[], Any]]:
        q, k, v = inputs
        causal, scale = bool(c["causal"]), sm_scale_of(c)
        return f"sdpa default ({default_backend(q, k, v, causal, scale)})", lambda: (
            torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale))

    def seed_path(self) -> Path:
        return Path(__file__).resolve().parents[2] / "seeds" / "mha_fwd.py"
