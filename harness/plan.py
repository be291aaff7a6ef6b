"""A launch plan: what a candidate's ``forward`` does on the GPU for one case, as data.

The sandboxed child records its Triton/Gluon launches while ``forward`` runs; the trusted judge
replays them on inputs the child never saw. Everything in here is parsed from what the child
wrote, so every field is validated against limits before the judge sees it, and a plan that
breaks a rule is a ``MalformedPlan`` (the candidate's fault, never a retryable harness error).

Wire format of one plan (JSON)::

    {"buffers": [{"nbytes": N, "input": 0 | null, "input_offset": 0,
                  "init": null | {"fill": WORD} | {"snapshot": SHA256}}],
     "launches": [{"kernel": SHA256, "grid": [X, Y, Z], "args": [ARG, ...]}],
     "outputs": [{"buffer": B, "offset": BYTES, "shape": [...], "strides": [...], "dtype": "bfloat16"}]}

    ARG = null (a constexpr or None) | {"p": [BUFFER, BYTE_OFFSET]} | {"i": INT} | {"f": FLOAT}
        | {"d": {"p": [B, OFF], "shape": [...], "strides": [...], "block": [...], "padding": "zero"}}
        | {"t": [ARG, ...]}

Outputs are in the task's order (its signature's). Buffers are numbered inputs first (in the task's order), then in order of first use, so two
recordings of the same behaviour give equal plans whatever addresses the allocator handed out.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Union

_SHA = re.compile(r"^[0-9a-f]{64}$")
_DTYPES = ("i1", "i8", "i16", "i32", "i64", "u1", "u8", "u16", "u32", "u64", "fp8e4nv", "fp8e5", "fp8e4b15",
           "fp8e4b8", "fp8e5b16", "fp16", "bf16", "fp32", "f32", "fp64")
INT_TYPES = {"i1", "i8", "i16", "i32", "i64", "u1", "u8", "u16", "u32", "u64"}
_FLOAT_TYPES = {"fp16", "bf16", "fp32", "f32", "fp64"}
_TENSORDESC = re.compile(r"^tensordesc<(" + "|".join(_DTYPES) + r")\[\d+(, ?\d+){0,4}\](,[A-Za-z0-9_ =,.()\[\]']{0,400})?>$")
OUTPUT_DTYPES = ("float16", "bfloat16", "float32")
_ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class MalformedPlan(ValueError):
    """What the child handed back breaks the plan format or its limits."""


@dataclass(frozen=True)
class Limits:
    """How much one plan may ask of the judge."""

    buffers: int = 64
    launches: int = 64
    args: int = 256
    total_bytes: int = 24 << 30
    snapshot_bytes: int = 16 << 20
    kernel_bytes: int = 16 << 20


@dataclass(frozen=True)
class Pointer:
    buffer: int
    offset: int


@dataclass(frozen=True)
class Descriptor:
    """A host-side tensor descriptor (TMA): a base pointer and the tensor's geometry."""

    pointer: Pointer
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    block: tuple[int, ...]
    padding: str


@dataclass(frozen=True)
class Scalar:
    value: int | float


Arg = Union[None, Pointer, Descriptor, Scalar, tuple["Arg", ...]]  # noqa: UP007 (a recursive alias)


@dataclass(frozen=True)
class Fill:
    """Every 32-bit word of the buffer holds ``word`` (the tail, if any, its leading bytes)."""

    word: int


@dataclass(frozen=True)
class Snapshot:
    """The buffer's bytes before the first launch, in a file named by their sha256."""

    sha256: str


@dataclass(frozen=True)
class Buffer:
    nbytes: int
    input: int | None  # which task input lives in it; None for scratch and output buffers
    input_offset: int
    init: Fill | Snapshot | None  # None for input buffers: the judge writes its own inputs there


@dataclass(frozen=True)
class Launch:
    kernel: str  # sha256 of the binary
    grid: tuple[int, int, int]
    args: tuple[Arg, ...]


@dataclass(frozen=True)
class Output:
    buffer: int
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class Plan:
    buffers: tuple[Buffer, ...]
    launches: tuple[Launch, ...]
    outputs: tuple[Output, ...]

    def kernels(self) -> set[str]:
        return {launch.kernel for launch in self.launches}

    def snapshots(self) -> set[str]:
        return {b.init.sha256 for b in self.buffers if isinstance(b.init, Snapshot)}


@dataclass(frozen=True)
class KernelSpec:
    """A compiled kernel as Triton describes it: its binary's hash, its parameters' types (one
    per parameter of the Python function, constexprs included) and the compiler's metadata."""

    sha256: str
    name: str
    signature: tuple[tuple[str, Any], ...]
    metadata: dict[str, Any]


# -- parsing -----------------------------------------------------------------------------
def _int(x: Any, what: str, lo: int = 0, hi: int = 1 << 62) -> int:
    if type(x) is not int or not lo <= x <= hi:
        raise MalformedPlan(f"{what} must be an integer in [{lo}, {hi}], got {x!r:.60}")
    return x


def _ints(x: Any, what: str, lo: int = 0, hi: int = 1 << 62, max_len: int = 8) -> tuple[int, ...]:
    if type(x) is not list or len(x) > max_len:
        raise MalformedPlan(f"{what} must be a list of at most {max_len} integers")
    return tuple(_int(v, what, lo, hi) for v in x)


def _dict(x: Any, what: str, keys: set[str]) -> dict[str, Any]:
    if type(x) is not dict or not set(x) <= keys:
        raise MalformedPlan(f"{what} must be an object with keys among {sorted(keys)}")
    return x


def check_type(ty: Any, depth: int = 0) -> None:
    """A parameter type as Triton's specialization writes it, or nested tuples of them; the
    judge's launcher generator turns these into C, so nothing outside this grammar passes."""
    if type(ty) is list and depth < 4 and len(ty) <= 64:
        for t in ty:
            check_type(t, depth + 1)
        return
    if type(ty) is not str or len(ty) > 512:
        raise MalformedPlan(f"bad parameter type {ty!r:.80}")
    if ty == "constexpr" or ty in _DTYPES or (ty.startswith("*") and ty[1:] in _DTYPES) or _TENSORDESC.match(ty):
        return
    if ty.startswith("*k") and ty[2:] in _DTYPES:  # a pointer to constant memory
        return
    raise MalformedPlan(f"bad parameter type {ty!r:.80}")


def parse_kernel(d: Any, sha256: str) -> KernelSpec:
    d = _dict(d, "kernel", {"name", "signature", "metadata"})
    name = d.get("name")
    if type(name) is not str or not _NAME.match(name):
        raise MalformedPlan("kernel name must be an identifier")
    sig = d.get("signature")
    if type(sig) is not list or len(sig) > 512:
        raise MalformedPlan("kernel signature must be a list")
    params = []
    for entry in sig:
        if type(entry) is not list or len(entry) != 2 or type(entry[0]) is not str or not _NAME.match(entry[0]):
            raise MalformedPlan("kernel signature entries must be [name, type]")
        check_type(entry[1])
        params.append((entry[0], entry[1]))
    meta = d.get("metadata")
    if type(meta) is not dict:
        raise MalformedPlan("kernel metadata must be an object")
    for key in ("num_warps", "num_ctas", "shared", "global_scratch_size", "global_scratch_align"):
        _int(meta.get(key), f"metadata {key}", 0, 1 << 40)
    if not 1 <= meta["num_warps"] <= 32 or not 1 <= meta["num_ctas"] <= 16:
        raise MalformedPlan("metadata num_warps/num_ctas out of range")
    if meta.get("name") != name:
        raise MalformedPlan("metadata name differs from the kernel's name")
    target = _dict(meta.get("target"), "metadata target", {"backend", "arch", "warp_size"})
    if target.get("backend") != "cuda" or type(target.get("arch")) is not int or target.get("warp_size") != 32:
        raise MalformedPlan("metadata target must be a CUDA architecture")
    if not _SHA.match(sha256):
        raise MalformedPlan("kernel hash must be a sha256")
    return KernelSpec(sha256, name, tuple(params), meta)


def _pointer(x: Any, buffers: int) -> Pointer:
    if type(x) is not list or len(x) != 2:
        raise MalformedPlan("a pointer must be [buffer, offset]")
    return Pointer(_int(x[0], "pointer buffer", 0, buffers - 1), _int(x[1], "pointer offset"))


def _arg(x: Any, buffers: int, depth: int = 0) -> Arg:
    if x is None:
        return None
    x = _dict(x, "argument", {"p", "i", "f", "d", "t"})
    if len(x) != 1:
        raise MalformedPlan("an argument has exactly one kind")
    (kind, v), = x.items()
    if kind == "p":
        return _pointer(v, buffers)
    if kind == "i":
        return Scalar(_int(v, "integer argument", -(1 << 63), (1 << 64) - 1))
    if kind == "f":
        if type(v) not in (int, float) or not math.isfinite(v):
            raise MalformedPlan("float argument must be finite")
        return Scalar(float(v))
    if kind == "d":
        d = _dict(v, "descriptor", {"p", "shape", "strides", "block", "padding"})
        shape = _ints(d.get("shape"), "descriptor shape", 1, 1 << 40, 5)
        strides = _ints(d.get("strides"), "descriptor strides", 0, 1 << 40, 5)
        block = _ints(d.get("block"), "descriptor block", 1, 1 << 16, 5)
        if not len(shape) == len(strides) == len(block) or not shape:
            raise MalformedPlan("descriptor shape, strides and block must have one rank")
        if d.get("padding") not in ("zero", "nan"):
            raise MalformedPlan("descriptor padding must be 'zero' or 'nan'")
        return Descriptor(_pointer(d.get("p"), buffers), shape, strides, block, d["padding"])
    if type(v) is not list or depth >= 4 or len(v) > 64:
        raise MalformedPlan("a tuple argument must be a short list")
    return tuple(_arg(a, buffers, depth + 1) for a in v)


def parse_plan(d: Any, limits: Limits) -> Plan:
    d = _dict(d, "plan", {"buffers", "launches", "outputs"})
    raw_buffers = d.get("buffers")
    if type(raw_buffers) is not list or not 1 <= len(raw_buffers) <= limits.buffers:
        raise MalformedPlan(f"a plan has 1 to {limits.buffers} buffers")
    buffers = []
    for b in raw_buffers:
        b = _dict(b, "buffer", {"nbytes", "input", "input_offset", "init"})
        nbytes = _int(b.get("nbytes"), "buffer size", 1, limits.total_bytes)
        inp = b.get("input")
        if inp is not None:
            _int(inp, "buffer input", 0, 63)
        init_raw = b.get("init")
        init: Fill | Snapshot | None = None
        if init_raw is not None:
            init_raw = _dict(init_raw, "buffer init", {"fill", "snapshot"})
            if "fill" in init_raw:
                init = Fill(_int(init_raw["fill"], "fill word", 0, (1 << 32) - 1))
            elif type(init_raw.get("snapshot")) is str and _SHA.match(init_raw["snapshot"]):
                init = Snapshot(init_raw["snapshot"])
            else:
                raise MalformedPlan("buffer init must be a fill word or a snapshot hash")
        if (inp is None) == (init is None):
            raise MalformedPlan("input buffers take no init, other buffers need one")
        buffers.append(Buffer(nbytes, inp, _int(b.get("input_offset", 0), "input offset", 0, nbytes), init))
    if sum(b.nbytes for b in buffers) > limits.total_bytes:
        raise MalformedPlan(f"the plan's buffers hold more than {limits.total_bytes >> 30} GiB")
    inputs = [b.input for b in buffers if b.input is not None]
    if sorted(inputs) != list(range(len(inputs))):
        raise MalformedPlan("each input lives in exactly one buffer")

    raw_launches = d.get("launches")
    if type(raw_launches) is not list or len(raw_launches) > limits.launches:
        raise MalformedPlan(f"a plan has at most {limits.launches} launches")
    launches = []
    for launch in raw_launches:
        launch = _dict(launch, "launch", {"kernel", "grid", "args"})
        kernel = launch.get("kernel")
        if type(kernel) is not str or not _SHA.match(kernel):
            raise MalformedPlan("a launch names its kernel by sha256")
        grid = _ints(launch.get("grid"), "grid", 0, (1 << 31) - 1, 3)
        if len(grid) != 3 or grid[1] > 65535 or grid[2] > 65535:
            raise MalformedPlan("a grid has three dimensions within CUDA's limits")
        args = launch.get("args")
        if type(args) is not list or len(args) > limits.args:
            raise MalformedPlan(f"a launch has at most {limits.args} arguments")
        launches.append(Launch(kernel, (grid[0], grid[1], grid[2]), tuple(_arg(a, len(buffers)) for a in args)))

    raw_outputs = d.get("outputs")
    if type(raw_outputs) is not list or not 1 <= len(raw_outputs) <= 8:
        raise MalformedPlan("a plan has 1 to 8 outputs")
    return Plan(tuple(buffers), tuple(launches), tuple(_output(o, buffers) for o in raw_outputs))


def _output(o: Any, buffers: list[Buffer]) -> Output:
    o = _dict(o, "output", {"buffer", "offset", "shape", "strides", "dtype"})
    if o.get("dtype") not in OUTPUT_DTYPES:
        raise MalformedPlan(f"output dtype must be one of {', '.join(OUTPUT_DTYPES)}")
    out = Output(_int(o.get("buffer"), "output buffer", 0, len(buffers) - 1), _int(o.get("offset"), "output offset"),
                 _ints(o.get("shape"), "output shape", 0, 1 << 40), _ints(o.get("strides"), "output strides", 0, 1 << 40),
                 o["dtype"])
    if len(out.shape) != len(out.strides):
        raise MalformedPlan("output shape and strides differ in rank")
    itemsize = _ITEMSIZE[out.dtype]
    extent = out.offset + itemsize * (1 + sum((n - 1) * s for n, s in zip(out.shape, out.strides) if n > 0))
    if out.offset % itemsize or extent > buffers[out.buffer].nbytes:
        raise MalformedPlan("the output does not lie within its buffer")
    if buffers[out.buffer].input is not None:
        raise MalformedPlan("the output lies in an input's buffer: forward returned (a view of) its input")
    return out


# -- writing -----------------------------------------------------------------------------
def _arg_json(a: Arg) -> Any:
    if a is None:
        return None
    if isinstance(a, Pointer):
        return {"p": [a.buffer, a.offset]}
    if isinstance(a, Scalar):
        return {"f": a.value} if isinstance(a.value, float) else {"i": a.value}
    if isinstance(a, Descriptor):
        return {"d": {"p": [a.pointer.buffer, a.pointer.offset], "shape": list(a.shape), "strides": list(a.strides),
                      "block": list(a.block), "padding": a.padding}}
    return {"t": [_arg_json(x) for x in a]}


def plan_json(plan: Plan) -> dict[str, Any]:
    def init(i: Fill | Snapshot | None) -> Any:
        return None if i is None else {"fill": i.word} if isinstance(i, Fill) else {"snapshot": i.sha256}

    return {
        "buffers": [{"nbytes": b.nbytes, "input": b.input, "input_offset": b.input_offset, "init": init(b.init)}
                    for b in plan.buffers],
        "launches": [{"kernel": x.kernel, "grid": list(x.grid), "args": [_arg_json(a) for a in x.args]}
                     for x in plan.launches],
        "outputs": [{"buffer": o.buffer, "offset": o.offset, "shape": list(o.shape), "strides": list(o.strides),
                     "dtype": o.dtype} for o in plan.outputs],
    }


def kernel_json(k: KernelSpec) -> dict[str, Any]:
    return {"name": k.name, "signature": [list(p) for p in k.signature], "metadata": k.metadata}


# -- comparing ---------------------------------------------------------------------------
def difference(a: Plan, b: Plan) -> str | None:
    """The first way in which two recordings of one case differ, in words; None if they agree.
    Snapshot contents are not compared (a workspace kept across calls may hold leftovers); the
    replay on fresh inputs judges what they are worth."""
    if len(a.launches) != len(b.launches):
        return f"{len(a.launches)} launches in one recording, {len(b.launches)} in another"
    for i, (x, y) in enumerate(zip(a.launches, b.launches)):
        if x.kernel != y.kernel:
            return f"launch {i + 1} runs a different kernel"
        if x.grid != y.grid:
            return f"launch {i + 1} has grid {x.grid} in one recording, {y.grid} in another"
        if x.args != y.args:
            j = next(j for j, (p, q) in enumerate(zip(x.args, y.args)) if p != q) if len(x.args) == len(y.args) else 0
            return f"argument {j} of launch {i + 1} differs ({_show(x.args, j)} vs {_show(y.args, j)})"
    if len(a.buffers) != len(b.buffers):
        return f"{len(a.buffers)} buffers in one recording, {len(b.buffers)} in another"
    for i, (x, y) in enumerate(zip(a.buffers, b.buffers)):
        if (x.nbytes, x.input, x.input_offset) != (y.nbytes, y.input, y.input_offset):
            return f"buffer {i} differs in size or role"
        if isinstance(x.init, Fill) != isinstance(y.init, Fill) or (isinstance(x.init, Fill) and x.init != y.init):
            return f"buffer {i} is filled differently before the first launch"
    if a.outputs != b.outputs:
        return "an output is a different tensor"
    return None


def _show(args: tuple[Arg, ...], j: int) -> str:
    a = args[j] if j < len(args) else None
    return repr(a.value) if isinstance(a, Scalar) else type(a).__name__.lower()


_ELEM_BYTES = {"i1": 1, "u1": 1, "i8": 1, "u8": 1, "i16": 2, "u16": 2, "i32": 4, "u32": 4, "i64": 8, "u64": 8,
               "fp16": 2, "bf16": 2, "fp32": 4, "f32": 4, "fp64": 8}


def check_launches(plan: Plan, kernels: dict[str, KernelSpec]) -> None:
    """Each launch names a known kernel and passes arguments its signature admits, pointing
    inside the plan's buffers (tensor descriptors wholly inside)."""
    for i, launch in enumerate(plan.launches):
        spec = kernels.get(launch.kernel)
        if spec is None:
            raise MalformedPlan(f"launch {i + 1} names a kernel that was not handed over")
        if len(launch.args) != len(spec.signature):
            raise MalformedPlan(f"launch {i + 1} passes {len(launch.args)} arguments to {spec.name}, "
                                f"which takes {len(spec.signature)}")
        for (name, ty), a in zip(spec.signature, launch.args):
            _match(a, ty, f"{spec.name}({name})", plan)


def _match(a: Arg, ty: Any, what: str, plan: Plan) -> None:
    if isinstance(ty, list):
        if not isinstance(a, tuple) or len(a) != len(ty):
            raise MalformedPlan(f"{what}: a tuple of {len(ty)} was expected")
        for x, t in zip(a, ty):
            _match(x, t, what, plan)
        return
    ok: bool
    if ty == "constexpr":
        ok = a is None
    elif ty.startswith("*"):
        ok = a is None or (isinstance(a, Pointer) and a.offset <= plan.buffers[a.buffer].nbytes)
    elif ty.startswith("tensordesc"):
        ok = isinstance(a, Descriptor) and _inside(a, _ELEM_BYTES.get(ty[len("tensordesc<"):].split("[")[0], 8), plan)
    elif ty in INT_TYPES:
        ok = isinstance(a, Scalar) and isinstance(a.value, int)
    else:
        ok = ty in _FLOAT_TYPES and isinstance(a, Scalar) and isinstance(a.value, float)
    if not ok:
        raise MalformedPlan(f"{what}: the argument does not fit its type {ty} or points outside its buffer")


def _inside(d: Descriptor, elem: int, plan: Plan) -> bool:
    extent = elem * (1 + sum((n - 1) * s for n, s in zip(d.shape, d.strides)))
    return d.pointer.offset + extent <= plan.buffers[d.pointer.buffer].nbytes
