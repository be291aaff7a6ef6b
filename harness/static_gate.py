"""Stage 1: a static look at a candidate's source before any of it runs.

A first filter only. It rejects what is plainly outside the contract (no ``forward``, no
Triton kernel, imports a kernel has no use for, library attention, reflection that could
reach the harness) with a reason naming the line; obfuscated cheats are left to the run-time
checks, which do not trust this stage.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from harness.task import Signature

ALLOWED_MODULES = ("torch", "triton", "math", "typing", "functools", "dataclasses", "__future__")
# Submodules of allowed packages that compute attention, patch the runtime or reach C.
FORBIDDEN_MODULES = (
    "torch.nn", "torch._C", "torch.ops", "torch.library", "torch.utils", "torch.backends",
    "torch._dynamo", "torch._inductor", "torch.compiler", "torch.func", "torch.autograd",
    "torch.distributed", "torch.multiprocessing", "torch.cuda.memory", "triton.testing",
    "triton.runtime.driver",
)
FORBIDDEN_NAMES = {
    "eval", "exec", "compile", "__import__", "open", "globals", "locals", "vars", "getattr",
    "setattr", "delattr", "breakpoint", "input", "exit", "quit", "memoryview", "__builtins__",
    "__loader__", "__spec__",
}
# Attributes that compute attention (or its parts) with a library, or escape the sandbox's view.
LIBRARY_ATTRS = {
    "scaled_dot_product_attention", "flex_attention", "softmax", "log_softmax", "matmul", "bmm",
    "baddbmm", "einsum", "mm", "addmm", "tensordot", "linear", "numpy", "from_numpy", "tolist",
    "_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_cudnn_attention", "flash_attn_func",
}
FORBIDDEN_ATTR_PREFIXES = ("_C", "_ops", "_dynamo", "_inductor", "_prims", "_refs", "_decomp")
# Modules and calls a kernel never needs, however they are reached (torch.serialization.os...).
ESCAPE_ATTRS = {
    "os", "sys", "subprocess", "socket", "ctypes", "builtins", "importlib", "environ", "system",
    "popen", "kill", "killpg", "_exit", "getppid", "unlink", "remove", "rmtree", "urlopen",
}


@dataclass(frozen=True)
class GateResult:
    ok: bool
    reason: str = ""


def _module_allowed(name: str) -> bool:
    if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_MODULES):
        return False
    return name.split(".")[0] in ALLOWED_MODULES


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _is_triton_kernel(fn: ast.FunctionDef) -> bool:
    for dec in fn.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        if _dotted(target).split(".")[-1] in {"jit", "autotune", "heuristics"}:
            return True
    return False


def _kernel_names(tree: ast.Module) -> set[str]:
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and _is_triton_kernel(n)}


def check_source(source: str, signature: Signature | None = None) -> GateResult:
    """The gate for a candidate of a task whose entry point is ``signature`` (default: mha_fwd's)."""
    if signature is None:
        from harness.tasks.mha_fwd import MhaForward

        signature = MhaForward.signature
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        return GateResult(False, f"syntax error at line {e.lineno}: {e.msg}")

    forward = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "forward"]
    params = ", ".join(p.split(":")[0] for p in signature.inputs + signature.flags)
    if not forward:
        return GateResult(False, f"no top-level function `forward({params})` is defined")
    if len(forward[0].args.args) < signature.arity() and forward[0].args.vararg is None:
        return GateResult(False, f"line {forward[0].lineno}: `forward` must take ({params})")
    if not _kernel_names(tree):
        return GateResult(False, "no Triton kernel: no function is decorated with @triton.jit")

    kernels = [n for n in tree.body if isinstance(n, ast.FunctionDef) and _is_triton_kernel(n)]
    in_kernel = {id(sub) for k in kernels for sub in ast.walk(k)}
    for node in ast.walk(tree):
        line = getattr(node, "lineno", "?")
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not _module_allowed(alias.name):
                    return GateResult(False, f"line {line}: import of {alias.name!r} is not allowed "
                                             f"(allowed: {', '.join(ALLOWED_MODULES[:-1])})")
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level or not _module_allowed(mod):
                return GateResult(False, f"line {line}: import from {mod or '.'!r} is not allowed "
                                         f"(allowed: {', '.join(ALLOWED_MODULES[:-1])})")
            for alias in node.names:
                if not _module_allowed(f"{mod}.{alias.name}") or alias.name in LIBRARY_ATTRS:
                    return GateResult(False, f"line {line}: import of {mod}.{alias.name} is not allowed")
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            return GateResult(False, f"line {line}: use of {node.id!r} is not allowed in a candidate")
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("__") and node.attr.endswith("__"):
                return GateResult(False, f"line {line}: dunder attribute access ({node.attr}) is not allowed")
            if node.attr in ESCAPE_ATTRS:
                return GateResult(False, f"line {line}: `{_dotted(node) or node.attr}` is not allowed in a candidate")
            if node.attr in LIBRARY_ATTRS and id(node) not in in_kernel:
                return GateResult(False, f"line {line}: library fallback `{_dotted(node) or node.attr}`: "
                                         "attention must be computed by the candidate's own Triton kernels")
            if node.attr.startswith(FORBIDDEN_ATTR_PREFIXES) and _dotted(node).startswith("torch."):
                return GateResult(False, f"line {line}: `{_dotted(node)}` reaches torch internals")
            if _dotted(node).startswith(FORBIDDEN_MODULES):
                return GateResult(False, f"line {line}: `{_dotted(node)}` is not allowed in a candidate")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult) and id(node) not in in_kernel:
            return GateResult(False, f"line {line}: the @ operator outside a kernel is a library matmul")
    return GateResult(True)
