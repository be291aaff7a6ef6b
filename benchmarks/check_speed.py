"""How long ``evolve check`` takes on the seed: the full cascade (and timing, on a GPU),
first with a cold Triton cache, then again after compilation. Writes JSON and Markdown.

    python benchmarks/check_speed.py --out benchmarks/results/check-speed-h100
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.checker import Checker, CheckOptions  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    source = (ROOT / "seeds" / "mha_fwd.py").read_text()
    with tempfile.TemporaryDirectory() as cache:
        checker = Checker("mha_fwd", CheckOptions(triton_cache=Path(cache)))
        runs = []
        for label in ("cold Triton cache", "after compilation"):
            t0 = time.monotonic()
            verdict = checker.check(source)
            wall = time.monotonic() - t0
            runs.append({"run": label, "passed": verdict.passed, "reason": verdict.reason, "wall_s": wall,
                         "trials": len(verdict.shape_results), "timed_shapes": len(verdict.timings),
                         "fitness": verdict.fitness})
            print(runs[-1], flush=True)
    meta = {"device": verdict.device, "mode": verdict.mode, "torch": verdict.torch_version,
            "triton": verdict.triton_version, "sandbox": verdict.sandbox}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({**meta, "runs": runs}, indent=1))
    lines = [f"`evolve check seeds/mha_fwd.py` on {meta['device']} ({meta['mode']}); torch {meta['torch']}, "
             f"triton {meta['triton']}.", "", "| run | passed | wall s | trials | timed shapes | fitness |",
             "|---|---|---|---|---|---|"]
    for r in runs:
        fit = f"{r['fitness']:.3f}" if r["fitness"] else "-"
        lines.append(f"| {r['run']} | {r['passed']} | {r['wall_s']:.1f} | {r['trials']} | {r['timed_shapes']} | {fit} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
