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
from evolve.export.winners import TASK

TEMPLATE = Path(__file__).parent / "template"
MARKER = "# Written by `evolve export`"
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_TAKEN = {"torch", "triton", "tests", "test"}
BASELINE = ("torch.nn.functional.scaled_dot_product_attention with no backend forced: whichever backend "
            "torch picks for the call on that GPU (named in each row)")


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
        "format": 2,
        "package": name,
        "task": TASK,
        "runs": runs,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "exported_by": f"evolve export (kernel-evolve {metadata.version('kernel-evolve')})",
        "device": {"name": device, "compute_capability": list(capability) if capability else None},
        "baseline": BASELINE,
        "retimed": None if r is None else {
            "device": r.device, "torch": r.torch_version, "triton": r.triton_version, "cudnn": r.cudnn_version,
            "at": r.at.isoformat(timespec="seconds")},
        "choice_rule": CHOICE_RULE,
        "route_rule": ROUTE_RULE,
        "bucket_rule": RULE,
        "buckets": [{"min_seq": b.min_seq, "max_seq": b.max_seq, "measured_seq": b.measured_seq}
                    for b in table.buckets],
        "kernels": {
            k.name: {
                "file": f"kernels/{k.name}.py", "sha256": k.sha256, "run": k.run_id, "program": k.program_id,
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
    ours = [r for r in timed if r["kernel"]]
    serves: dict[str, list[str]] = {}
    for r in ours:
        lengths = f"{r['min_seq']}+" if r["max_seq"] is None else f"{r['min_seq']}-{r['max_seq']}"
        serves.setdefault(r["kernel"], []).append(f"D{r['head_dim']}{' causal' if r['causal'] else ''} N {lengths}")
    return {
        **data,
        "version": data["exported_at"][:10].replace("-", "."),  # the export date, e.g. 2026.11.23
        "strict_env": f"{data['package'].upper()}_STRICT",
        "rows": timed,
        "coverage": [{"head_dim": d, "dtype": t, "causal": c}
                     for d, t, c in sorted({(r["head_dim"], r["dtype"], r["causal"]) for r in data["table"]})],
        "inherited": sorted({r["dtype"] for r in data["table"]} - {r["dtype"] for r in timed}),
        "kernels": [{"name": n, **k, "serves": "; ".join(serves.get(n, []))} for n, k in data["kernels"].items()],
        "summary": {
            "ours": len(ours), "timed": len(timed),
            "geomean": math.exp(sum(math.log(r["speedup"]) for r in ours) / len(ours)),
            "min": min(r["speedup"] for r in ours), "max": max(r["speedup"] for r in ours),
            "baselines": sorted({r["baseline"] for r in ours}),
        },
    }


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
