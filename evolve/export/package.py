"""Writing the package: the template files (``template/``), the copied kernels of the buckets
that run them, the dispatch table with provenance (``dispatch.json``) and a README rendered
from the same data.

The package is rendered into a fresh directory beside ``out`` and moved into place at the end,
so a failed export leaves nothing half-written.
"""

from __future__ import annotations

import json
import keyword
import math
import re
import shutil
import tempfile
import tomllib
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2

from evolve.buckets import RULE
from evolve.errors import UserError
from evolve.export.choice import CHOICE_RULE, ROUTE_RULE
from evolve.export.devices import compute_capability
from evolve.export.table import DispatchTable
from harness.task import get_task

TEMPLATE = Path(__file__).parent / "template"
MARKER = "# Written by `evolve export`"
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_TAKEN = {"torch", "triton", "tests", "test"}
BASELINE = ("torch.nn.functional.scaled_dot_product_attention with no backend forced: whichever backend "
            "torch picks for the call on that GPU (named in each row); for backward rows, that call's backward")
# How a training call gets the logsumexp an evolved backward needs (the forward kernels return o only).
BACKWARD_RULE = ("a call that needs gradients, in a bucket whose backward runs an evolved kernel, runs torch's flash "
                 "forward (torch.ops.aten._scaled_dot_product_flash_attention; on the CPU its _for_cpu variant) "
                 "instead of the forward row's choice, because it returns o together with the logsumexp the backward "
                 "kernel reads, as the attn_bwd harness derived them; where flash refuses the call, an exact forward "
                 "in plain PyTorch does, after a warning (strict mode raises instead). Every other call that needs "
                 "gradients calls torch's default SDPA, forward and backward (a forward kernel followed by a recompute "
                 "through SDPA ran at 0.77-0.80x of that on an H200); only a compiled graph in a (group, head_dim, "
                 "causal, dtype) with evolved backward rows still recomputes in its buckets without one")


def check_name(name: str) -> None:
    if not _NAME.match(name) or keyword.iskeyword(name) or name in _TAKEN:
        raise UserError(f"--name {name!r} is not a usable package name: use lowercase letters, digits and "
                        "underscores, starting with a letter (not torch, triton or tests)")


def check_out(out: Path, force: bool) -> None:
    """``out`` must be new or empty; ``--force`` replaces an earlier export, never anything else."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a directory")
    if not out.exists() or not any(out.iterdir()):
        return
    if not force:
        raise UserError(f"--out {out} is not empty; choose a new directory or pass --force to replace an earlier export")
    pyproject = out / "pyproject.toml"
    if not (pyproject.is_file() and pyproject.read_text(errors="replace").startswith(MARKER)):
        raise UserError(f"--out {out} is not empty and holds no earlier export; --force replaces only those")


def write_package(table: DispatchTable, runs: list[int], out: Path, name: str) -> None:
    data = manifest(table, runs, name)
    context = _readme_context(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _render_template(staging, name, context)
        for kernel in table.kernels:
            # Bytes, not text: the copy must hash to the archive's sha256 on every platform.
            (staging / name / "kernels" / f"{kernel.name}.py").write_bytes(kernel.source.encode("utf-8"))
        (staging / name / "dispatch.json").write_text(dumps(data))
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def manifest(table: DispatchTable, runs: list[int], name: str) -> dict[str, Any]:
    """``dispatch.json``: what the package's dispatcher reads, and the provenance people read."""
    device = table.rows[0].chosen.device
    capability = compute_capability(device)
    r = table.retiming
    return {
        "format": 3,
        "package": name,
        "tasks": sorted({r.kernel.task for r in table.rows}),
        "runs": runs,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "exported_by": f"evolve export (kernel-evolve {_version()})",
        "device": {"name": device, "compute_capability": list(capability) if capability else None},
        "baseline": BASELINE,
        "retimed": None if r is None else {
            "device": r.device, "torch": r.torch_version, "triton": r.triton_version, "cudnn": r.cudnn_version,
            "at": r.at.isoformat(timespec="seconds")},
        "choice_rule": CHOICE_RULE,
        "route_rule": ROUTE_RULE,
        "bucket_rule": RULE,
        "backward_rule": BACKWARD_RULE,
        "buckets": [{"direction": direction, "group": group, "head_dim": head_dim, "causal": causal,
                     "min_seq": b.min_seq, "max_seq": b.max_seq, "measured_seq": b.measured_seq}
                    for (direction, group, head_dim, causal), buckets in table.buckets.items() for b in buckets],
        "kernels": {
            k.name: {
                "file": f"kernels/{k.name}.py", "sha256": k.sha256, "task": k.task, "direction": k.direction,
                "entry": get_task(k.task).signature.text(), "run": k.run_id, "program": k.program_id,
                "evaluation": k.evaluation_id, "operator": k.operator, "generation": k.generation,
                "measured_at": k.measured_at.isoformat(timespec="seconds"), "device": k.device,
                "torch": k.torch_version, "triton": k.triton_version, "fitness": k.fitness,
                "checked_dtypes": list(k.checked_dtypes),
            }
            for k in table.kernels
        },
        "table": [r.to_json() for r in table.rows],
    }


def dumps(data: dict[str, Any]) -> str:
    """JSON with one table row, bucket or kernel per line, so the file reads like a table."""
    def inline(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    parts = []
    for key, value in data.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            body = ",\n".join(f"    {inline(v)}" for v in value)
            parts.append(f"  {inline(key)}: [\n{body}\n  ]")
        elif isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            body = ",\n".join(f"    {inline(k)}: {inline(v)}" for k, v in value.items())
            parts.append(f"  {inline(key)}: {{\n{body}\n  }}")
        else:
            parts.append(f"  {inline(key)}: {inline(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def _readme_context(data: dict[str, Any]) -> dict[str, Any]:
    timed = [r for r in data["table"] if r["dtype"] == r["timed_as"]]
    serves: dict[str, list[str]] = {}
    for r in timed:
        if r["kernel"]:
            lengths = f"{r['min_seq']}+" if r["max_seq"] is None else f"{r['min_seq']}-{r['max_seq']}"
            serves.setdefault(r["kernel"], []).append(f"{_where(r)} N {lengths}")
    return {
        **data,
        "version": data["exported_at"][:10].replace("-", "."),  # the export date, e.g. 2026.11.23
        "strict_env": f"{data['package'].upper()}_STRICT",
        "forward_rows": [r for r in timed if r["direction"] == "forward"],
        "backward_rows": [r for r in timed if r["direction"] == "backward"],
        "coverage": {direction: _coverage(data["table"], direction) for direction in ("forward", "backward")},
        "bucket_sets": _bucket_sets(data["buckets"]),
        "inherited": sorted({r["dtype"] for r in data["table"]} - {r["dtype"] for r in timed}),
        "kernels": [{"name": n, **k, "serves": "; ".join(serves.get(n, []))} for n, k in data["kernels"].items()],
        "summary": {direction: _summary([r for r in timed if r["direction"] == direction])
                    for direction in ("forward", "backward")},
    }


def _where(r: dict[str, Any]) -> str:
    """A row's or a bucket's family in words: "GQA group 4 D128 causal"."""
    group = f"GQA group {r['group']} " if r["group"] > 1 else ""
    return f"{group}D{r['head_dim']}{' causal' if r['causal'] else ''}"


def _coverage(table: list[dict[str, Any]], direction: str) -> list[str]:
    """Each (group, head_dim, causal) of ``direction`` with its dtypes: "D64 causal (bfloat16, float16)"."""
    dtypes: dict[tuple[int, int, bool], set[str]] = {}
    for r in table:
        if r["direction"] == direction:
            dtypes.setdefault((r["group"], r["head_dim"], r["causal"]), set()).add(r["dtype"])
    return [f"{_where({'group': g, 'head_dim': d, 'causal': c})} ({', '.join(sorted(dtypes[(g, d, c)]))})"
            for g, d, c in sorted(dtypes)]


def _bucket_sets(buckets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The families that share one set of length buckets (usually all of a pass), with the set."""
    families: dict[tuple[str, int, int, bool], list[tuple[int, int | None, int]]] = {}
    for b in buckets:
        key = (b["direction"], b["group"], b["head_dim"], b["causal"])
        families.setdefault(key, []).append((b["min_seq"], b["max_seq"], b["measured_seq"]))
    sets: dict[tuple[tuple[int, int | None, int], ...], list[str]] = {}
    for (direction, group, head_dim, causal), spans in families.items():
        where = _where({"group": group, "head_dim": head_dim, "causal": causal})
        sets.setdefault(tuple(spans), []).append(f"{direction} {where}")
    return [{"families": ", ".join(names),
             "buckets": [{"min_seq": a, "max_seq": b, "measured_seq": n} for a, b, n in spans]}
            for spans, names in sets.items()]


def _summary(timed: list[dict[str, Any]]) -> dict[str, Any]:
    ours = [r for r in timed if r["kernel"]]
    out: dict[str, Any] = {"ours": len(ours), "timed": len(timed)}
    if ours:
        out.update(geomean=math.exp(sum(math.log(r["speedup"]) for r in ours) / len(ours)),
                   min=min(r["speedup"] for r in ours), max=max(r["speedup"] for r in ours),
                   baselines=sorted({r["baseline"] for r in ours}))
    return out


def _render_template(dest: Path, name: str, context: dict[str, Any]) -> None:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
                             autoescape=False)
    for src in sorted(TEMPLATE.rglob("*")):
        rel = src.relative_to(TEMPLATE)
        if src.is_dir() or "__pycache__" in rel.parts:
            continue
        target = dest / Path(*(name if part == "package" else part for part in rel.parts))
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix == ".j2":
            target.with_suffix("").write_text(env.get_template(rel.as_posix()).render(context))
        else:
            shutil.copyfile(src, target)


def _version() -> str:
    """The installed project's version; from pyproject.toml when the tree runs uninstalled (on
    PYTHONPATH, as on the GPU machines, whose image cannot build the project)."""
    try:
        return metadata.version("kernel-evolve")
    except metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        return tomllib.loads(pyproject.read_text())["project"]["version"] + " (source tree)"
